"""``shopsim load`` input errors: one readable message, exit 2, nothing started."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.cli import main

SCENARIO = str(Path(__file__).resolve().parents[2] / "scenarios" / "d2c_cart_recovery.yaml")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["load", SCENARIO, "--master"], "--master needs --workers"),
        (["load", SCENARIO, "--target", "http://user:pw@127.0.0.1:1"], "--target"),
        (["load", SCENARIO, "--expect", "p95 < 300"], "unknown metric"),
        (["load", "does-not-exist.yaml"], "does-not-exist.yaml"),
    ],
)
def test_bad_input_is_one_message_and_exit_2(argv, message, capsys, tmp_path):
    code = main([*argv, "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # no run directory for a run that never started


def test_bad_flag_values_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["load", SCENARIO, "--users", "0"])
    assert exc.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
