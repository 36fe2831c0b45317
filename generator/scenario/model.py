"""The typed, frozen scenario model (pydantic v2).

A scenario is validated once, when it is loaded (``generator.scenario.load``); after that the
hot path reads plain attributes. Every section the issues name is modelled and validated here,
including the ones later stages execute (``campaigns``, ``faults``, ``expect``).

Units: every duration is an ``int`` of milliseconds (YAML takes ``"90s"``, ``"1h30m"``, ...);
probabilities are floats in [0, 1]; times are UTC.

Shape (abridged; ``scenarios/*.yaml`` are complete examples)::

    name: d2c_cart_recovery
    seed: 42
    start: 2026-11-02T00:00:00Z
    shoppers: 2000                      # and/or duration: 1d
    population: {arrivals: {...}, devices: {...}, sources: {...}, returning_share: 0.2}
    catalog: {products: 120, categories: [...], price: {...}, currency: USD}
    identity: {strategy: id_and_email, email_domain: example.com, points: {...}, cross_device_share: 0.1}
    journeys: {name: {weight, audience, source, start, states: {state: {emit, repeat, next, think}}}}
    tracking_plan: default              # or {extends: default, events: {...}}
    campaigns: {cart_recovery: {trigger, delay, exit_on, frequency}}
    faults: {latency: [...], drops: [...], ...}
    expect: ["suppression_violations == 0", "trigger_recall[cart_recovery] >= 0.95"]
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from generator.durations import DURATION_PATTERN, MAX_DURATION_MS, format_duration, parse_duration

# --------------------------------------------------------------------------- primitives


def _within_max(ms: int, written: Any) -> int:
    # One bound for every duration of a scenario (durations.MAX_DURATION_MS explains the value).
    if abs(ms) > MAX_DURATION_MS:
        raise ValueError(
            f"a duration must be at most {format_duration(MAX_DURATION_MS)} (about ten years), got {written}"
        )
    return ms


def _duration(value: Any) -> int:
    return _within_max(parse_duration(value), value)


Duration = Annotated[
    int,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0, "maximum": MAX_DURATION_MS // 1000},
            ],
            "description": "A duration: '250ms', '90s', '15m', '1h30m', '2d', or a number of seconds; "
            "at most 3660d.",
        }
    ),
]
"""Milliseconds, written in YAML as ``"90s"`` etc.; at most :data:`MAX_DURATION_MS`."""


def _signed(value: Any) -> int:
    if isinstance(value, str) and value.strip().startswith("-"):
        return _within_max(-parse_duration(value.strip()[1:]), value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return _within_max(-parse_duration(-value), value)
    return _within_max(parse_duration(value), value)


SignedDuration = Annotated[
    int,
    BeforeValidator(_signed),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "number"}],
            "description": "A duration that may be negative: '-2m'.",
        }
    ),
]


def _not_bool(value: Any) -> Any:
    # pydantic reads true/false as 1.0/0.0 for a float; in a scenario that is always a slip.
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


# Bounds go before these validators in an Annotated: after them pydantic's JSON Schema would
# carry them as "ge"/"le" instead of "minimum"/"maximum".
_NUMBER = BeforeValidator(_not_bool)
"""Marks a finite number (``Frozen`` forbids inf and NaN for every float) that is not true/false."""


def _not_bool_or_text(value: Any) -> Any:
    # pydantic would read true as 1 and '50' as 50; neither is how a scenario writes a count.
    if isinstance(value, bool | str):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


_WHOLE = BeforeValidator(_not_bool_or_text)
"""Marks a whole number as written: not true/false, not text such as '50'."""

Probability = Annotated[float, Field(ge=0.0, le=1.0), _NUMBER]
PositiveFloat = Annotated[float, Field(gt=0.0), _NUMBER]
MAX_WEIGHT = 1_000_000.0
"""Relative weights (devices, sources, journeys, quantities, diurnal hours) are normalised by
their sum; the bound keeps that sum finite and is far above any ratio a scenario needs."""
Weight = Annotated[float, Field(ge=0.0, le=MAX_WEIGHT), _NUMBER]
MAX_SIGMA = 3.0
"""Largest log-normal sigma: p99 ≈ 1000 × median, wider than any real dwell, latency or price
spread; a wider one makes rare draws overflow a float or a timestamp."""
Sigma = Annotated[float, Field(gt=0.0, le=MAX_SIGMA), _NUMBER]
Seed = Annotated[int, Field(ge=0, lt=2**63), _WHOLE]
Name = Annotated[str, Field(min_length=1, max_length=100)]


def _addressable(name: str) -> str:
    if "[" in name or "]" in name:
        raise ValueError(
            f"campaign name {name!r} may not contain '[' or ']': "
            "thresholds name a campaign in brackets, as in trigger_recall[cart_recovery]"
        )
    return name


CampaignName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_addressable)]
"""A campaign name: ``[`` and ``]`` delimit it in thresholds (``trigger_recall[name]``), so it has neither."""


class Frozen(BaseModel):
    """Base of every scenario section: immutable, no unknown keys, no infinite or NaN numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False)


