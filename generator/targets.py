"""Where shopsim may send events: the safety rules for targets (DESIGN.md, "Safety").

- A loopback target (``localhost``, ``127.0.0.0/8``, ``::1``) is always allowed; it is the default.
- Any other host must be named explicitly (``--target``); it is never a default.
- A Customer.io production host (``customer.io`` or any ``*.customer.io``: ``track``, ``track-eu``,
  ``cdp``, ``cdp-eu``, ``api``, ``api-eu``, ...) additionally needs ``--allow-production``.
- Credentials never travel in the URL: ``user:pass@host`` is refused (they would end up in
  shell history and run records); use the environment or ``--credentials-file``.

Nothing here resolves names or opens a connection: the decision is made on the URL text, so a
check never leaks traffic to a host the user did not mean.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from generator.errors import TargetError

__all__ = ["DEFAULT_TARGET", "check_target", "is_loopback", "is_production_host", "target_is_loopback"]

# Where `shopsim serve` listens unless told otherwise; the target used when none is given.
DEFAULT_TARGET = "http://127.0.0.1:8085"

_PRODUCTION_DOMAIN = "customer.io"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` (and ``*.localhost``), any 127.0.0.0/8 address and ``::1``."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_production_host(host: str) -> bool:
    """True for Customer.io's own hosts: ``customer.io`` and every ``*.customer.io``."""
    name = host.strip("[]").rstrip(".").lower()
    return name == _PRODUCTION_DOMAIN or name.endswith("." + _PRODUCTION_DOMAIN)


_HOST = re.compile(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:.]+")
"""Host names (letters, digits, dots, hyphens), IPv4 and IPv6 literals (brackets removed)."""


def check_target(url: str | None, *, allow_production: bool) -> str:
    """Validate a target URL against the safety rules and return it normalized.

    ``None`` means "not given" and returns :data:`DEFAULT_TARGET` (loopback). The result has no
    trailing slash; a base path (``http://host/ingest``) is kept. Raises :class:`TargetError`
    with a message that says what to change.
    """
    if url is None:
        return DEFAULT_TARGET
    text = url.strip()
    if not text:
        raise TargetError("--target is empty: give a URL such as http://127.0.0.1:8085")
    if "://" not in text:
        raise TargetError(f"--target {text!r} is not a URL: add the scheme, e.g. http://{text}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"--target {_safe(text)!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise TargetError(f"--target must be an http:// or https:// URL, got scheme {parts.scheme!r}")
    host = parts.hostname
    if not host:
        raise TargetError(f"--target {_safe(text)!r} names no host")
    if not _HOST.fullmatch(host):
        # '%2e' and friends: no resolver takes them, and they would dodge the production check.
        raise TargetError(f"--target host {host!r} is not a host name or an IP address")
    if parts.username is not None or parts.password is not None:
        raise TargetError(
            "--target must not carry credentials (user:password@host); "
            "set CIO_SITE_ID/CIO_API_KEY/CIO_PIPELINES_KEY or use --credentials-file"
        )
    if parts.query or parts.fragment:
        raise TargetError(f"--target {_safe(text)!r} must not have a query string or fragment")
    if is_production_host(host) and not allow_production:
        raise TargetError(
            f"--target {host} is a Customer.io production host: events would reach a real workspace. "
            "Pass --allow-production if that is what you want."
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def target_is_loopback(url: str) -> bool:
    """True when a (checked) target URL points at this machine."""
    host = urlsplit(url).hostname
    return host is not None and is_loopback(host)


def _safe(text: str) -> str:
    """The URL without anything before an ``@`` in its authority (never echo credentials)."""
    scheme, sep, rest = text.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"
