"""Shard assignment: explicit i/n, the master's map, stand-alone."""

from __future__ import annotations

import pytest

from generator.load.shard import assign_shards, parse_shard, shard_for


def test_parse_shard():
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "x/2", "1", "-1/2", "0/0"):
        with pytest.raises(ValueError, match="i/n"):
            parse_shard(bad)


def test_assignment_is_independent_of_connection_order():
    assert (
        assign_shards(["w-b", "w-a", "w-c"])
        == assign_shards(["w-c", "w-a", "w-b"])
        == {
            "w-a": 0,
            "w-b": 1,
            "w-c": 2,
        }
    )


def test_shard_for_prefers_explicit_then_map_then_stand_alone():
    shard_map = {"w-a": 0, "w-b": 1}
    assert shard_for("w-b", shard_map, None) == (1, 2)
    assert shard_for("w-b", shard_map, "0/4") == (0, 4)
    assert shard_for("local", None, None) == (0, 1)