def _exactly_one(model: BaseModel, names: tuple[str, ...], what: str) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) != 1:
        options = ", ".join(f"'{n}'" for n in names)
        if not given:
            raise ValueError(f"{what} needs exactly one of {options}")
        raise ValueError(f"{what} takes exactly one of {options}, got {', '.join(given)}")


# --------------------------------------------------------------------------- distributions


class LogNormal(Frozen):
    """Log-normal by its median and either ``sigma`` (of the underlying normal) or ``p99``."""

    median: Duration
    sigma: Sigma | None = None
    p99: Duration | None = None

    @model_validator(mode="after")
    def _spread(self) -> LogNormal:
        if (self.sigma is None) == (self.p99 is None):
            raise ValueError("lognormal needs exactly one of 'sigma' or 'p99'")
        if self.p99 is not None and self.p99 <= self.median:
            raise ValueError("lognormal 'p99' must be larger than 'median'")
        if self.median <= 0:
            raise ValueError("lognormal 'median' must be positive")
        if self.p99 is not None and self.shape > MAX_SIGMA:
            raise ValueError("lognormal 'p99' may be at most about 1000 times the median (sigma ≤ 3)")
        if self.sigma is not None and self.median * math.exp(self.sigma * _Z99) > MAX_DURATION_MS:
            # Its p99 (median × e^(2.33 sigma)) would be beyond the longest duration a scenario may write.
            raise ValueError(
                f"lognormal 'sigma' {self.sigma:g} puts its p99 above {format_duration(MAX_DURATION_MS)}; "
                "lower the median or the sigma"
            )
        return self

    @property
    def shape(self) -> float:
        """Sigma of the underlying normal (derived from p99 when that was given)."""
        if self.sigma is not None:
            return self.sigma
        assert self.p99 is not None
        return math.log(self.p99 / self.median) / _Z99


_Z99 = 2.3263478740408408
"""The standard normal's 99th percentile."""


class Exponential(Frozen):
    """Exponential by its mean."""

    mean: Duration


class Uniform(Frozen):
    """Uniform between ``min`` and ``max`` (inclusive of min)."""

    min: Duration
    max: Duration

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.max < self.min:
            raise ValueError("uniform 'max' must not be smaller than 'min'")
        return self


class Distribution(Frozen):
    """A non-negative random duration: exactly one of ``fixed``, ``exponential``, ``lognormal``, ``uniform``.

    A bare duration (``think: 30s``) means ``fixed``.
    """

    fixed: Duration | None = None
    exponential: Exponential | None = None
    lognormal: LogNormal | None = None
    uniform: Uniform | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return {"fixed": value}
        return value

    @model_validator(mode="after")
    def _one(self) -> Distribution:
        _exactly_one(self, ("fixed", "exponential", "lognormal", "uniform"), "a distribution")
        return self

    @property
    def mean_ms(self) -> float:
        """Expected value in milliseconds (for summaries and analytic estimates)."""
        if self.fixed is not None:
            return float(self.fixed)
        if self.exponential is not None:
            return float(self.exponential.mean)
        if self.uniform is not None:
            return (self.uniform.min + self.uniform.max) / 2
        assert self.lognormal is not None
        return self.lognormal.median * math.exp(self.lognormal.shape**2 / 2)


# --------------------------------------------------------------------------- population


class Device(StrEnum):
    """Device classes; web devices emit ``source=web``, apps emit ``source=app``."""

    MOBILE_WEB = "mobile_web"
    DESKTOP_WEB = "desktop_web"
    IOS_APP = "ios_app"
    ANDROID_APP = "android_app"

    @property
    def is_app(self) -> bool:
        return self in (Device.IOS_APP, Device.ANDROID_APP)


DIURNAL_PRESETS: dict[str, tuple[float, ...]] = {
    "flat": (1.0,) * 24,
    # Hourly relative visit intensity (UTC hours treated as shop-local): lowest 3–5 AM,
    # rising from mid-morning, evening peak 8–10 PM (anchors.md §b "Diurnal peak").
    "d2c_evening": (
        0.45, 0.30, 0.20, 0.15, 0.15, 0.20, 0.35, 0.55, 0.75, 0.90, 1.00, 1.05,
        1.15, 1.20, 1.15, 1.10, 1.10, 1.15, 1.30, 1.55, 1.75, 1.70, 1.30, 0.80,
    ),
}  # fmt: skip


MIN_RATE_PER_HOUR = 0.001
"""About one shopper in six weeks (88 in the longest run, 3660d). Slower rates (``1e-9``) put
the arrivals of even a few shoppers past any date a timestamp can hold."""
MAX_RATE_PER_HOUR = 1e9
"""About 280,000 shoppers a second: beyond any shop, and still a finite, positive gap between draws."""
MAX_WEEKEND_FACTOR = 100.0
"""Arrivals are drawn at the busiest hour's rate and thinned, so weekday hours cost
``weekend_factor`` draws per shopper: a huge factor would make a weekday take forever."""


