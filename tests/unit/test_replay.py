"""``shopsim replay``: one shopper's journey as a table or JSON, reproducible from (seed, k)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from generator.cli import main
from generator.scenario import load_scenario
from generator.simulate import simulate_shoppers

ROOT = Path(__file__).resolve().parents[2]
D2C = ROOT / "scenarios" / "d2c_cart_recovery.yaml"


def _replay(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["replay", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_table_shows_every_event_of_the_shopper(capsys):
    scenario = load_scenario(D2C)
    life = list(simulate_shoppers(scenario, seed=42, shoppers=8))[7]
    code, out, _ = _replay(capsys, str(D2C), "--shopper", "7")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"shopper 7 of {D2C} (seed 42)")
    assert f"reproduce with: shopsim replay {D2C} --seed 42 --shopper 7" in out
    assert life.person.email in out
    header = next(i for i, line in enumerate(lines) if line.startswith("time (UTC)"))
    rows = lines[header + 2 :]
    assert len(rows) == len(life.events)
    for row, event in zip(rows, life.events, strict=True):
        assert f"{event.journey}/{event.state}" in row
        assert event.type.value in row
        if event.name:
            assert event.name in row
    assert rows[0].split()[2] == "+0s" or life.events[0].timestamp_ms != life.start_ms


def test_json_is_the_simulated_shopper(capsys):
    scenario = load_scenario(D2C)
    life = list(simulate_shoppers(scenario, seed=5, shoppers=4))[3]
    code, out, _ = _replay(capsys, str(D2C), "--seed", "5", "--shopper", "3", "--format", "json")
    assert code == 0
    doc = orjson.loads(out)
    assert doc["seed"] == 5 and doc["shopper"] == 3 and doc["journey"] == life.journey
    assert [e["id"] for e in doc["events"]] == [e.id for e in life.events]
    assert doc["person"]["email"] == life.person.email


def test_missing_seed_is_a_clear_error(capsys, tmp_path):
    text = D2C.read_text().replace("seed: 42 ", "# no seed ")
    path = tmp_path / "unseeded.yaml"
    path.write_text(text)
    code, out, err = _replay(capsys, str(path), "--shopper", "0")
    assert code == 2 and not out
    assert "replay needs --seed" in err and "Traceback" not in err


def test_shopper_beyond_the_run_is_a_clear_error(capsys):
    code, _, err = _replay(capsys, str(D2C), "--shopper", "5000")
    assert code == 2
    assert "--shopper 5000" in err and "Traceback" not in err


def test_a_shopper_of_a_bigger_run_replays_with_its_shoppers(capsys):
    # `shopsim run --shoppers 5000` has shoppers the scenario's own count does not reach: its
    # reproduce lines carry --shoppers, and replay then finds the same shopper.
    scenario = load_scenario(D2C)
    assert scenario.shoppers is not None and scenario.shoppers < 4001
    life = next(life for life in simulate_shoppers(scenario, seed=42, shoppers=5000, shard=(4000, 4001)))
    code, out, err = _replay(capsys, str(D2C), "--shoppers", "5000", "--shopper", "4000", "--format", "json")
    assert code == 0, err
    doc = orjson.loads(out)
    assert doc["shopper"] == 4000 and [e["id"] for e in doc["events"]] == [e.id for e in life.events]
    code, out, _ = _replay(capsys, str(D2C), "--shoppers", "5000", "--shopper", "4000")
    assert f"reproduce with: shopsim replay {D2C} --seed 42 --shoppers 5000 --shopper 4000" in out
    code, _, err = _replay(capsys, str(D2C), "--shoppers", "5000", "--shopper", "5000")
    assert code == 2 and "shoppers 0 to 4999" in err


@pytest.mark.parametrize(
    "flags", [["--seed", "-1", "--shopper", "1"], ["--shopper", "-1"], ["--shopper", "x"]]
)
def test_bad_replay_flags_are_usage_errors(flags, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["replay", "scenarios/d2c_cart_recovery.yaml", *flags])
    assert exc.value.code == 2
    assert "error: argument" in capsys.readouterr().err
