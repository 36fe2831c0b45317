"""``shopsim validate`` and ``shopsim schema`` through generator.cli.main: output and exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

# rich.style draws getrandbits() from the global `random` at import time; import it while
# collecting, before conftest's per-test guard against global RNG use starts watching.
import rich.console  # noqa: F401

from generator.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "scenarios"
ROOT = Path(__file__).resolve().parents[2]


def squeeze(text: str) -> str:
    """Column padding removed: one space between cells."""
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def test_validate_prints_a_summary_and_exits_0(capsys):
    code = main(["validate", str(DATA / "full.yaml")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    assert out.startswith(f"{DATA / 'full.yaml'}: valid\n")
    text = squeeze(out)
    for expected in (
        "seed 42 (from the scenario)",
        "shoppers 2,000",
        "duration 1d: ≈ 2,880 shoppers expected to arrive",
        "instagram_cart 75.0% 3 new instagram landing 5 2.39",
        "cart_recovery (#1) Added to Cart where cart_total >= 20 1h Order Completed once per 7d",
        "never_identified {p: 0.01}",
        "trigger_recall[cart_recovery] >= 0.95",
        "Added to Cart 45.8%",
        "Checkout Started 12.3%",
        "Order Completed 16.1%",
        "identify 47.9%",
        "per shopper: 2.27 states visited",
    ):
        assert expected in text, expected


def test_validate_applies_seed_and_shoppers(capsys):
    code = main(["validate", str(DATA / "minimal.yaml"), "--seed", "5", "--shoppers", "300"])
    out, _ = capsys.readouterr()
    assert code == 0
    text = squeeze(out)
    assert "seed 5 (from --seed)" in text
    assert "shoppers 300" in text
    assert re.search(r"arrival span ≈ \d+h\d*m? for 300 shoppers to arrive", text), text


def test_validate_bad_scenario_exits_2_with_every_problem_and_no_traceback(capsys):
    path = DATA / "invalid_campaign_events.yaml"
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("shopsim: invalid scenario (5 problems):\n")
    assert f"  {path}:11:22: campaigns.recover.trigger.event: trigger event 'Add to Cart'" in err
    assert "Traceback" not in err


def test_validate_bad_flag_value_exits_2(capsys):
    code = main(["validate", str(DATA / "minimal.yaml"), "--shoppers", "0"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err == "shopsim: invalid command line: shoppers: must be at least 1, got 0\n"


def test_validate_missing_file_exits_2(capsys, tmp_path):
    code = main(["validate", str(tmp_path / "missing.yaml")])
    _, err = capsys.readouterr()
    assert code == 2
    assert err == f"shopsim: invalid scenario: {tmp_path / 'missing.yaml'}: no such file\n"


def test_validate_shipped_scenarios(capsys):
    shipped = sorted((ROOT / "scenarios").glob("*.yaml"))
    for path in shipped:
        assert main(["validate", str(path)]) == 0, capsys.readouterr().err
        assert "Analytic funnel" in capsys.readouterr().out


def test_schema_prints_json_to_stdout(capsys):
    assert main(["schema"]) == 0
    out, _ = capsys.readouterr()
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "urn:shopsim:schema:scenario"
    assert schema["title"] == "shopsim scenario"
    assert set(schema["required"]) == {"name", "population", "journeys"}


def test_schema_to_a_file(capsys, tmp_path):
    target = tmp_path / "scenario.schema.json"
    assert main(["schema", "-o", str(target)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert str(target) in err
    assert json.loads(target.read_text())["title"] == "shopsim scenario"


def test_schema_to_an_unwritable_place_exits_2(capsys, tmp_path):
    assert main(["schema", "-o", str(tmp_path / "no" / "such" / "dir.json")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_validate_notes_a_campaign_no_journey_can_trigger(capsys, tmp_path):
    text = (DATA / "minimal.yaml").read_text() + (
        "campaigns:\n  winback:\n    trigger: {event: Order Completed}\n    delay: 1d\n"
    )
    path = tmp_path / "idle.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: no journey emits 'Order Completed', so 'winback' never triggers" in out


def test_validate_on_a_terminal_prints_rich_tables(capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["validate", str(DATA / "full.yaml")]) == 0
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    assert "✓" in out and "┃ event" in out
    assert "trigger_recall[cart_recovery] >= 0.95" in out  # not eaten as rich markup
    assert re.search(r"│ Added to Cart\s+│\s+45\.8% │", out)
