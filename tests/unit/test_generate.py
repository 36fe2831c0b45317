"""``shopsim generate``: determinism, shards, gzip, formats, --delivered, people CSV, bad flags."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import orjson
import pytest
import rich.progress  # noqa: F401 - rich.style draws from global `random` once, at import: do it before the guard

from generator.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = str(ROOT / "scenarios" / "d2c_cart_recovery.yaml")
N = "60"


def generate(tmp_path: Path, name: str, *flags: str) -> Path:
    out = tmp_path / name
    assert main(["generate", SCENARIO, "--shoppers", N, "--seed", "7", *flags, "-o", str(out)]) == 0
    return out


def lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.splitlines(keepends=True)


def test_same_seed_byte_identical(tmp_path):
    a = generate(tmp_path, "a.ndjson")
    b = generate(tmp_path, "b.ndjson")
    assert a.read_bytes() == b.read_bytes() and len(lines(a)) > 100


def test_other_seed_other_stream(tmp_path):
    a = generate(tmp_path, "a.ndjson")
    out = tmp_path / "c.ndjson"
    assert main(["generate", SCENARIO, "--shoppers", N, "--seed", "8", "-o", str(out)]) == 0
    assert a.read_bytes() != out.read_bytes()


def test_gzip_is_deterministic_and_round_trips(tmp_path):
    plain = generate(tmp_path, "a.ndjson")
    first = generate(tmp_path, "a.ndjson.gz")
    data = first.read_bytes()
    assert gzip.decompress(data) == plain.read_bytes()
    assert data[4] & 0x08 == 0, "no file name in the gzip header"
    assert data[4:8] == b"\0\0\0\0", "mtime is zero"
    assert generate(tmp_path, "b.ndjson.gz").read_bytes() == data
    assert not list(tmp_path.glob("*.partial"))


def test_shards_union_to_the_unsharded_output(tmp_path):
    whole = lines(generate(tmp_path, "whole.ndjson"))
    parts: list[bytes] = []
    for i in range(3):
        part = lines(generate(tmp_path, f"part{i}.ndjson", "--shard", f"{i}/3"))
        assert part, f"shard {i}/3 is empty"
        parts.extend(part)
    assert sorted(parts) == sorted(whole)


def test_pipelines_lines_are_segment_messages(tmp_path):
    for raw in lines(generate(tmp_path, "a.ndjson")):
        msg = orjson.loads(raw)
        assert msg["type"] in {"identify", "track", "page", "screen"}
        assert msg["messageId"] and msg["timestamp"].endswith("Z")
        assert "userId" in msg or "anonymousId" in msg
        assert ("traits" if msg["type"] == "identify" else "properties") in msg
        assert ("event" in msg) == (msg["type"] == "track")


def test_track_v1_lines_are_requests(tmp_path):
    seen = set()
    for raw in lines(generate(tmp_path, "a.ndjson", "--format", "track-v1")):
        line = orjson.loads(raw)
        assert set(line) == {"method", "path", "body"}
        seen.add((line["method"], line["path"].split("/")[3]))
        if line["method"] == "POST":
            assert isinstance(line["body"]["timestamp"], int) and "data" in line["body"]
    assert {("PUT", "customers"), ("POST", "customers"), ("POST", "events")} <= seen


def test_delivered_writes_the_plan_with_fault_records(tmp_path):
    truth = {orjson.loads(raw)["messageId"] for raw in lines(generate(tmp_path, "truth.ndjson"))}
    plan = [orjson.loads(raw) for raw in lines(generate(tmp_path, "plan.ndjson", "--delivered"))]
    records = [msg["context"]["shopsim"] for msg in plan]
    arrivals = [r["arrival_ms"] for r in records]
    assert arrivals == sorted(arrivals)
    assert {r["truth_id"] for r in records} == truth
    late = [m for m, r in zip(plan, records, strict=True) if "latency" in r["faults"]]
    assert late and all(m["event"] == "Order Completed" for m in late)  # the scenario's only fault


def test_people_csv(tmp_path):
    people = tmp_path / "people.csv"
    out = generate(tmp_path, "a.ndjson", "--people-csv", str(people))
    identified = {orjson.loads(r)["userId"] for r in lines(out) if b'"type":"identify"' in r}
    with people.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:6] == ["id", "email", "created_at", "first_name", "last_name", "phone"]
    assert {row["id"] for row in rows} == identified and len(rows) == len(identified)
    for row in rows:
        assert row["email"].rsplit("@", 1)[1] in {"example.com", "example.net", "example.org"}
        assert row["created_at"].isdigit() and 1_000_000_000 < int(row["created_at"]) < 3_000_000_000


def test_summary_line_on_stderr(tmp_path, capsys):
    generate(tmp_path, "a.ndjson")
    err = capsys.readouterr().err
    assert err.startswith("shopsim generate: 60 shoppers, ") and "seed 7" in err and err.count("\n") == 1


def test_stdout_output(capsys):
    assert main(["generate", SCENARIO, "--shoppers", "3", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert out and all(orjson.loads(line)["messageId"] for line in out.splitlines())


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shard", "3/2"], "argument --shard: need 0 <= i < n"),
        (["--shard", "two"], "argument --shard: expected i/n"),
        (["--format", "csv"], "argument --format: invalid choice: 'csv'"),
        (["--shoppers", "0"], "argument --shoppers: must be at least 1"),
        (["--seed", "-1"], "argument --seed: must be between 0"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(flags, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate", SCENARIO, *flags])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_scenario_and_unwritable_output_exit_2(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert main(["generate", SCENARIO, "--shoppers", "2", "-o", str(tmp_path / "no" / "dir.ndjson")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_progress_bar_runs_on_a_stream(tmp_path):
    import io

    from generator.commands.generate import generate as write
    from generator.scenario.load import load_scenario
    from generator.simulate import simulate_shoppers

    scenario = load_scenario(SCENARIO)
    stream = io.StringIO()
    stats = write(
        scenario,
        simulate_shoppers(scenario, seed=7, shoppers=20),
        seed=7,
        output=tmp_path / "a.ndjson",
        progress_total=20,
        progress_to=stream,
    )
    assert stats.shoppers == 20 and stats.lines == len(lines(tmp_path / "a.ndjson"))


def test_delivered_shards_union_to_the_whole_plan(tmp_path):
    whole = lines(generate(tmp_path, "whole.ndjson", "--delivered", "--format", "track-v1"))
    parts: list[bytes] = []
    for i in range(2):
        parts.extend(
            lines(
                generate(tmp_path, f"p{i}.ndjson", "--delivered", "--format", "track-v1", "--shard", f"{i}/2")
            )
        )
    assert sorted(parts) == sorted(whole)
    assert all(set(orjson.loads(raw)) == {"method", "path", "body", "shopsim"} for raw in whole)