class Arrivals(Frozen):
    """Non-homogeneous Poisson arrivals: ``rate_per_hour`` × diurnal factor × weekend factor."""

    rate_per_hour: Annotated[float, Field(ge=MIN_RATE_PER_HOUR, le=MAX_RATE_PER_HOUR), _NUMBER]
    diurnal: (
        Literal["flat", "d2c_evening"] | tuple[Annotated[float, Field(gt=0.0, le=MAX_WEIGHT), _NUMBER], ...]
    ) = "d2c_evening"
    weekend_factor: Annotated[float, Field(gt=0.0, le=MAX_WEEKEND_FACTOR), _NUMBER] = 1.0

    @field_validator("diurnal")
    @classmethod
    def _hours(cls, value: Any) -> Any:
        if isinstance(value, tuple) and len(value) != 24:
            raise ValueError(f"diurnal needs 24 hourly factors, got {len(value)}")
        return value

    @property
    def hourly(self) -> tuple[float, ...]:
        """The 24 hourly factors, normalised to mean 1 so ``rate_per_hour`` stays the daily mean."""
        raw = DIURNAL_PRESETS[self.diurnal] if isinstance(self.diurnal, str) else self.diurnal
        mean = sum(raw) / len(raw)
        return tuple(f / mean for f in raw)


class Utm(Frozen):
    """UTM campaign fields carried in page URLs and ``context.campaign``."""

    source: str
    medium: str
    campaign: str | None = None
    content: str | None = None
    term: str | None = None


class TrafficSource(Frozen):
    """A traffic source with its weight in the mix, its UTM values and its referrer."""

    weight: Weight
    utm: Utm | None = None
    referrer: str | None = None


def _default_devices() -> dict[Device, float]:
    # anchors.md §b: smartphone ≈ 64%, desktop ≈ 33%; apps take a share of mobile.
    return {Device.MOBILE_WEB: 0.56, Device.DESKTOP_WEB: 0.32, Device.IOS_APP: 0.08, Device.ANDROID_APP: 0.04}


def _default_sources() -> dict[str, TrafficSource]:
    return {
        "instagram": TrafficSource(
            weight=0.35,
            utm=Utm(source="instagram", medium="social", campaign="evergreen"),
            referrer="https://l.instagram.com/",
        ),
        "google": TrafficSource(
            weight=0.30,
            utm=Utm(source="google", medium="cpc", campaign="brand"),
            referrer="https://www.google.com/",
        ),
        "email": TrafficSource(
            weight=0.10, utm=Utm(source="customerio", medium="email", campaign="newsletter")
        ),
        "direct": TrafficSource(weight=0.25),
    }


class Population(Frozen):
    """Who arrives, when, on which device and from where."""

    arrivals: Arrivals
    devices: dict[Device, Weight] = Field(default_factory=_default_devices)
    sources: dict[Name, TrafficSource] = Field(default_factory=_default_sources)
    returning_share: Probability = 0.2

    @field_validator("devices")
    @classmethod
    def _some_device(cls, value: dict[Device, float]) -> dict[Device, float]:
        if not value or sum(value.values()) <= 0:
            raise ValueError("devices need at least one positive weight")
        return value

    @field_validator("sources")
    @classmethod
    def _some_source(cls, value: dict[str, TrafficSource]) -> dict[str, TrafficSource]:
        if not value or sum(s.weight for s in value.values()) <= 0:
            raise ValueError("sources need at least one positive weight")
        return value


# --------------------------------------------------------------------------- catalog


MAX_PRICE = 10_000_000.0
"""Prices are drawn in integer cents; ten million is above any D2C product and far inside int64."""
Money = Annotated[float, Field(gt=0.0, le=MAX_PRICE), _NUMBER]


class Price(Frozen):
    """Log-normal product prices, clipped to [min, max] and rounded to cents."""

    median: Money = 45.0
    sigma: Sigma = 0.6
    min: Money = 5.0
    max: Money = 400.0

    @model_validator(mode="after")
    def _range(self) -> Price:
        if not self.min <= self.median <= self.max:
            raise ValueError("price needs min <= median <= max")
        return self


class Catalog(Frozen):
    """The product catalogue shoppers browse; products carry every field a cart message needs."""

    products: Annotated[int, Field(ge=1, le=1_000_000), _WHOLE] = 120
    variants_per_product: Annotated[int, Field(ge=1, le=50), _WHOLE] = 3
    categories: tuple[Name, ...] = ("tops", "bottoms", "dresses", "shoes", "accessories")
    price: Price = Field(default_factory=Price)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    base_url: Annotated[str, Field(pattern=r"^https?://[^/\s]+$")] = "https://shop.example.com"
    quantity: tuple[Weight, ...] = (0.78, 0.15, 0.05, 0.02)
    """Relative weights of quantity 1, 2, 3, ... in an add to cart."""
    seed: Seed | None = None
    """The catalogue's own seed. A shop's products do not change from run to run: set it when
    campaign filters name product ids, so they match whatever ``--seed`` a run uses. Unset, the
    catalogue is drawn from the run's seed."""

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("catalog needs at least one category")
        if len(set(value)) != len(value):
            raise ValueError("catalog categories must be unique")
        return value


