"""Customer.io credentials: from environment variables or a file given by path, never from scenarios.

Names (the same in the environment and in a credentials file)::

    CIO_SITE_ID          Track API site id       (Basic auth user for /api/v1, /api/v2)
    CIO_API_KEY          Track API key           (Basic auth password for /api/v1, /api/v2)
    CIO_PIPELINES_KEY    Data Pipelines API key  (Basic auth user, empty password; browser ``writeKey``)
    CIO_APP_KEY          App API key             (``Authorization: Bearer``; observation reads)
    CIO_WEBHOOK_SECRET   reporting-webhook signing secret (HMAC-SHA256 of ``v0:<ts>:<body>``)

A credentials file holds ``KEY=VALUE`` lines; blank lines, ``# comments``, an ``export ``
prefix and single or double quotes around the value are accepted, other keys are ignored (so
a project ``.env`` works). Precedence, per field: the file (explicitly named, so it wins),
then the environment, then ``defaults``. An empty value counts as unset.

Secrets never appear in ``repr``, error messages or logs: errors name the file and line only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from generator.errors import DeliveryError

ENV_NAMES: dict[str, str] = {
    "site_id": "CIO_SITE_ID",
    "api_key": "CIO_API_KEY",
    "pipelines_key": "CIO_PIPELINES_KEY",
    "app_key": "CIO_APP_KEY",
    "webhook_secret": "CIO_WEBHOOK_SECRET",
}
"""Credentials field → environment variable / file key."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """The keys shopsim may need; any of them may be missing (``None``)."""

    site_id: str | None = None
    api_key: str | None = None
    pipelines_key: str | None = None
    app_key: str | None = None
    webhook_secret: str | None = None

    def __repr__(self) -> str:
        # Only whether a value is set: a repr ends up in logs, tracebacks and test output.
        shown = ", ".join(f"{f.name}={'<set>' if getattr(self, f.name) else None}" for f in fields(self))
        return f"Credentials({shown})"

    __str__ = __repr__


LOCAL_DEFAULTS = Credentials(
    site_id="shopsim-site",
    api_key="shopsim-track-key",
    pipelines_key="shopsim-pipelines-key",
    app_key="shopsim-app-key",
    webhook_secret="shopsim-webhook-secret",
)
"""What the embedded emulator accepts by default; fine for loopback, never valid anywhere else."""


def load_credentials(
    *,
    env: Mapping[str, str] | None = None,
    file: Path | None = None,
    defaults: Credentials | None = None,
) -> Credentials:
    """Credentials from ``file`` (if given), then ``env`` (default ``os.environ``), then ``defaults``.

    Raises :class:`~generator.errors.DeliveryError` when the file cannot be read or has a line
    that is not ``KEY=VALUE`` (the message names ``file:line``, never the value).
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    from_file = _read_file(file) if file is not None else {}
    base = defaults or Credentials()
    values: dict[str, str | None] = {}
    for name, key in ENV_NAMES.items():
        value = from_file.get(key) or environ.get(key) or getattr(base, name)
        values[name] = value or None
    return Credentials(**values)


def _read_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeliveryError(f"cannot read credentials file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DeliveryError(
            f"cannot read credentials file {path}: not UTF-8 text (byte {exc.start}); "
            "expected KEY=VALUE lines"
        ) from None
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").isalnum():
            raise DeliveryError(
                f"{path}:{number}: expected KEY=VALUE (e.g. CIO_API_KEY=...); known keys: "
                + ", ".join(ENV_NAMES.values())
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value
    return out
