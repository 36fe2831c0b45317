"""Fixed tables for event ``context`` blocks and page/screen naming.

Everything here is built once per process; the walker shares these dicts between events
(events are frozen and nobody mutates their context), so a context costs a dict merge per
page, not per event.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from generator.scenario.model import Device

USER_AGENTS: dict[Device, tuple[str, ...]] = {
    Device.MOBILE_WEB: (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Mobile Safari/537.36",
    ),
    Device.DESKTOP_WEB: (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    ),
}

_APP = {"name": "Shop", "version": "4.12.0", "build": "41200", "namespace": "com.example.shop"}
APP_CONTEXTS: dict[Device, tuple[dict[str, Any], ...]] = {
    Device.IOS_APP: (
        {
            "app": _APP,
            "device": {"type": "ios", "manufacturer": "Apple", "model": "iPhone15,2"},
            "os": {"name": "iOS", "version": "17.5"},
            "library": {"name": "customerio-ios", "version": "3.1.0"},
        },
        {
            "app": _APP,
            "device": {"type": "ios", "manufacturer": "Apple", "model": "iPhone16,1"},
            "os": {"name": "iOS", "version": "18.1"},
            "library": {"name": "customerio-ios", "version": "3.1.0"},
        },
    ),
    Device.ANDROID_APP: (
        {
            "app": _APP,
            "device": {"type": "android", "manufacturer": "Google", "model": "Pixel 8"},
            "os": {"name": "Android", "version": "14"},
            "library": {"name": "customerio-android", "version": "4.2.0"},
        },
        {
            "app": _APP,
            "device": {"type": "android", "manufacturer": "samsung", "model": "SM-S911B"},
            "os": {"name": "Android", "version": "14"},
            "library": {"name": "customerio-android", "version": "4.2.0"},
        },
    ),
}

WEB_LIBRARY = {"name": "analytics.js", "version": "2.11.1"}
SERVER_CONTEXT: dict[str, Any] = {"library": {"name": "shopsim-server", "version": "0.1.0"}}
"""Context of backend events (purchases, subscriptions): no page, no browser."""

SCREEN_NAMES = {
    "home": "Home",
    "category": "Category",
    "product": "Product Detail",
    "search": "Search",
    "cart": "Cart",
    "checkout": "Checkout",
    "confirmation": "Order Confirmation",
    "account": "Account",
    "content": "Journal",
}
"""Screen name an app shows where a web state would load a page of that kind."""

STATIC_PAGES = {
    "home": ("/", "Home"),
    "cart": ("/cart", "Cart"),
    "checkout": ("/checkout", "Checkout"),
    "confirmation": ("/checkout/thank-you", "Order confirmation"),
    "account": ("/account/login", "Account"),
    "content": ("/blogs/journal", "Journal"),
}
"""Path and title of page kinds that do not depend on a product, category or search term."""

SEARCH_TERMS = (
    "linen", "sneakers", "dress", "black tee", "wool sweater", "jeans", "gift", "sale", "tote", "boots",
    "cashmere", "shorts",
)  # fmt: skip


@cache
def device_context(device: Device, variant: int, ip: str, locale: str) -> dict[str, Any]:
    """The base context of one device (user agent or app/os/device blocks, ip, locale).

    Cached: the combinations are few (devices × variants × documentation IPs × locales), and
    every event on such a device shares the one dict (nobody mutates event contexts).
    """
    if device.is_app:
        options = APP_CONTEXTS[device]
        base = dict(options[variant % len(options)])
    else:
        agents = USER_AGENTS[device]
        base = {"userAgent": agents[variant % len(agents)], "library": WEB_LIBRARY}
    base["ip"] = ip
    base["locale"] = locale
    return base