# --------------------------------------------------------------------------- identity

RESERVED_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")


class Identity(Frozen):
    """How shoppers become known people.

    ``points`` are identify points (``newsletter_popup: 0.08``): a state that emits
    ``identify: newsletter_popup`` identifies a still-anonymous shopper with that probability.
    """

    strategy: Literal["id_and_email", "id", "email"] = "id_and_email"
    email_domain: Annotated[str, Field(pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$")] = "example.com"
    points: dict[Name, Probability] = Field(
        default_factory=lambda: {
            "newsletter_popup": 0.08,
            "quiz": 0.03,
            "back_in_stock": 0.02,
            "account_login": 1.0,
            "checkout_email": 1.0,
        }
    )
    cross_device_share: Probability = 0.1
    """Share of shoppers whose later sessions (after a ≥ 30 min gap) happen on another device."""


# --------------------------------------------------------------------------- journeys


class CallKind(StrEnum):
    """What a journey state can emit."""

    PAGE = "page"
    TRACK = "track"
    SCREEN = "screen"
    IDENTIFY = "identify"


PAGE_KINDS = (
    "home",
    "category",
    "product",
    "search",
    "cart",
    "checkout",
    "confirmation",
    "account",
    "content",
)


class Call(Frozen):
    """One call a state emits: exactly one of ``page`` (a page kind), ``track`` (an event in the
    tracking plan), ``screen`` (a screen name; apps) or ``identify`` (an identify point).

    ``p`` makes the call itself optional (``{track: Product Viewed, p: 0.5}``).
    """

    page: (
        Literal[
            "home", "category", "product", "search", "cart", "checkout", "confirmation", "account", "content"
        ]
        | None
    ) = None
    track: Name | None = None
    screen: Name | None = None
    identify: Name | None = None
    p: Probability = 1.0

    @model_validator(mode="after")
    def _one(self) -> Call:
        _exactly_one(self, ("page", "track", "screen", "identify"), "a call")
        return self

    @property
    def kind(self) -> CallKind:
        for kind in CallKind:
            if getattr(self, kind.value) is not None:
                return kind
        raise AssertionError("validated to have one kind")  # pragma: no cover

    @property
    def target(self) -> str:
        value = getattr(self, self.kind.value)
        assert isinstance(value, str)
        return value


class Repeat(Frozen):
    """Emit a state's calls n times, n uniform in [min, max] ("views 2–3 products")."""

    min: Annotated[int, Field(ge=1, le=100), _WHOLE]
    max: Annotated[int, Field(ge=1, le=100), _WHOLE]

    @model_validator(mode="after")
    def _ordered(self) -> Repeat:
        if self.max < self.min:
            raise ValueError("repeat 'max' must not be smaller than 'min'")
        return self


class Transition(Frozen):
    """Go to ``to`` with probability ``p`` after a think time drawn from ``think``."""

    p: Probability
    think: Distribution | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"p": value}
        return value


class State(Frozen):
    """A journey state: the calls it emits, how often, and where it goes next.

    ``next`` maps target states to probabilities (or ``{p, think}``); the remainder
    ``1 − Σp`` is the chance the shopper leaves. A sum above 1 is an error.
    """

    emit: tuple[Call, ...] = ()
    repeat: Repeat | None = None
    next: dict[Name, Transition] = Field(default_factory=dict)
    think: Distribution | None = None

    @model_validator(mode="after")
    def _sum(self) -> State:
        total = sum(t.p for t in self.next.values())
        if total > 1.0 + 1e-9:
            parts = " + ".join(f"{name} {t.p:g}" for name, t in self.next.items())
            raise ValueError(f"transition probabilities sum to {total:g} (> 1): {parts}")
        return self

    @property
    def leave_p(self) -> float:
        return max(0.0, 1.0 - sum(t.p for t in self.next.values()))


def _default_think() -> Distribution:
    # Page dwell around half a minute with a long right tail (anchors.md §b: session p50 ≈ 127 s).
    return Distribution(lognormal=LogNormal(median="25s", sigma=0.9))


class Journey(Frozen):
    """A weighted state machine a shopper walks from ``start`` until they leave."""

    weight: Weight = 1.0
    audience: Literal["new", "returning", "any"] = "any"
    source: Name | None = None
    """Pin the traffic source (``instagram``); default: drawn from the population mix."""
    start: Name
    think: Distribution = Field(default_factory=_default_think)
    states: dict[Name, State]
    max_steps: Annotated[int, Field(ge=1, le=10_000), _WHOLE] = 200
    """Safety bound on states visited, so a loop with high return probability still ends."""


# --------------------------------------------------------------------------- tracking plan

PropertyType = Literal["string", "number", "integer", "boolean", "array", "object"]
_PROP_SPEC = re.compile(r"^(string|number|integer|boolean|array|object)(\?)?$")


class PropertySpec(Frozen):
    """A planned property: its JSON type and whether it is required (``string?`` = optional)."""

    type: PropertyType
    required: bool = True

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _PROP_SPEC.match(value.strip())
            if not match:
                raise ValueError(
                    f"unknown property type {value!r}; use string, number, integer, boolean, array or object "
                    "(add '?' for optional)"
                )
            return {"type": match.group(1), "required": match.group(2) is None}
        return value


class EventSpec(Frozen):
    """A planned event: its properties and where it is emitted from.

    ``source: server`` events (purchases, subscriptions) come from the shop's backend, so
    ad blockers cannot drop them but server latency and clock skew apply.
    """

    properties: dict[Name, PropertySpec] = Field(default_factory=dict)
    source: Literal["client", "server"] = "client"
    description: str = ""


_PRODUCT = {
    "sku": "string",
    "product_id": "string",
    "variant_id": "string",
    "variant_title": "string",
    "name": "string",
    "category": "string",
    "price": "number",
    "currency": "string",
    "product_url": "string",
    "image_url": "string",
}


def _spec(
    props: dict[str, str], source: Literal["client", "server"] = "client", description: str = ""
) -> EventSpec:
    return EventSpec(
        properties={k: PropertySpec.model_validate(v) for k, v in props.items()},
        source=source,
        description=description,
    )


def default_events() -> dict[str, EventSpec]:
    """The seed's D2C taxonomy (reference/seed-customerio-events.txt), with messaging fields."""
    return {
        "Product Viewed": _spec(_PRODUCT, description="A product detail view."),
        "Added to Cart": _spec(
            {**_PRODUCT, "quantity": "number", "cart_total": "number", "cart_id": "string"},
            description="A product added to the cart; the cart-recovery trigger.",
        ),
        "Checkout Started": _spec(
            {"cart_id": "string", "value": "number", "currency": "string", "products": "array"},
            description="The shopper began checkout.",
        ),
        "Order Completed": _spec(
            {
                "order_id": "string",
                "checkout_id": "string",
                "total": "number",
                "subtotal": "number",
                "shipping": "number",
                "tax": "number",
                "currency": "string",
                "products": "array",
            },
            source="server",
            description="A purchase; the suppression signal for cart and browse flows.",
        ),
        "Subscription Created": _spec(
            {
                "subscription_id": "string",
                "plan": "string",
                "interval": "string",
                "price": "number",
                "currency": "string",
            },
            source="server",
        ),
        "Subscription Cancelled": _spec(
            {"subscription_id": "string", "plan": "string", "reason": "string?"}, source="server"
        ),
    }


def default_page_properties() -> dict[str, PropertySpec]:
    """Page events carry url, path, title, category, product ids, referrer and UTM fields."""
    props = {
        "url": "string",
        "path": "string",
        "title": "string",
        "referrer": "string?",
        "search": "string?",
        "category": "string?",
        "product_id": "string?",
        "sku": "string?",
        "utm_source": "string?",
        "utm_medium": "string?",
        "utm_campaign": "string?",
    }
    return {k: PropertySpec.model_validate(v) for k, v in props.items()}


PROPERTY_SOURCES = frozenset(
    {
        # product (Product Viewed, Added to Cart, page views of a product)
        "sku", "product_id", "variant_id", "variant_title", "name", "brand", "category", "price", "currency",
        "product_url", "image_url", "url", "position",
        # cart and checkout
        "quantity", "cart_total", "cart_id", "value", "products", "coupon",
        # order
        "order_id", "checkout_id", "total", "subtotal", "revenue", "shipping", "tax", "discount",
        # subscription
        "subscription_id", "plan", "interval", "reason",
        # page context
        "path", "title", "referrer", "search", "query", "utm_source", "utm_medium", "utm_campaign",
        "utm_content", "utm_term",
    }
)  # fmt: skip
"""Property names the simulator knows how to fill. A tracking plan may only *require* these;
the loader reports any other required property (with a did-you-mean)."""


class TrackingPlan(Frozen):
    """Event names with their required properties and types.

    ``tracking_plan: default`` (or omitting it) is the seed's taxonomy. A mapping with
    ``extends: default`` adds or overrides events on top of it; ``extends: none`` starts empty.
    """

    extends: Literal["default", "none"] = "default"
    events: dict[Name, EventSpec] = Field(default_factory=dict)
    page: dict[Name, PropertySpec] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value == "default":
            return {"extends": "default"}
        return value

    @property
    def all_events(self) -> dict[str, EventSpec]:
        """The effective event table (defaults merged with this plan's own events)."""
        base = default_events() if self.extends == "default" else {}
        return {**base, **self.events}

    @property
    def page_properties(self) -> dict[str, PropertySpec]:
        base = default_page_properties() if self.extends == "default" else {}
        return {**base, **self.page}


# --------------------------------------------------------------------------- campaigns

_FILTER = re.compile(
    r"^\s*(?P<field>[A-Za-z_][\w.]*)\s*(?P<op>==|!=|>=|<=|>|<|\bexists\b|\bin\b)\s*(?P<value>.*?)\s*$"
)


class FilterOp(StrEnum):
    EQ = "=="
    NE = "!="
    GE = ">="
    LE = "<="
    GT = ">"
    LT = "<"
    EXISTS = "exists"
    IN = "in"


class Filter(Frozen):
    """A property filter on the triggering event, written ``"cart_total >= 20"``.

    Comparison is type-strict, like a segment condition on a typed attribute: a number
    compared with a string never matches (that is how schema drift fractures triggers).
    Values are YAML/JSON literals: ``20``, ``'USD'``, ``"USD"``, ``true``, ``[a, b]`` for ``in``.
    """

    field: str
    op: FilterOp
    value: Any = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _FILTER.match(value)
        if not match:
            raise ValueError(
                f"cannot read filter {value!r}; write '<property> <op> <value>' with op one of "
                "==, !=, >=, <=, >, <, in, or '<property> exists'"
            )
        op = match.group("op")
        raw = match.group("value")
        if op == "exists":
            if raw:
                raise ValueError(f"'exists' takes no value in filter {value!r}")
            return {"field": match.group("field"), "op": op}
        if not raw:
            raise ValueError(f"filter {value!r} has no value after {op!r}")
        import yaml

        try:
            literal = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ValueError(f"cannot read the value {raw!r} in filter {value!r}") from None
        if op == "in" and not isinstance(literal, list):
            raise ValueError(f"'in' needs a list, e.g. \"currency in [USD, EUR]\", in filter {value!r}")
        if op in (">=", "<=", ">", "<") and not isinstance(literal, int | float):
            raise ValueError(f"{op!r} needs a number in filter {value!r}")
        return {"field": match.group("field"), "op": op, "value": literal}

    def matches(self, properties: Any) -> bool:
        """Whether a property mapping passes this filter (dotted fields reach into objects)."""
        current = properties
        for part in self.field.split("."):
            if not isinstance(current, dict) or part not in current:
                return False
            current = current[part]
        actual = current
        if self.op is FilterOp.EXISTS:
            return actual is not None
        if self.op is FilterOp.IN:
            return any(_same_type(actual, v) and actual == v for v in self.value)
        if not _same_type(actual, self.value):
            return self.op is FilterOp.NE
        if self.op is FilterOp.EQ:
            return bool(actual == self.value)
        if self.op is FilterOp.NE:
            return bool(actual != self.value)
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return False
        if self.op is FilterOp.GE:
            return bool(actual >= self.value)
        if self.op is FilterOp.LE:
            return bool(actual <= self.value)
        if self.op is FilterOp.GT:
            return bool(actual > self.value)
        return bool(actual < self.value)

    def __str__(self) -> str:
        if self.op is FilterOp.EXISTS:
            return f"{self.field} exists"
        return f"{self.field} {self.op.value} {self.value!r}"


def _same_type(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return type(a) is type(b)


class Behavior(Frozen):
    """A behaviour trigger: when ``event`` is processed and the person has performed it at least
    ``at_least`` times with timestamps within ``within`` before it (this one included), and has
    performed none of ``and_not`` within ``and_not_within`` (default: ``within``) before it.
    """

    event: Name
    at_least: Annotated[int, Field(ge=1, le=1000), _WHOLE] = 1
    within: Duration
    and_not: tuple[Name, ...] = ()
    and_not_within: Duration | None = None

    @property
    def exclusion_window(self) -> int:
        return self.within if self.and_not_within is None else self.and_not_within


class Trigger(Frozen):
    """Exactly one of ``event`` (with optional ``where`` filters) or ``behavior``."""

    event: Name | None = None
    where: tuple[Filter, ...] = ()
    behavior: Behavior | None = None

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        _exactly_one(self, ("event", "behavior"), "a trigger")
        return self

    @property
    def event_name(self) -> str:
        """The event whose processing evaluates this trigger."""
        if self.event is not None:
            return self.event
        assert self.behavior is not None
        return self.behavior.event


class OncePer(Frozen):
    once_per: Duration


class Campaign(Frozen):
    """A campaign as configured in the workspace (DESIGN.md, "The campaign model").

    A person enters when a processed event matches ``trigger`` (identified people only, the
    event associated within 72 h of its timestamp, not merged from a ``merge_customers``
    secondary, and ``frequency`` allows it). The message is sent ``delay`` after entry unless
    an ``exit_on`` event is processed for the person after entry and before the send.
    """

    # At most 64-bit: a larger integer fails to encode as JSON ("Integer exceeds 64-bit range").
    id: Annotated[int, Field(ge=1, lt=2**63), _WHOLE] | None = None
    description: str = ""
    trigger: Trigger
    delay: Duration = 0
    exit_on: tuple[Name, ...] = ()
    frequency: Literal["every_time", "once"] | OncePer = "every_time"
    require: Literal["identified"] = "identified"
    message: str = ""

    @property
    def reentry_ms(self) -> int | None:
        """Minimum gap between entries; ``None`` = only once ever; ``0`` = every time."""
        if self.frequency == "every_time":
            return 0
        if self.frequency == "once":
            return None
        assert isinstance(self.frequency, OncePer)
        return self.frequency.once_per


# --------------------------------------------------------------------------- faults


class Scope(Frozen):
    """Which events a fault applies to: by event name(s) and/or source; empty = all."""

    events: tuple[Name, ...] = ()
    source: Literal["web", "app", "server", "client"] | None = None
    """``client`` = web or app."""


class LatencyFault(Scope):
    """Arrival = timestamp + a draw from ``dist``."""

    dist: Distribution


class RetryDuplicateFault(Scope):
    """The same event (same id) is sent again ``copies`` times, ``after`` later (sender retries)."""

    p: Probability
    copies: Annotated[int, Field(ge=1, le=100), _WHOLE] = 1
    after: Distribution = Field(default_factory=lambda: Distribution(uniform=Uniform(min="500ms", max="30s")))


class DoubleFireFault(Scope):
    """k copies with *new* ids within milliseconds (theme/app conflicts)."""

    p: Probability
    copies: Annotated[int, Field(ge=1, le=100), _WHOLE] = 1
    within: Duration = 50


class DropFault(Scope):
    """Client events lost (ad blockers, redirects); planned, never delivered."""

    p: Probability


class SchemaDriftFault(Scope):
    """Key renames, type drift and noise properties, each with probability ``p`` per event."""

    p: Probability
    rename: dict[Name, Name] = Field(default_factory=dict)
    retype: dict[Name, Literal["string", "number"]] = Field(default_factory=dict)
    noise: Annotated[int, Field(ge=0, le=200), _WHOLE] = 0


class NameDriftFault(Scope):
    """Platform-specific event names (mobile sends ``AddToCart``): ``rename: {from: to}``."""

    p: Probability = 1.0
    rename: dict[Name, Name]


class ClockSkewFault(Scope):
    """Events stamped by another clock: timestamp += ``offset`` ± uniform ``jitter``."""

    offset: SignedDuration
    jitter: Duration = 0


class OutOfOrderFault(Scope):
    """Events held back by up to ``max_delay`` so they arrive after later events."""

    p: Probability
    max_delay: Duration


class NeverIdentifiedFault(Frozen):
    """Shoppers whose identify calls never arrive (lost or never instrumented)."""

    p: Probability


class OversizeFault(Scope):
    """Payloads padded to ``bytes`` (above documented limits) to test limit handling."""

    p: Probability
    bytes: Annotated[int, Field(ge=1, le=10_000_000), _WHOLE] = 40_000


class Faults(Frozen):
    """Data faults injected between the truth stream and delivery; each list entry is scoped."""

    latency: tuple[LatencyFault, ...] = ()
    retry_duplicates: tuple[RetryDuplicateFault, ...] = ()
    double_fires: tuple[DoubleFireFault, ...] = ()
    drops: tuple[DropFault, ...] = ()
    schema_drift: tuple[SchemaDriftFault, ...] = ()
    name_drift: tuple[NameDriftFault, ...] = ()
    clock_skew: tuple[ClockSkewFault, ...] = ()
    out_of_order: tuple[OutOfOrderFault, ...] = ()
    never_identified: NeverIdentifiedFault | None = None
    oversize: tuple[OversizeFault, ...] = ()


# --------------------------------------------------------------------------- expectations

METRICS = (
    "trigger_recall",
    "false_triggers",
    "suppression_violations",
    "suppression_violation_rate",
    "duplicate_entries",
    "unaddressable_intent",
    "merge_completeness",
    "send_time_error_p50_ms",
    "send_time_error_p95_ms",
    "tracking_plan_violations",
    "ingestion_loss",
    "delivered_recall",
    "p95_ms",
    "p99_ms",
    "error_rate",
    "arrival_lag_p95_ms",
    "late_start_share",
    "unexplained",
)
"""Metric names a threshold may use; ``name[campaign]`` scopes a per-campaign metric."""

_THRESHOLD = re.compile(
    r"^\s*(?P<metric>[a-z_0-9]+)(?:\[(?P<scope>[^\]]+)\])?\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>-?\d+(?:\.\d+)?)\s*$"
)


class Threshold(Frozen):
    """``metric[scope] op number``, e.g. ``trigger_recall[cart_recovery] >= 0.95``."""

    metric: str
    scope: str | None = None
    op: Literal["==", "!=", ">=", "<=", ">", "<"]
    value: float

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _THRESHOLD.match(value)
        if not match:
            raise ValueError(
                f"cannot read threshold {value!r}; write '<metric> <op> <number>', "
                "e.g. 'suppression_violations == 0' or 'trigger_recall[cart_recovery] >= 0.95'"
            )
        return {
            "metric": match.group("metric"),
            "scope": match.group("scope"),
            "op": match.group("op"),
            "value": float(match.group("value")),
        }

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METRICS:
            import difflib

            close = difflib.get_close_matches(value, METRICS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"unknown metric {value!r}{hint} (known metrics: {', '.join(METRICS)})")
        return value

    def holds(self, actual: float) -> bool:
        """Whether a measured value satisfies this threshold."""
        return {
            "==": actual == self.value,
            "!=": actual != self.value,
            ">=": actual >= self.value,
            "<=": actual <= self.value,
            ">": actual > self.value,
            "<": actual < self.value,
        }[self.op]

    def __str__(self) -> str:
        scope = f"[{self.scope}]" if self.scope else ""
        return f"{self.metric}{scope} {self.op} {self.value:g}"


# --------------------------------------------------------------------------- scenario

START_MIN = datetime(2000, 1, 1, tzinfo=UTC)
START_MAX = datetime(2100, 1, 1, tzinfo=UTC)
"""``start`` is in [START_MIN, START_MAX): event times are Unix milliseconds and senders compare
them with the present (the Track API's 72-hour rule), so ancient or far-future starts mean
nothing, and start + run + think times must stay far inside calendar dates and ULID times."""
MAX_SHOPPERS = 100_000_000
MAX_ARRIVAL_YEARS = 1000
"""Without a ``duration``, ``shoppers`` must be expected to arrive within this many years: far
longer than any test means, yet it keeps every event time (start, arrivals, think times) far
below year 9999, where calendar dates end (ULID times end in 10889)."""
_HOURS_A_YEAR = 8766
SHOPPERS_TOO_SLOW = "too many shoppers to arrive within"
DURATION_TOO_BUSY = "too long for the arrival rate"
"""Prefixes of the run-length errors, which the loader points at ``shoppers`` and ``duration``."""


def _date_time(value: Any) -> Any:
    # pydantic would read a number as Unix seconds (start: -1 → 1969); a scenario writes a date-time.
    if isinstance(value, int | float):
        raise PydanticCustomError("datetime_type", "Input should be a valid datetime")
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValueError(f"start needs a time and a time zone, e.g. {value.isoformat()}T00:00:00Z")
    return value


class Scenario(Frozen):
    """A whole scenario file. Build one with :func:`generator.scenario.load_scenario`."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=80)]
    description: str = ""
    seed: Seed | None = None
    start: Annotated[datetime, BeforeValidator(_date_time)] = datetime(2026, 11, 2, tzinfo=UTC)
    duration: Duration | None = None
    shoppers: Annotated[int, Field(ge=1, le=MAX_SHOPPERS), _WHOLE] | None = None
    population: Population
    catalog: Catalog = Field(default_factory=Catalog)
    identity: Identity = Field(default_factory=Identity)
    journeys: dict[Name, Journey]
    tracking_plan: TrackingPlan = Field(default_factory=TrackingPlan)
    campaigns: dict[CampaignName, Campaign] = Field(default_factory=dict)
    faults: Faults = Field(default_factory=Faults)
    expect: tuple[Threshold, ...] = ()

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("start needs a time zone; write it in UTC, e.g. 2026-11-02T00:00:00Z")
        value = value.astimezone(UTC)
        if not START_MIN <= value < START_MAX:
            written = value.isoformat().replace("+00:00", "Z")
            raise ValueError(f"must be in the years {START_MIN.year}–{START_MAX.year - 1}, got {written}")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> Scenario:
        if self.duration is None and self.shoppers is None:
            raise ValueError("a scenario needs 'shoppers' or 'duration' (or both) so the run ends")
        if not self.journeys:
            raise ValueError("a scenario needs at least one journey")
        arrivals = self.population.arrivals
        # Mean arrivals per hour over a week (weekdays at rate_per_hour, weekends scaled).
        weekly_rate = arrivals.rate_per_hour * (5 + 2 * arrivals.weekend_factor) / 7
        if self.duration is None:
            assert self.shoppers is not None
            hours = self.shoppers / weekly_rate
            if hours > MAX_ARRIVAL_YEARS * _HOURS_A_YEAR:
                raise ValueError(
                    f"{SHOPPERS_TOO_SLOW} {MAX_ARRIVAL_YEARS:,} years: at {arrivals.rate_per_hour:g}/h, "
                    f"{self.shoppers:,} shoppers take about {hours / _HOURS_A_YEAR:,.0f} years; "
                    "raise population.arrivals.rate_per_hour or set a duration"
                )
        elif self.shoppers is None and weekly_rate * self.duration / 3_600_000 > MAX_SHOPPERS:
            raise ValueError(
                f"{DURATION_TOO_BUSY}: about {weekly_rate * self.duration / 3_600_000:,.0f} shoppers would "
                f"arrive in {format_duration(self.duration)}, more than the {MAX_SHOPPERS:,} a run may have; "
                "shorten it, lower population.arrivals.rate_per_hour or set shoppers"
            )
        return self

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    def campaign_ids(self) -> dict[str, int]:
        """Stable numeric ids (App API ``campaign_id``): the configured ``id`` or 1-based order."""
        used = {c.id for c in self.campaigns.values() if c.id is not None}
        out: dict[str, int] = {}
        next_id = 1
        for name, campaign in self.campaigns.items():
            if campaign.id is not None:
                out[name] = campaign.id
                continue
            while next_id in used:
                next_id += 1
            out[name] = next_id
            used.add(next_id)
        return out
