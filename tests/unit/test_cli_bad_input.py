"""Bad command-line input exits 2 with one readable line, never an internal error (exit 3).

Each case was once an internal error or a hang: a path where a directory should be, a value
with no upper bound, a file in the wrong encoding, a flag Locust would only reject later.
"""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest

from generator.cli import describe_os_error, main
from generator.commands import _args
from generator.credentials import load_credentials
from generator.errors import DeliveryError, ScenarioError
from generator.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
CLEAN = str(ROOT / "scenarios" / "clean_baseline.yaml")


def _fails_cleanly(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI; it must exit 2 (argparse or ShopsimError) with no internal error."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage line + one error line
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "internal error" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", CLEAN, "--shard", "0/99999999999999999999999"],
        ["generate", CLEAN, "--shoppers", "999999999999"],
        ["send", CLEAN, "--target", "http://127.0.0.1:9", "--max-attempts", "99999999999999999999"],
        ["load", CLEAN, "--workers", "99999"],
        ["load", CLEAN, "--users", "99999999999"],
        ["load", CLEAN, "--tail", "5x"],
        ["load", CLEAN, "--batch-window", "-1h"],
        ["load", CLEAN, "--duration", "0s"],
        ["observe", "--listen", "0", "--duration", "0s"],
        ["serve", "--rate-limit", "nan"],
        ["serve", "--rate-limit", "0"],
    ],
)
def test_unbounded_or_unparsable_flags_are_usage_errors(capsys, argv):
    assert "error: argument" in _fails_cleanly(capsys, argv)


def test_a_directory_as_the_people_csv_fails_before_the_run_and_leaves_nothing(capsys, tmp_path):
    target = tmp_path / "adir"
    target.mkdir()
    out = str(tmp_path / "events.ndjson")
    err = _fails_cleanly(
        capsys, ["generate", CLEAN, "--shoppers", "5", "-o", out, "--people-csv", str(target)]
    )
    assert err.strip() == f"shopsim: cannot write {target}: Is a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]


def test_results_that_cannot_hold_a_run_directory(capsys, tmp_path):
    blocker = tmp_path / "results_file"
    blocker.write_text("")
    err = _fails_cleanly(capsys, ["run", CLEAN, "--shoppers", "5", "--results", str(blocker)])
    assert err.startswith(f"shopsim: cannot create a run directory in {blocker}:")


def test_report_of_a_file_or_a_damaged_summary(capsys, tmp_path):
    err = _fails_cleanly(capsys, ["report", CLEAN])
    assert "not a directory" in err
    (tmp_path / "summary.json").write_bytes(
        orjson.dumps({"verdict": "pass", "metrics": "x", "thresholds": 1})
    )
    err = _fails_cleanly(capsys, ["report", str(tmp_path), "-q"])
    assert "not a summary shopsim wrote" in err


def test_observe_cannot_listen_or_write(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CIO_WEBHOOK_SECRET", "s3cret")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = str(tmp_path / "obs.ndjson")
        err = _fails_cleanly(capsys, ["observe", "--listen", str(port), "--out", out, "--duration", "1s"])
    assert err.startswith(f"shopsim: cannot listen on 127.0.0.1:{port}:")
    err = _fails_cleanly(capsys, ["observe", "--listen", "0", "--out", str(tmp_path), "--duration", "1s"])
    assert err.startswith(f"shopsim: cannot write {tmp_path}:")


def test_serve_db_that_is_a_directory_or_not_sqlite(capsys, tmp_path):
    err = _fails_cleanly(capsys, ["serve", "--db", str(tmp_path)])
    assert err.startswith(f"shopsim: --db {tmp_path}: cannot use it")
    text = tmp_path / "notes.txt"
    text.write_text("not a database, just text that is long enough to have a header page\n" * 20)
    err = _fails_cleanly(capsys, ["serve", "--db", str(text)])
    assert err.startswith(f"shopsim: --db {text}: cannot use it")


def test_load_reads_the_credentials_file_before_starting_locust(capsys, tmp_path):
    err = _fails_cleanly(capsys, ["load", CLEAN, "--credentials-file", str(tmp_path / "missing.env")])
    assert "cannot read credentials file" in err


def test_a_credentials_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "creds.env"
    path.write_bytes(b"\xff\xfe=1\n")
    with pytest.raises(DeliveryError, match=r"not UTF-8 text \(byte 0\)"):
        load_credentials(file=path)


def test_os_errors_name_the_path():
    assert describe_os_error(IsADirectoryError(21, "Is a directory", "a.partial", None, "a")) == (
        "a.partial -> a: Is a directory"
    )
    assert describe_os_error(FileNotFoundError(2, "No such file or directory", "x/y")) == (
        "x/y: No such file or directory"
    )
    assert describe_os_error(OSError(98, "Address already in use")) == "Address already in use"


def test_the_cli_shopper_bound_is_the_scenario_models():
    assert load_scenario(CLEAN, overrides={"shoppers": _args.MAX_SHOPPERS}).shoppers == _args.MAX_SHOPPERS
    with pytest.raises(ScenarioError, match="shoppers"):
        load_scenario(CLEAN, overrides={"shoppers": _args.MAX_SHOPPERS + 1})
