"""The journey walker: shopper k's whole life from ``(seed, k)`` and their arrival time.

A :class:`Compiled` scenario (built once per run) turns the pydantic model into flat tuples the
hot path can read cheaply: cumulative weight lists, think-time samplers, per-event property
lists. :func:`walk` then plays one shopper:

1. from the BEHAVIOUR stream: returning or new, journey (among those whose audience fits),
   device, traffic source (the journey may pin it), cross-device or not;
2. from the IDENTITY stream: names, email, phone, ids (``identity.draw_identity``);
3. from the journey's ``start`` state: each visit emits the state's calls (``repeat`` times,
   with think times in between, each call with its ``p``), then picks the next state by the
   ``next`` probabilities (the remainder is leaving) and advances time by a think draw
   (transition think, else state think, else journey think), at most ``max_steps`` visits.

Sessions: a think of 30 min or more starts a new session (new traffic source, landing page
with UTM; the IAB/GA convention, anchors.md §b). A cross-device shopper alternates devices
between sessions, each device with its own anonymous id; once they are known, the next
identify point they pass on the other device re-identifies with that device's anonymous id,
which is what merges the two devices on the platform.

Identity: a device is anonymous until an identify point fires on it (with the point's
probability); from then on its client events carry both ``user_id`` and ``anonymous_id``.
Server events (tracking plan ``source: server``) carry only ``user_id`` once the person is
known anywhere, else the anonymous id of the cart's device.

Random numbers come from per-shopper lists computed for hundreds of shoppers per numpy pass
(:class:`ShopperStreams`), never one numpy call per draw or per shopper: a numpy call costs more
than the event it feeds.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate, chain
from typing import Any

from generator.errors import ScenarioError
from generator.events import CallType, Event, Person, ShopperLife, Source
from generator.scenario import model
from generator.simulate.catalog import Catalog
from generator.simulate.context import (
    SCREEN_NAMES,
    SEARCH_TERMS,
    SERVER_CONTEXT,
    STATIC_PAGES,
    device_context,
)
from generator.simulate.identity import IDENTITY_UNIFORMS, IDENTITY_WORDS, draw_identity
from generator.simulate.seeding import ShopperBlocks, Stream, shopper_uniforms, shopper_words

SESSION_GAP_MS = 30 * 60 * 1000
"""A think at least this long starts a new session (IAB / GA inactivity timeout)."""

_CALL_GAP_MIN_MS = 40
_CALL_GAP_SPAN_MS = 900
"""Consecutive calls inside one visit are 40–940 ms apart (page load → track → identify)."""

_PAGE, _TRACK, _SCREEN, _IDENTIFY = CallType.PAGE, CallType.TRACK, CallType.SCREEN, CallType.IDENTIFY
_WEB, _APP, _SERVER = Source.WEB, Source.APP, Source.SERVER
_K_PAGE, _K_TRACK, _K_SCREEN, _K_IDENTIFY = (
    model.CallKind.PAGE, model.CallKind.TRACK, model.CallKind.SCREEN, model.CallKind.IDENTIFY,
)  # fmt: skip

_BEHAVIOUR = Stream.BEHAVIOUR
_BEHAVIOUR_U = 48
_BEHAVIOUR_W = 32
"""Draws precomputed per shopper: a typical life takes ~25 uniforms and ~15 words (p99 ~45/~35)."""
_REFILL = 16
_TAU = 2.0 * math.pi

# --------------------------------------------------------------------------- fast ULIDs

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_M20 = (1 << 20) - 1
_M50 = (1 << 50) - 1


def fast_ulid(timestamp_ms: int, random80: int) -> str:
    """Exactly :func:`generator.ids.ulid`, ~3× faster: ten-bit pairs on small integers.

    The 130 encoded bits (2 zero bits + 48 time + 80 random) split into 30 + 50 + 50 bits so no
    step touches a big integer. A unit test pins it to ``ids.ulid``.
    """
    t = timestamp_ms & 0xFFFF_FFFF_FFFF
    r = random80 & ((1 << 80) - 1)
    a = t >> 20
    b = ((t & _M20) << 30) | (r >> 50)
    c = r & _M50
    p = _PAIRS
    return "".join(
        (
            p[a >> 20], p[(a >> 10) & 1023], p[a & 1023],
            p[b >> 40], p[(b >> 30) & 1023], p[(b >> 20) & 1023], p[(b >> 10) & 1023], p[b & 1023],
            p[c >> 40], p[(c >> 30) & 1023], p[(c >> 20) & 1023], p[(c >> 10) & 1023], p[c & 1023],
        )
    )  # fmt: skip


_TIME_HI: dict[int, str] = {}
"""ULID characters 1–6 (the time's top 28 bits, ~17 min a value) already encoded."""


def _time_hi(top: int) -> str:
    if len(_TIME_HI) > 100_000:  # years of simulated time: keep memory flat
        _TIME_HI.clear()
    p = _PAIRS
    found = _TIME_HI[top] = p[top >> 20] + p[(top >> 10) & 1023] + p[top & 1023]
    return found


# --------------------------------------------------------------------------- fast Event construction

_EVENT_FIELDS = (
    "id",
    "shopper",
    "seq",
    "type",
    "name",
    "timestamp_ms",
    "user_id",
    "anonymous_id",
    "properties",
    "context",
    "source",
    "journey",
    "state",
)
(
    _s_id,
    _s_shopper,
    _s_seq,
    _s_type,
    _s_name,
    _s_ts,
    _s_user,
    _s_anon,
    _s_props,
    _s_ctx,
    _s_source,
    _s_journey,
    _s_state,
) = (Event.__dict__[f].__set__ for f in _EVENT_FIELDS)
_new = object.__new__
_PERSON_FIELDS = (
    "shopper", "user_id", "email", "first_name", "last_name", "phone", "created_ms", "returning",
    "anonymous_ids", "attributes",
)  # fmt: skip
(
    _p_shopper, _p_user, _p_email, _p_first, _p_last, _p_phone, _p_created, _p_returning, _p_anon, _p_attrs,
) = (Person.__dict__[f].__set__ for f in _PERSON_FIELDS)  # fmt: skip
_LIFE_FIELDS = ("person", "start_ms", "journey", "device", "traffic_source", "events")
_l_person, _l_start, _l_journey, _l_device, _l_source, _l_events = (
    ShopperLife.__dict__[f].__set__ for f in _LIFE_FIELDS
)


def _event(
    id: str,
    shopper: int,
    seq: int,
    type: CallType,
    name: str,
    timestamp_ms: int,
    user_id: str | None,
    anonymous_id: str | None,
    properties: dict[str, Any],
    context: dict[str, Any],
    source: Source,
    journey: str,
    state: str,
) -> Event:
    """``Event(id=..., ...)`` at about half the cost.

    A frozen dataclass ``__init__`` goes through ``object.__setattr__`` by name for each of the
    13 fields (~4 µs per event, more than encoding it); writing the slots through their
    descriptors builds the identical object in ~2 µs. A unit test pins equality with ``Event(...)``.
    """
    event: Event = _new(Event)
    _s_id(event, id)
    _s_shopper(event, shopper)
    _s_seq(event, seq)
    _s_type(event, type)
    _s_name(event, name)
    _s_ts(event, timestamp_ms)
    _s_user(event, user_id)
    _s_anon(event, anonymous_id)
    _s_props(event, properties)
    _s_ctx(event, context)
    _s_source(event, source)
    _s_journey(event, journey)
    _s_state(event, state)
    return event


# --------------------------------------------------------------------------- compiled scenario

_FIXED, _EXPONENTIAL, _UNIFORM, _LOGNORMAL = range(4)
Sampler = tuple[int, float, float]

_PRODUCT_FIELDS = frozenset(
    {"sku", "product_id", "variant_id", "variant_title", "name", "brand", "price", "product_url", "image_url",
     "position"}
)  # fmt: skip
_CART_FIELDS = frozenset({"cart_id", "cart_total", "products", "value", "quantity", "coupon"})
_ORDER_FIELDS = frozenset(
    {"order_id", "checkout_id", "total", "subtotal", "revenue", "shipping", "tax", "discount"}
)
_SUBSCRIPTION_FIELDS = frozenset({"subscription_id", "plan", "interval", "reason"})

SUBSCRIPTION_PLANS = (
    ("Monthly refill", "month", 29.0),
    ("Quarterly box", "quarter", 79.0),
    ("Weekly essentials", "week", 12.0),
)
CANCEL_REASONS = ("too_expensive", "not_using", "switched_brand", "moving", "other")
SHIPPING_FREE_FROM = 75.0
SHIPPING_FEE = 5.95
TAX_RATE = 0.08
WELCOME_COUPON = "WELCOME10"


def _sampler(dist: model.Distribution) -> Sampler:
    if dist.fixed is not None:
        return (_FIXED, float(dist.fixed), 0.0)
    if dist.exponential is not None:
        return (_EXPONENTIAL, float(dist.exponential.mean), 0.0)
    if dist.uniform is not None:
        return (_UNIFORM, float(dist.uniform.min), float(dist.uniform.max - dist.uniform.min))
    assert dist.lognormal is not None
    return (_LOGNORMAL, float(dist.lognormal.median), dist.lognormal.shape)


@dataclass(frozen=True, slots=True)
class _TrackSpec:
    """A tracked event as the walker needs it: property names in plan order and what they need."""

    name: str
    props: tuple[str, ...]
    server: bool
    product: bool
    cart: bool
    order: bool
    subscription: bool
    needs: frozenset[str]
    page_keys: tuple[str, ...]
    """The planned properties that come from the current page (path, title, utm_*, ...)."""
    product_only: bool
    """Every planned property comes from the product (its payload can be cached per variant)."""


_PAGE_KEYS = (
    "path", "title", "referrer", "search", "query", "utm_source", "utm_medium", "utm_campaign", "utm_content",
    "utm_term",
)  # fmt: skip
_PRODUCT_PAYLOAD = _PRODUCT_FIELDS | {"category", "currency", "url"}


def _track_spec(name: str, spec: model.EventSpec | None) -> _TrackSpec:
    props = tuple(spec.properties) if spec is not None else ()
    names = frozenset(props)
    product = bool(names & _PRODUCT_FIELDS) or name == "Product Viewed"
    cart = bool(names & _CART_FIELDS) or name in ("Added to Cart", "Checkout Started")
    order = bool(names & _ORDER_FIELDS) or name == "Order Completed"
    subscription = bool(names & _SUBSCRIPTION_FIELDS) or name.startswith("Subscription ")
    return _TrackSpec(
        name=name,
        props=props,
        server=spec is not None and spec.source == "server",
        product=product,
        cart=cart,
        order=order,
        subscription=subscription,
        needs=names,
        page_keys=tuple(k for k in _PAGE_KEYS if k in names),
        product_only=product and not (cart or order or subscription) and names <= _PRODUCT_PAYLOAD,
    )


@dataclass(frozen=True, slots=True)
class _Call:
    kind: model.CallKind
    target: str
    p: float
    track: _TrackSpec | None


@dataclass(frozen=True, slots=True)
class _State:
    name: str
    calls: tuple[_Call, ...]
    repeat_min: int
    repeat_span: int
    next_cum: tuple[float, ...]
    next_to: tuple[int, ...]
    next_think: tuple[Sampler, ...]
    think: Sampler
    """Think time between repeats of this state (state think, else journey think)."""


@dataclass(frozen=True, slots=True)
class _Journey:
    name: str
    audience: str
    source: str | None
    start: int
    states: tuple[_State, ...]
    max_steps: int


Landing = tuple[str, dict[str, Any], dict[str, Any] | None, bool]
_NO_LANDING: Landing = ("", {}, None, False)


def _landing(spec: model.TrafficSource) -> Landing:
    """A traffic source's landing: UTM query string, utm_* properties, ``context.campaign``
    (shared by every session from that source: nobody mutates event dicts), and whether it is
    an email click (which carries the welcome coupon)."""
    utm = spec.utm
    if utm is None:
        return _NO_LANDING
    campaign: dict[str, Any] = {"source": utm.source, "medium": utm.medium}
    props: dict[str, Any] = {"utm_source": utm.source, "utm_medium": utm.medium}
    if utm.campaign is not None:
        campaign["name"] = utm.campaign
        props["utm_campaign"] = utm.campaign
    if utm.content is not None:
        campaign["content"] = utm.content
        props["utm_content"] = utm.content
    if utm.term is not None:
        campaign["term"] = utm.term
        props["utm_term"] = utm.term
    query = "&".join(f"{k}={v}" for k, v in props.items())
    return query, props, campaign, utm.medium == "email"


def _cumulative(weights: list[float]) -> tuple[float, ...]:
    total = sum(weights)
    if total <= 0:
        return ()
    return tuple(c / total for c in accumulate(weights))


def _choose(cumulative: tuple[float, ...], u: float) -> int:
    return min(bisect_right(cumulative, u), len(cumulative) - 1)


class Compiled:
    """A scenario flattened for the walker (built once per run; read-only afterwards)."""

    def __init__(self, scenario: model.Scenario, *, seed: int) -> None:
        self.scenario = scenario
        self.seed = seed
        self.catalog = Catalog(scenario.catalog, seed=seed)
        pop = scenario.population
        self.returning_share = pop.returning_share
        self.devices = tuple(d for d, w in pop.devices.items() if w > 0)
        self.device_cum = _cumulative([pop.devices[d] for d in self.devices])
        self.sources = tuple(s for s, v in pop.sources.items() if v.weight > 0)
        self.source_cum = _cumulative([pop.sources[s].weight for s in self.sources])
        self.source_spec = dict(pop.sources)
        self.source_referrer = {name: spec.referrer or "" for name, spec in pop.sources.items()}
        self.landings = {name: _landing(spec) for name, spec in pop.sources.items()}
        self.cross_device_share = scenario.identity.cross_device_share
        self.points = dict(scenario.identity.points)
        self.strategy = scenario.identity.strategy
        plan = scenario.tracking_plan.all_events
        self.page_props = tuple(scenario.tracking_plan.page_properties)
        # Page events are built with the default page plan's keys in its order; when the
        # scenario's page plan lists all of them, the built dict is the payload as is.
        self.page_plan_covers = tuple(model.default_page_properties()) == self.page_props
        self.tracks = {name: _track_spec(name, spec) for name, spec in plan.items()}
        self.product_payloads: dict[tuple[str, tuple[int, int]], dict[str, Any]] = {}
        self.page_extras: dict[tuple[int, int], dict[str, Any]] = {}
        self.journeys = tuple(self._journey(n, j) for n, j in scenario.journeys.items())
        weights = [j.weight for j in scenario.journeys.values()]
        audiences = [j.audience for j in scenario.journeys.values()]
        self.journey_cum = {
            returning: _cumulative(
                [
                    w if a in ("any", "returning" if returning else "new") else 0.0
                    for w, a in zip(weights, audiences, strict=True)
                ]
            )
            for returning in (False, True)
        }
        if not any(self.journey_cum.values()):
            raise ScenarioError(
                f"scenario {scenario.name!r}: every journey has weight 0, so nobody can arrive"
            )

    def _journey(self, name: str, journey: model.Journey) -> _Journey:
        names = list(journey.states)
        index = {n: i for i, n in enumerate(names)}
        default_think = _sampler(journey.think)
        states = []
        for state_name, state in journey.states.items():
            state_think = _sampler(state.think) if state.think is not None else default_think
            calls = []
            for call in state.emit:
                kind = call.kind
                track = None
                if kind is model.CallKind.TRACK:
                    track = self.tracks.get(call.target) or _track_spec(call.target, None)
                calls.append(_Call(kind=kind, target=call.target, p=call.p, track=track))
            targets = [(t, tr) for t, tr in state.next.items() if t in index]
            states.append(
                _State(
                    name=state_name,
                    calls=tuple(calls),
                    repeat_min=state.repeat.min if state.repeat else 1,
                    repeat_span=(state.repeat.max - state.repeat.min + 1) if state.repeat else 1,
                    next_cum=tuple(accumulate(tr.p for _, tr in targets)),
                    next_to=tuple(index[t] for t, _ in targets),
                    next_think=tuple(
                        _sampler(tr.think) if tr.think is not None else state_think for _, tr in targets
                    ),
                    think=state_think,
                )
            )
        return _Journey(
            name=name,
            audience=journey.audience,
            source=journey.source,
            start=index[journey.start],
            states=tuple(states),
            max_steps=journey.max_steps,
        )


# --------------------------------------------------------------------------- random buffers


def _continued(fetch: Callable[..., list[list[Any]]], seed: int, k: int, start: int) -> Iterator[Any]:
    """Shopper k's BEHAVIOUR sub-stream from draw ``start`` on, fetched :data:`_REFILL` at a time."""
    while True:
        yield from fetch(seed, _BEHAVIOUR, (k,), start, _REFILL)[0]
        start += _REFILL


class _Draws:
    """One shopper's BEHAVIOUR stream: uniforms, 80-bit integers, normals.

    The first block of uniforms and words comes precomputed for many shoppers at once
    (:class:`ShopperStreams`); a long life continues the same stream past the block
    (``seeding.shopper_uniforms`` / ``shopper_words`` at the next offset). ``u`` and the word
    source are ``chain(...).__next__``: a C call per draw, no Python frame. Normals are
    Box–Muller pairs of uniforms, in Python (``math``) so every platform rounds them alike.
    """

    __slots__ = ("_spare", "u", "word")

    def __init__(self, seed: int, k: int, uniforms: list[float], words: list[int]) -> None:
        self.u: Callable[[], float] = chain(
            uniforms, _continued(shopper_uniforms, seed, k, len(uniforms))
        ).__next__
        self.word: Callable[[], int] = chain(words, _continued(shopper_words, seed, k, len(words))).__next__
        self._spare: float | None = None

    def z(self) -> float:
        spare = self._spare
        if spare is not None:
            self._spare = None
            return spare
        u = self.u
        radius = math.sqrt(-2.0 * math.log(1.0 - u()))
        angle = _TAU * u()
        self._spare = radius * math.sin(angle)
        return radius * math.cos(angle)

    def bits(self) -> int:
        """80 random bits (for a ULID or an order id): two words."""
        word = self.word
        return (word() << 16) | (word() & 0xFFFF)

    def think(self, sampler: Sampler) -> int:
        kind, a, b = sampler
        if kind == _LOGNORMAL:
            return int(a * math.exp(b * self.z()))
        if kind == _EXPONENTIAL:
            return int(-a * math.log(1.0 - self.u()))
        if kind == _UNIFORM:
            return int(a + b * self.u())
        return int(a)


# --------------------------------------------------------------------------- the walk


class _Walk:
    """Mutable per-shopper state while walking (one instance per shopper, then dropped)."""

    __slots__ = (
        "anon",
        "app",
        "base_ctx",
        "c",
        "campaign",
        "cart",
        "cart_id",
        "cart_total",
        "checkout_id",
        "client_source",
        "coupon",
        "created_ms",
        "cross",
        "ctx",
        "d",
        "dev",
        "device_user",
        "devices",
        "events",
        "first_source",
        "ident",
        "identified",
        "journey",
        "journey_name",
        "k",
        "known",
        "landing",
        "last_qty",
        "now",
        "order",
        "page_vals",
        "prev_url",
        "product",
        "product_key",
        "returning",
        "source",
        "source_referrer",
        "start_ms",
        "subscription",
        "u",
        "used_devices",
        "user_id",
    )

    def __init__(self, c: Compiled, k: int, start_ms: int, streams: ShopperStreams) -> None:
        self.c = c
        self.k = k
        d = self.d = _Draws(c.seed, k, *streams.behaviour.take(k))
        self.u = d.u
        returning = d.u() < c.returning_share
        cum = c.journey_cum[returning]
        if not cum:  # no journey for this audience: the shopper is of the other kind
            returning = not returning
            cum = c.journey_cum[returning]
        self.returning = returning
        self.journey = c.journeys[_choose(cum, d.u())]
        first = c.devices[_choose(c.device_cum, d.u())]
        cross = d.u() < c.cross_device_share
        u_second = d.u()
        if cross:
            others = [x for x in c.devices if x is not first] or [first]
            second = others[int(u_second * len(others)) % len(others)]
        else:
            second = first
        self.cross = cross
        self.devices = (first, second)
        self.first_source = self.journey.source or c.sources[_choose(c.source_cum, d.u())]
        ident = self.ident = draw_identity(
            c.scenario.identity,
            seed=c.seed,
            shopper=k,
            start_ms=start_ms,
            returning=returning,
            draws=streams.identity.take(k),
        )
        variant = int(d.u() * 12)  # user agent / handset model, per device
        self.base_ctx = (
            device_context(first, variant, ident.ips[0], ident.locale),
            device_context(second, variant + 1, ident.ips[1], ident.locale),
        )
        self.app = (first.is_app, second.is_app)
        self.start_ms = start_ms
        self.now = start_ms
        self.used_devices = [False, False]
        self.identified = [False, False]
        self.known = False
        self.created_ms = ident.created_ms
        self.events: list[Event] = []
        self.user_id = ident.user_id
        self._use_device(0)
        # Session / page context.
        self.source = self.first_source
        self.source_referrer = c.source_referrer.get(self.source, "")
        self.journey_name = self.journey.name
        self.campaign: dict[str, Any] | None = None
        self.landing = True
        self.prev_url = ""
        self.ctx: dict[str, Any] = {}
        self.page_vals: dict[str, Any] = {}
        # Commerce context.
        self.product: dict[str, Any] | None = None
        self.product_key = (0, 0)
        self.cart: list[tuple[int, int, int]] = []
        self.cart_id = ""
        self.cart_total = 0.0
        self.last_qty = 1
        self.checkout_id = ""
        self.order: dict[str, Any] | None = None
        self.subscription: tuple[str, str, str, float] | None = None
        self.coupon: str | None = None

    # ----------------------------------------------------------------- ids and emission

    def _hex_id(self, prefix: str) -> str:
        return f"{prefix}{self.d.bits() & 0xFFFF_FFFF_FFFF:012x}"

    def _emit(
        self, kind: CallType, name: str, props: dict[str, Any], state: str, server: bool = False
    ) -> None:
        if server:
            source = _SERVER
            ctx: dict[str, Any] = SERVER_CONTEXT
            if self.known:
                user_id, anon = self.user_id, None
            else:
                user_id, anon = None, self.anon
        else:
            source = self.client_source
            ctx = self.ctx
            anon = self.anon
            user_id = self.device_user
            self.used_devices[self.dev] = True
        ts = self.now
        events = self.events
        # The event id: fast_ulid(ts, 80 random bits) inlined. The 80 bits are word1's 64 and
        # word2's low 16; encoded as two 40-bit halves (small ints), four 10-bit pairs each.
        # The time's top 28 bits change every ~17 min: their 6 characters are cached.
        word = self.d.word
        w1 = word()
        w2 = word()
        hi = _TIME_HI.get(ts >> 20)
        if hi is None:
            hi = _time_hi(ts >> 20)
        x = w1 >> 24
        y = ((w1 & 0xFFFFFF) << 16) | (w2 & 0xFFFF)
        p = _PAIRS
        event_id = "".join(
            (
                hi, p[(ts >> 10) & 1023], p[ts & 1023],
                p[x >> 30], p[(x >> 20) & 1023], p[(x >> 10) & 1023], p[x & 1023],
                p[y >> 30], p[(y >> 20) & 1023], p[(y >> 10) & 1023], p[y & 1023],
            )
        )  # fmt: skip
        # Event(...) through its slot descriptors (see _event).
        event: Event = _new(Event)
        _s_id(event, event_id)
        _s_shopper(event, self.k)
        _s_seq(event, len(events))
        _s_type(event, kind)
        _s_name(event, name)
        _s_ts(event, ts)
        _s_user(event, user_id)
        _s_anon(event, anon)
        _s_props(event, props)
        _s_ctx(event, ctx)
        _s_source(event, source)
        _s_journey(event, self.journey_name)
        _s_state(event, state)
        events.append(event)

    def _use_device(self, dev: int) -> None:
        """Switch to device ``dev`` (0 or 1) and cache what every event on it carries."""
        self.dev = dev
        self.anon = self.ident.anonymous_ids[dev]
        self.client_source = _APP if self.app[dev] else _WEB
        self.device_user = self.user_id if self.identified[dev] else None

    # ----------------------------------------------------------------- sessions and pages

    def new_session(self) -> None:
        c = self.c
        self.source = c.sources[_choose(c.source_cum, self.u())]
        self.source_referrer = c.source_referrer.get(self.source, "")
        if self.cross:
            self._use_device(self.dev ^ 1)
        self.landing = True
        self.prev_url = ""

    def _landing_context(self) -> tuple[str, dict[str, Any]]:
        """The UTM query string and properties of a landing page; sets ``context.campaign``."""
        query, props, campaign, email = self.c.landings.get(self.source, _NO_LANDING)
        self.campaign = campaign
        if email:
            self.coupon = WELCOME_COUPON
        return query, props

    def _pick_product(self) -> None:
        c = self.c
        index = c.catalog.pick(self.u())
        variants = len(c.catalog.products[index].variant_ids)
        variant = min(int(self.u() * variants), variants - 1)
        self.product_key = (index, variant)
        self.product = c.catalog.props(index, variant)

    def page(self, kind: str, state: str, picked: bool) -> bool:
        """Emit a page (web) or screen (app) view of ``kind``; returns whether a product was picked.

        Properties are built in the default page plan's order (url, path, title, referrer,
        search, category, product_id, sku, utm_*), so with a plan that lists them all the dict
        is used as is; a narrower plan gets the projection.
        """
        c = self.c
        catalog = c.catalog
        search = ""
        extra: dict[str, Any] | None = None
        if kind == "product":
            if not picked or self.product is None:
                self._pick_product()
                picked = True
            product = self.product
            assert product is not None
            path, title = catalog.page_info(self.product_key[0])
            extra = c.page_extras.get(self.product_key)
            if extra is None:  # shared by every view of this variant (nobody mutates it)
                if len(c.page_extras) > 200_000:  # huge catalogues: keep memory flat
                    c.page_extras.clear()
                extra = c.page_extras[self.product_key] = {
                    "category": product["category"],
                    "product_id": product["product_id"],
                    "sku": product["sku"],
                }
        elif kind == "category":
            categories = catalog.categories
            if self.product is not None and self.u() < 0.5:
                category = self.product["category"]
            else:
                category = categories[int(self.u() * len(categories)) % len(categories)]
            path, title = catalog.category_page(category)
            extra = {"category": category}
        elif kind == "search":
            term = SEARCH_TERMS[int(self.u() * len(SEARCH_TERMS)) % len(SEARCH_TERMS)]
            search = "?q=" + term.replace(" ", "+")
            path, title = "/search", f"Search: {term}"
        else:
            path, title = STATIC_PAGES[kind]
        url = catalog.base_url + path + search
        utm: dict[str, Any] | None = None
        if self.landing:
            query, utm = self._landing_context()
            if query:
                url = url + ("&" if search else "?") + query
            referrer = self.source_referrer
            self.landing = False
        else:
            referrer = self.prev_url
        self.prev_url = url
        full = {"url": url, "path": path, "title": title}
        if referrer:
            full["referrer"] = referrer
        if search:
            full["search"] = search
        if extra is not None:
            full.update(extra)
        if utm:
            full.update(utm)
        ctx = dict(self.base_ctx[self.dev])
        if self.campaign is not None:
            ctx["campaign"] = self.campaign
        is_app = self.app[self.dev]
        if not is_app:
            ctx["page"] = {"path": path, "referrer": referrer, "search": search, "title": title, "url": url}
        self.ctx = ctx
        self.page_vals = {**full, "query": search[3:].replace("+", " ")} if search else full
        props = full if c.page_plan_covers else {p: full[p] for p in c.page_props if p in full}
        if is_app:
            self._emit(_SCREEN, SCREEN_NAMES[kind], props, state)
        else:
            self._emit(_PAGE, title, props, state)
        return picked

    def screen(self, name: str, state: str) -> None:
        """An explicit ``screen:`` call (apps only; a web device shows no screens)."""
        if not self.app[self.dev]:
            return
        slug = "-".join(name.lower().split())
        full = {"url": f"{self.c.catalog.base_url}/app/{slug}", "path": f"/app/{slug}", "title": name}
        if self.landing:
            self._landing_context()
            self.landing = False
        ctx = dict(self.base_ctx[self.dev])
        if self.campaign is not None:
            ctx["campaign"] = self.campaign
        self.ctx = ctx
        self.page_vals = full
        self._emit(_SCREEN, name, {p: full[p] for p in self.c.page_props if p in full}, state)

    # ----------------------------------------------------------------- identify

    def identify(self, point: str, state: str) -> None:
        dev = self.dev
        if self.identified[dev]:
            return  # this device is already known: nothing new to tell the platform
        if self.u() >= self.c.points.get(point, 0.0):
            return
        if not self.known and not self.returning:
            self.created_ms = self.now
        self.known = True
        self.identified[dev] = True
        self.device_user = self.user_id
        ident = self.ident
        traits: dict[str, Any] = {
            "email": ident.email,
            "first_name": ident.first_name,
            "last_name": ident.last_name,
            "phone": ident.phone,
            "created_at": self.created_ms // 1000,
        }
        if self.c.strategy == "id":
            del traits["email"]
        self._emit(_IDENTIFY, "", traits, state)

    # ----------------------------------------------------------------- commerce

    def _add_to_cart(self) -> None:
        if self.product is None:
            self._pick_product()
        if not self.cart_id:
            self.cart_id = self._hex_id("cart_")
        qty = self.c.catalog.quantity(self.u())
        index, variant = self.product_key
        self.cart.append((index, variant, qty))
        self.last_qty = qty
        self.cart_total = round(self.cart_total + self.c.catalog.products[index].price * qty, 2)

    def _line_items(self) -> list[dict[str, Any]]:
        return [self.c.catalog.line_item(i, v, q) for i, v, q in self.cart]

    def _new_order(self) -> dict[str, Any]:
        if not self.cart:
            self._add_to_cart()
        if not self.checkout_id:
            self.checkout_id = self._hex_id("chk_")
        # Segment e-commerce spec: subtotal is after discounts and before shipping and tax;
        # revenue excludes shipping and tax; total is what the shopper paid.
        discount = round(self.cart_total * 0.10, 2) if self.coupon else 0.0
        subtotal = round(self.cart_total - discount, 2)
        shipping = 0.0 if subtotal >= SHIPPING_FREE_FROM else SHIPPING_FEE
        tax = round(subtotal * TAX_RATE, 2)
        order: dict[str, Any] = {
            "order_id": self._hex_id("ord_"),
            "checkout_id": self.checkout_id,
            "subtotal": subtotal,
            "revenue": subtotal,
            "discount": discount,
            "shipping": shipping,
            "tax": tax,
            "total": round(subtotal + shipping + tax, 2),
            "products": self._line_items(),
            "value": self.cart_total,
        }
        if self.coupon:
            order["coupon"] = self.coupon
        return order

    def track(self, spec: _TrackSpec, state: str, picked: bool) -> bool:
        """Emit a track call, updating the shopper's commerce context first.

        Properties are ``{prop: context value}`` for each property the tracking plan lists for
        the event, in plan order: required ones always (the context is completed first: a
        purchase without a cart gets one), optional ones when the context has them.
        """
        name = spec.name
        finish_order = False
        if name == "Product Viewed":
            if not picked or self.product is None:
                self._pick_product()
                picked = True
        elif spec.product and self.product is None:
            self._pick_product()
        if name == "Added to Cart" or (spec.cart and not self.cart and not spec.order):
            self._add_to_cart()
        if name == "Checkout Started" and not self.checkout_id:
            self.checkout_id = self._hex_id("chk_")
        if name == "Order Completed" or (spec.order and self.order is None):
            self.order = self._new_order()
            finish_order = name == "Order Completed"
        if spec.product_only and self.product is not None:
            # The common case (Product Viewed): the payload is a projection of the product's
            # cached dict, so it is cached too and shared by every view of that variant.
            key = (name, self.product_key)
            props = self.c.product_payloads.get(key)
            if props is None:
                product = self.product
                props = {p: product[p] for p in spec.props if p in product}
                self.c.product_payloads[key] = props
        else:
            props = self._payload(spec)
        self._emit(_TRACK, name, props, state, spec.server)
        if finish_order:  # the cart became an order: the next add starts a new cart
            self.cart = []
            self.cart_id = ""
            self.cart_total = 0.0
            self.checkout_id = ""
        return picked

    def _payload(self, spec: _TrackSpec) -> dict[str, Any]:
        vals: dict[str, Any] = {"currency": self.c.catalog.currency}
        needs = spec.needs
        if self.product is not None:
            vals.update(self.product)
        elif self.page_vals:
            vals["url"] = self.page_vals["url"]
        for key in spec.page_keys:
            if key in self.page_vals:
                vals[key] = self.page_vals[key]
        if self.cart:
            vals["cart_id"] = self.cart_id
            vals["cart_total"] = self.cart_total
            vals["value"] = self.cart_total
            vals["quantity"] = self.last_qty
            if "products" in needs:
                vals["products"] = self._line_items()
        if self.checkout_id:
            vals["checkout_id"] = self.checkout_id
        if self.coupon:
            vals["coupon"] = self.coupon
        if self.order is not None and spec.order:
            vals.update(self.order)
        if spec.subscription:
            self._subscription(spec.name, vals)
        return {p: vals[p] for p in spec.props if p in vals}

    def _subscription(self, name: str, vals: dict[str, Any]) -> None:
        if self.subscription is None or name == "Subscription Created":
            plan, interval, price = SUBSCRIPTION_PLANS[int(self.u() * len(SUBSCRIPTION_PLANS)) % 3]
            self.subscription = (self._hex_id("sub_"), plan, interval, price)
        sub_id, plan, interval, price = self.subscription
        vals.update({"subscription_id": sub_id, "plan": plan, "interval": interval, "price": price})
        if "Cancel" in name:
            vals["reason"] = CANCEL_REASONS[int(self.u() * len(CANCEL_REASONS)) % len(CANCEL_REASONS)]

    # ----------------------------------------------------------------- the state machine

    def run(self) -> None:
        d = self.d
        u = d.u
        journey = self.journey
        states = journey.states
        current = journey.start
        for _ in range(journey.max_steps):
            state = states[current]
            reps = state.repeat_min + (int(u() * state.repeat_span) if state.repeat_span > 1 else 0)
            for rep in range(reps):
                if rep:
                    self._advance(d.think(state.think))
                picked = False
                first = True
                for call in state.calls:
                    p = call.p
                    if p < 1.0 and u() >= p:
                        continue
                    if not first:  # the next call of a visit comes 40–940 ms later
                        self.now += _CALL_GAP_MIN_MS + int(u() * _CALL_GAP_SPAN_MS)
                    kind = call.kind
                    # Pages and tracks always emit; identify and screen calls may not.
                    if kind is _K_PAGE:
                        picked = self.page(call.target, state.name, picked)
                        first = False
                    elif kind is _K_TRACK:
                        assert call.track is not None
                        picked = self.track(call.track, state.name, picked)
                        first = False
                    else:
                        before = len(self.events)
                        if kind is _K_IDENTIFY:
                            self.identify(call.target, state.name)
                        else:
                            self.screen(call.target, state.name)
                        if len(self.events) > before:
                            first = False
            nxt = bisect_right(state.next_cum, u())
            if nxt >= len(state.next_to):
                return  # the remainder: the shopper leaves
            self._advance(d.think(state.next_think[nxt]))
            current = state.next_to[nxt]

    def _advance(self, think_ms: int) -> None:
        self.now += max(0, think_ms)
        if think_ms >= SESSION_GAP_MS:
            self.new_session()

    def life(self) -> ShopperLife:
        ident = self.ident
        anonymous_ids = tuple(
            ident.anonymous_ids[i] for i in ((0, 1) if self.cross else (0,)) if self.used_devices[i]
        ) or (ident.anonymous_ids[0],)
        # Person(...) and ShopperLife(...) through their slot descriptors, like _event.
        person: Person = _new(Person)
        _p_shopper(person, self.k)
        _p_user(person, ident.user_id)
        _p_email(person, ident.email)
        _p_first(person, ident.first_name)
        _p_last(person, ident.last_name)
        _p_phone(person, ident.phone)
        _p_created(person, self.created_ms)
        _p_returning(person, self.returning)
        _p_anon(person, anonymous_ids)
        _p_attrs(person, {"identified": self.known, "cross_device": self.cross})
        life: ShopperLife = _new(ShopperLife)
        _l_person(life, person)
        _l_start(life, self.start_ms)
        _l_journey(life, self.journey.name)
        _l_device(life, self.devices[0].value)
        _l_source(life, self.first_source)
        _l_events(life, tuple(self.events))
        return life


class ShopperStreams:
    """The BEHAVIOUR and IDENTITY draws of the shoppers one iterator walks, batched.

    Owned by one iterator (``simulate_shoppers``) and asked for shoppers in its order
    ``k, k + step, ...``; what it returns for shopper k depends only on ``(seed, k)``.
    """

    __slots__ = ("behaviour", "identity")

    def __init__(self, seed: int, *, step: int = 1) -> None:
        self.behaviour = ShopperBlocks(seed, _BEHAVIOUR, uniforms=_BEHAVIOUR_U, words=_BEHAVIOUR_W, step=step)
        self.identity = ShopperBlocks(
            seed, Stream.IDENTITY, uniforms=IDENTITY_UNIFORMS, words=IDENTITY_WORDS, step=step
        )


def walk(
    compiled: Compiled, shopper: int, start_ms: int, streams: ShopperStreams | None = None
) -> ShopperLife:
    """Shopper ``shopper``'s whole life, arriving at ``start_ms`` (depends only on seed and k).

    ``streams``: the calling iterator's batched draws (default: computed for this shopper alone).
    """
    w = _Walk(compiled, shopper, start_ms, streams or ShopperStreams(compiled.seed))
    w.run()
    return w.life()


__all__ = ["SESSION_GAP_MS", "Compiled", "ShopperStreams", "fast_ulid", "walk"]
