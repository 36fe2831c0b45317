"""Run directories under ``results/`` and the ``run.json`` written first in each.

``run.json`` fields: ``run_id`` (str), ``command`` (argv list, credentials never included),
``scenario`` (path), ``scenario_sha256`` (hex of the file bytes), ``seed`` (int),
``versions`` (shopsim, python, numpy, faker, locust), ``clock`` (virtual|wall),
``target`` (URL without userinfo), ``started_at`` (ISO-8601 UTC wall time; metadata only,
never used in simulation).
"""

from __future__ import annotations

import hashlib
import platform
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from generator.errors import ShopsimError

DEFAULT_RESULTS = Path("results")


def new_run_dir(results: Path, scenario_name: str, seed: int, *, kind: str = "run") -> Path:
    """Create and return ``results/<kind>-<scenario>-<seed>-<utc stamp>`` (unique)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", scenario_name)
    base = results / f"{kind}-{safe}-s{seed}-{stamp}"
    path = base
    n = 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}")
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        # --results names a file, or a place that cannot hold directories.
        raise ShopsimError(f"cannot create a run directory in {results}: {exc.strerror or exc}") from None
    return path


def redact_url(url: str | None) -> str | None:
    """Drop userinfo (``user:pass@``) from a URL so credentials never reach results/."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def versions() -> dict[str, str]:
    """Versions that decide seeded output and load behaviour."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("shopsim", "numpy", "faker", "locust", "orjson"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "missing"
    return out


def write_run_json(
    run_dir: Path,
    *,
    scenario_path: Path | str,
    seed: int,
    clock: str,
    target: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``run.json`` (first file of every run) and return what was written."""
    path = Path(scenario_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    record: dict[str, Any] = {
        "run_id": run_dir.name,
        "command": _redacted_argv(sys.argv),
        "scenario": str(path),
        "scenario_sha256": digest,
        "seed": seed,
        "versions": versions(),
        "clock": clock,
        "target": redact_url(target),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if extra:
        record.update(extra)
    (run_dir / "run.json").write_bytes(
        orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    return record


_SECRET_FLAGS = ("--api-key", "--site-id", "--pipelines-key", "--app-key", "--webhook-secret", "--write-key")


def _redacted_argv(argv: list[str]) -> list[str]:
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag in _SECRET_FLAGS:
            if eq:
                out.append(f"{flag}=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append((redact_url(arg) or arg) if "://" in arg else arg)
    return out
