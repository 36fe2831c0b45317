"""The sender against a misbehaving loopback server: real sockets, real gevent, the real CLI.

The server injects 500/503s, 429 with Retry-After, connection resets, clean closes and slow
answers, and records every request with what it did. The sender's ledger must account for
every planned delivery exactly once, and the server's own log must show that no event id was
acknowledged twice except where the plan asked for a same-id retry duplicate.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from generator.cli import main as cli_main
from generator.credentials import LOCAL_DEFAULTS
from generator.deliver.http import CLOCK_HEADER, RetryPolicy, send_plan
from generator.deliver.ledger import Ledger, read_ledger
from generator.wire import encoder_for
from tests.support.deliveries import make_plan
from tests.support.faulty_server import OK, Close, FaultyServer, Incoming, Reset, Respond

FAST_RETRY = RetryPolicy(max_attempts=6, base_s=0.001, max_backoff_s=0.005, max_retry_after_s=0.01)
MINIMAL = Path(__file__).parents[1] / "data" / "scenarios" / "minimal.yaml"


def carried_ids(body: bytes) -> list[str]:
    """Event ids in a Pipelines / Track request body (batch, single call or Track v1)."""
    doc = orjson.loads(body)
    items = doc.get("batch", [doc])
    return [i.get("messageId") or i.get("id") for i in items if i.get("messageId") or i.get("id")]


def chaos(incoming: Incoming) -> Respond | Reset | Close:
    """A deterministic mix of faults by request number; every 7th request is fine."""
    step = incoming.seq % 7
    if step == 1:
        return Respond(500, b'{"error":"internal"}')
    if step == 2:
        return Respond(429, b"", {"Retry-After": "1"})
    if step == 3:
        return Reset()
    if step == 4:
        return Respond(200, delay=0.02)  # slow but inside the client's timeout
    if step == 5:
        return Respond(503, b"", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    if step == 6:
        return Close()
    return OK


def cli_chaos(incoming: Incoming) -> Respond | Reset | Close:
    """Faults for the CLI runs, whose default backoff (200 ms base) is real: short waits only."""
    step = incoming.seq % 4
    if step == 1:
        return Respond(503, b"", {"Retry-After": "0"})
    if step == 2:
        return Reset()
    return Respond(200, delay=0.01) if step == 3 else OK


def acknowledged_by_server(server: FaultyServer) -> Counter[str]:
    """Event ids the server answered 2xx to, counted: the server-side truth."""
    out: Counter[str] = Counter()
    for r in server.received:
        if r.status is not None and 200 <= r.status < 300:
            out.update(carried_ids(r.body))
    return out


@pytest.mark.parametrize(
    ("api", "clock", "batch_size"), [("pipelines", "wall", 25), ("track-v2", "virtual", 10)]
)
def test_every_delivery_settles_once_and_nothing_is_acknowledged_twice(tmp_path, api, clock, batch_size):
    plan = make_plan(300, shoppers=17, step_ms=200, dropped=[5, 50, 123], retry_duplicates=[7, 80, 81, 299])
    ledger_path = tmp_path / "ledger.ndjson"
    with FaultyServer(chaos) as server, Ledger(ledger_path) as ledger:
        counts = send_plan(
            plan,
            target=server.url,
            encoder=encoder_for(api),
            creds=LOCAL_DEFAULTS,
            clock=clock,
            concurrency=4,
            batch_size=batch_size,
            ledger=ledger,
            retry=FAST_RETRY,
        )
    records = list(read_ledger(ledger_path))

    # every planned delivery ends in exactly one state, and the books balance
    assert counts.planned == len(plan) == len(records)
    counts.check()
    assert counts.acknowledged + counts.rejected + counts.dropped_by_fault + counts.given_up == counts.planned
    assert counts.dropped_by_fault == 3 and counts.acknowledged == len(plan) - 3 and counts.ok
    assert counts.retries > 0 and counts.connection_errors > 0 and counts.http_errors > 0
    per_delivery = Counter((r["event_id"], tuple(r["faults"])) for r in records)
    assert all(n == 1 for n in per_delivery.values())

    # server side: each id acknowledged once, except intended same-id retry duplicates
    acked = acknowledged_by_server(server)
    planned_sends = Counter(d.event.id for d in plan if not d.dropped)
    assert acked == planned_sends
    duplicates = {d.event.id for d in plan if "retry_duplicate" in d.faults}
    assert {i for i, n in acked.items() if n > 1} == duplicates
    dropped = {d.event.id for d in plan if d.dropped}
    assert not dropped & {i for r in server.received for i in carried_ids(r.body)}

    # the server saw the faults it was told to inject
    actions = Counter(r.action for r in server.received)
    assert actions["reset"] and actions["close"] and actions["respond"]
    if clock == "virtual":
        stamps = [int(r.headers[CLOCK_HEADER.lower()]) for r in server.received]
        assert stamps == sorted(stamps)  # arrival order on the wire, retries included
        assert server.connections <= 1 + actions["reset"] + actions["close"]  # one keep-alive connection
    else:
        assert all(CLOCK_HEADER.lower() not in r.headers for r in server.received)


def test_rejections_and_give_ups_are_recorded_with_status_and_reason(tmp_path):
    plan = make_plan(12, shoppers=3)
    poisoned, doomed = plan[4].event.id, plan[9].event.id

    def policy(incoming: Incoming) -> Respond | Reset:
        ids = carried_ids(incoming.body)
        if poisoned in ids:
            return Respond(400, b'{"meta":{"errors":["data is not an object"]}}')
        if doomed in ids:
            return Respond(503, b"maintenance")
        return chaos(incoming) if incoming.seq % 2 else OK

    with FaultyServer(policy) as server, Ledger(tmp_path / "ledger.ndjson") as ledger:
        counts = send_plan(
            plan,
            target=server.url,
            encoder=encoder_for("track-v1"),
            creds=LOCAL_DEFAULTS,
            clock="virtual",
            ledger=ledger,
            retry=FAST_RETRY,
        )
    counts.check()
    assert (counts.acknowledged, counts.rejected, counts.given_up) == (10, 1, 1)
    by_id = {r["event_id"]: r for r in read_ledger(tmp_path / "ledger.ndjson")}
    assert by_id[poisoned]["state"] == "rejected" and by_id[poisoned]["status"] == 400
    assert "data is not an object" in by_id[poisoned]["reason"] and by_id[poisoned]["attempts"] == 1
    assert by_id[doomed]["state"] == "given_up" and by_id[doomed]["status"] == 503
    assert by_id[doomed]["attempts"] == FAST_RETRY.max_attempts and "maintenance" in by_id[doomed]["reason"]
    sent_poisoned = [r for r in server.received if poisoned in carried_ids(r.body)]
    assert len(sent_poisoned) == 1  # a 400 is never retried
    retry_counts = [r.headers.get("x-retry-count") for r in server.received if doomed in carried_ids(r.body)]
    assert retry_counts == [None, "1", "2", "3", "4", "5"]


def test_nothing_listening_means_given_up_not_lost(tmp_path):
    with FaultyServer() as server:
        url = server.url  # the port is free again once the server stops
    with Ledger(tmp_path / "ledger.ndjson") as ledger:
        counts = send_plan(
            make_plan(5),
            target=url,
            encoder=encoder_for("pipelines"),
            creds=LOCAL_DEFAULTS,
            ledger=ledger,
            retry=RetryPolicy(max_attempts=2, base_s=0.001),
        )
    assert counts.given_up == 5 and counts.connection_errors == 2
    assert all(r["status"] is None for r in read_ledger(tmp_path / "ledger.ndjson"))


# --------------------------------------------------------------------------- the CLI


def _run_dir(results: Path) -> Path:
    (run_dir,) = list(results.iterdir())
    return run_dir


@pytest.fixture
def no_cio_env(monkeypatch):
    for name in ("CIO_SITE_ID", "CIO_API_KEY", "CIO_PIPELINES_KEY", "CIO_APP_KEY", "CIO_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)


def test_cli_send_writes_a_balanced_ledger_and_no_credentials(tmp_path, no_cio_env, capsys):
    secret_site, secret_key = "site-XYZZY-42", "track-key-PLUGH-9000"
    creds_file = tmp_path / "cio.env"
    creds_file.write_text(f"CIO_SITE_ID={secret_site}\nexport CIO_API_KEY='{secret_key}'\n")
    results = tmp_path / "results"
    with FaultyServer(cli_chaos) as server:
        code = cli_main(
            [
                "send", str(MINIMAL), "--target", server.url, "--api", "track-v2", "--shoppers", "40",
                "--credentials-file", str(creds_file), "--results", str(results), "--batch-size", "20",
                "--max-attempts", "8",
            ]
        )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    run_dir = _run_dir(results)
    assert {p.name for p in run_dir.iterdir()} >= {"run.json", "ledger.ndjson", "delivery.json"}
    records = list(read_ledger(run_dir / "ledger.ndjson"))
    summary = orjson.loads((run_dir / "delivery.json").read_bytes())
    assert summary["planned"] == len(records) > 0
    assert summary["acknowledged"] + summary["dropped_by_fault"] == summary["planned"]
    assert "all delivered" in out.out and f"{summary['planned']:,}" in out.out
    run = orjson.loads((run_dir / "run.json").read_bytes())
    assert run["target"] == server.url and run["api"] == "track-v2"

    # the server got the credentials; results/ and the terminal never did
    token = base64.b64encode(f"{secret_site}:{secret_key}".encode()).decode()
    assert server.received[0].headers["authorization"] == f"Basic {token}"
    for path in run_dir.rglob("*"):
        data = path.read_bytes()
        for secret in (secret_site, secret_key, token):
            assert secret.encode() not in data, f"credential leaked into {path}"
    for secret in (secret_site, secret_key, token):
        assert secret not in out.out and secret not in out.err


def test_cli_send_real_fault_plan_server_acknowledges_exactly_the_ledger(tmp_path, no_cio_env, capsys):
    """A scenario with same-id retry duplicates and new-id double fires, through injected faults."""
    storm = Path(__file__).parents[2] / "scenarios" / "add_to_cart_storm.yaml"
    with FaultyServer(cli_chaos) as server:
        code = cli_main(
            ["send", str(storm), "--target", server.url, "--shoppers", "60", "--batch-size", "25",
             "--max-attempts", "10", "--results", str(tmp_path)]
        )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    records = list(read_ledger(_run_dir(tmp_path) / "ledger.ndjson"))
    ledger_acked = Counter(r["event_id"] for r in records if r["state"] == "acknowledged")
    assert ledger_acked == acknowledged_by_server(server)
    duplicated = {r["event_id"] for r in records if "retry_duplicate" in r["faults"]}
    assert duplicated  # the scenario really planned same-id retries
    assert {i for i, n in ledger_acked.items() if n > 1} <= duplicated
    assert all(ledger_acked[i] >= 2 for i in duplicated)


def test_cli_send_exit_1_when_events_are_rejected(tmp_path, no_cio_env, capsys):
    with FaultyServer(lambda _i: Respond(401, b'{"meta":{"error":"unauthorized"}}')) as server:
        code = cli_main(
            ["send", str(MINIMAL), "--target", server.url, "--shoppers", "5", "--results", str(tmp_path)]
        )
    out = capsys.readouterr().out
    assert code == 1
    assert "NOT delivered" in out
    records = list(read_ledger(_run_dir(tmp_path) / "ledger.ndjson"))
    assert records and {r["state"] for r in records} <= {"rejected", "dropped_by_fault"}
    assert any("unauthorized" in r["reason"] for r in records)


def test_cli_send_keep_timestamps_warns_about_the_72_hour_rule(tmp_path, no_cio_env, capsys):
    # minimal.yaml starts 2026-11-02: older than 72 h on any later day, so the warning applies.
    with FaultyServer() as server:
        code = cli_main(
            ["send", str(MINIMAL), "--target", server.url, "--shoppers", "5", "--keep-timestamps",
             "--results", str(tmp_path)]
        )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0
    assert out.err.count("older than 72 h") == 1
    summary = orjson.loads((_run_dir(tmp_path) / "delivery.json").read_bytes())
    assert summary["stale_timestamps"] == summary["acknowledged"] > 0
    assert "cannot trigger campaigns" in out.out


def test_cli_send_virtual_clock_stamps_every_request(tmp_path, no_cio_env, capsys):
    with FaultyServer() as server:
        code = cli_main(
            ["send", str(MINIMAL), "--target", server.url, "--shoppers", "20", "--clock", "virtual",
             "--results", str(tmp_path)]
        )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    stamps = [int(r.headers["x-shopsim-clock"]) for r in server.received]
    assert stamps and stamps == sorted(stamps)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--api", "track-v9"], "invalid choice: 'track-v9'"),
        (["--concurrency", "0"], "must be at least 1"),
        (["--speed", "fast"], "expected a number"),
    ],
)
def test_cli_send_bad_flags_exit_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        cli_main(["send", str(MINIMAL), "--target", "http://127.0.0.1:9", "--results", str(tmp_path), *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("target", "extra", "message"),
    [
        ("https://collector.example.com", [], "needs CIO_PIPELINES_KEY"),
        ("https://collector.example.com", ["--api", "track-v1"], "needs CIO_SITE_ID and CIO_API_KEY"),
        ("https://track.customer.io", ["--api", "track-v1"], "--allow-production"),
        ("https://cdp-eu.customer.io", ["--allow-production"], "needs CIO_PIPELINES_KEY"),
        ("https://user:pw@collector.example.com", [], "must not carry credentials"),
        ("127.0.0.1:8085", [], "add the scheme"),
    ],
)
def test_cli_send_refuses_unsafe_or_uncredentialed_targets(
    tmp_path, no_cio_env, capsys, target, extra, message
):
    # Every case fails before any connection: these hosts are never contacted.
    code = cli_main(["send", str(MINIMAL), "--target", target, "--results", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("shopsim: ")
    assert "pw@" not in err
    assert not any(tmp_path.iterdir())


def test_cli_send_missing_scenario_exit_2(tmp_path, capsys):
    code = cli_main(["send", str(tmp_path / "nope.yaml"), "--target", "http://127.0.0.1:9"])
    assert code == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_send_process_exits_cleanly(tmp_path):
    """A real `python -m generator send` process against the faulty server: exit 0, no traceback."""
    with FaultyServer(cli_chaos) as server:
        # gevent's monkey-patched subprocess: this process keeps serving while it waits.
        proc = subprocess.run(
            [sys.executable, "-m", "generator", "send", str(MINIMAL), "--target", server.url,
             "--shoppers", "15", "--results", str(tmp_path), "--max-attempts", "8", "--batch-size", "10"],
            capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert "all delivered" in proc.stdout
    summary = orjson.loads((_run_dir(tmp_path) / "delivery.json").read_bytes())
    assert summary["given_up"] == 0 and summary["retries"] > 0
