"""``shopsim run`` end to end: exit codes, run directory contents, a wall-clock --target, the App API
observer against the emulator, and the pytest plugin's fixture and failure report."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from generator.cli import main
from generator.emulator import start_emulator
from generator.pipeline import RunResult, run
from generator.scenario.load import load_scenario

ROOT = Path(__file__).resolve().parents[2]
CLEAN = ROOT / "scenarios" / "clean_baseline.yaml"
LATE = ROOT / "scenarios" / "late_purchase_events.yaml"


def _run_dirs(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if p.is_dir())


@pytest.mark.slow
def test_cli_run_passes_writes_everything_and_exit_code_follows_thresholds(tmp_path: Path, capsys) -> None:
    code = main(["run", str(CLEAN), "--shoppers", "60", "--results", str(tmp_path), "--seed", "3"])
    assert code == 0
    (run_dir,) = _run_dirs(tmp_path)
    for name in (
        "run.json",
        "summary.json",
        "report.html",
        "junit.xml",
        "events.ndjson",
        "deliveries.ndjson",
        "expectations.ndjson",
        "observations.ndjson",
        "ledger.ndjson",
    ):
        assert (run_dir / name).is_file(), name
    meta = orjson.loads((run_dir / "run.json").read_bytes())
    assert meta["seed"] == 3 and meta["clock"] == "virtual" and meta["scenario_sha256"]
    summary = orjson.loads((run_dir / "summary.json").read_bytes())
    assert summary["verdict"] == "pass"
    truth = [orjson.loads(line) for line in (run_dir / "expectations.ndjson").read_bytes().splitlines()]
    assert {row["basis"] for row in truth} == {"truth", "delivered"}
    observed = [orjson.loads(line) for line in (run_dir / "observations.ndjson").read_bytes().splitlines()]
    ingested = [row for row in observed if row["kind"] == "event"]
    assert {"accepted", "merged_anonymous"} <= {row["reason"] for row in ingested}  # dedupe/merge outcomes
    out = capsys.readouterr().out
    assert "PASS" in out and "Thresholds" in out

    code = main(
        [
            "run",
            str(CLEAN),
            "--shoppers",
            "60",
            "--results",
            str(tmp_path),
            "--seed",
            "3",
            "--expect",
            "suppression_violations > 0",
            "--quiet",
            "--no-data",
        ]
    )
    assert code == 1
    newest = _run_dirs(tmp_path)[-1]
    failed = [
        t for t in orjson.loads((newest / "summary.json").read_bytes())["thresholds"] if not t["passed"]
    ]
    assert [t["threshold"] for t in failed] == ["suppression_violations > 0"]
    assert not (newest / "events.ndjson").exists()


def test_bad_input_exits_2_with_one_readable_message(tmp_path: Path, capsys) -> None:
    assert main(["run", str(CLEAN), "--results", str(tmp_path), "--expect", "recall >= 1"]) == 2
    err = capsys.readouterr().err
    assert "--expect 'recall >= 1'" in err and "Traceback" not in err
    assert main(["run", str(tmp_path / "missing.yaml"), "--results", str(tmp_path)]) == 2
    assert main(["run", str(CLEAN), "--results", str(tmp_path), "--clock", "wall"]) == 2
    assert "--clock wall needs --target" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["run", str(CLEAN), "--shoppers", "0"])
    assert exc.value.code == 2


def _short_delays(tmp_path: Path) -> Path:
    """clean_baseline with second-long delays and campaigns whose outcome does not depend on how
    events are spaced: an unpaced wall-clock run sends a day of shoppers in seconds, so exits and
    frequency windows measured in simulated time would not transfer (see ``--speed``)."""
    text = CLEAN.read_text()
    head, _, tail = text.partition("campaigns:")
    expect = tail[tail.index("expect:") :]
    campaigns = (
        "campaigns:\n"
        "  cart_recovery:\n"
        '    trigger: {event: Added to Cart, where: ["cart_total >= 20"]}\n'
        "    delay: 1s\n"
        "  post_purchase_cross_sell:\n"
        "    trigger: {event: Order Completed}\n"
        "    delay: 2s\n\n"
    )
    path = tmp_path / "short.yaml"
    path.write_text(head + campaigns + expect)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("observe", ["export", "app-api", "webhooks"])
def test_wall_clock_target_waits_then_observes(tmp_path: Path, observe: str) -> None:
    import socket

    scenario_path = _short_delays(tmp_path)
    scenario = load_scenario(scenario_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = f"http://127.0.0.1:{port}/" if observe == "webhooks" else None
    with start_emulator(scenario=scenario, clock="wall", webhook_url=hook) as emu:
        result = run(
            scenario_path,
            shoppers=40,
            target=emu.url,
            grace_s=2.0,
            observe=observe,  # type: ignore[arg-type]
            listen=port if observe == "webhooks" else None,
            app_api_url=emu.url if observe == "app-api" else None,
            results=tmp_path,
            quiet=True,
        )
    assert result.summary["clock"] == "wall" and result.summary["observer"] == observe
    assert result.metric("send_time_error_p95_ms") is None  # wall time is not the simulated timeline
    assert result.suppression_violations == 0
    assert result.trigger_recall() == 1.0, result.explain()
    if observe != "export":
        assert result.metric("merge_completeness") is None  # no anonymous events visible this way


@pytest.mark.slow
def test_fixture_returns_metrics_as_attributes(shopsim_run) -> None:
    result = shopsim_run(str(CLEAN), shoppers=50, seed=4, expect=["false_triggers == 0"])
    assert isinstance(result, RunResult)
    assert result.suppression_violations == 0
    assert result.trigger_recall("cart_recovery") == 1.0
    assert result.passed and result.exit_code == 0
    with pytest.raises(KeyError, match="known"):
        result.trigger_recall("nope")
    with pytest.raises(AttributeError):
        result.not_a_metric  # noqa: B018


@pytest.mark.slow
def test_plugin_prints_attributed_examples_when_a_test_fails(tmp_path: Path) -> None:
    test_file = tmp_path / "test_staging.py"
    test_file.write_text(
        textwrap.dedent(
            f"""
            def test_no_cart_email_to_buyers(shopsim_run):
                result = shopsim_run({str(LATE)!r}, shoppers=120, expect=["suppression_violations == 0"])
                assert result.suppression_violations == 0
            """
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:locust",
            str(test_file),
            "--shopsim-results",
            str(tmp_path / "results"),
            "-W",
            "ignore::DeprecationWarning",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "shopsim late_purchase_events" in out
    assert "late Order Completed" in out and "reproduce with: shopsim replay" in out
    assert "threshold failed: suppression_violations == 0" in out


def test_a_target_that_takes_nothing_fails_at_once_instead_of_waiting_for_campaign_delays(
    tmp_path: Path, capsys
) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["run", str(CLEAN), "--shoppers", "3", "--target", f"http://127.0.0.1:{port}", "--quiet"]
    assert main([*argv, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"shopsim: nothing was delivered to http://127.0.0.1:{port}: of ")
    (run_dir,) = tmp_path.iterdir()
    states = {orjson.loads(line)["state"] for line in (run_dir / "ledger.ndjson").read_bytes().splitlines()}
    assert "acknowledged" not in states and states  # every planned delivery still ended in a state
