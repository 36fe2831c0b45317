"""Simulated funnel frequencies agree with the analytic funnel, and random journey graphs walk sanely."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.events import CallType
from generator.scenario import load_scenario
from generator.scenario.funnel import IDENTIFY, analytic_funnel
from generator.scenario.model import Scenario
from generator.simulate import simulate_shoppers

ROOT = Path(__file__).resolve().parents[2]
SHOPPERS = 20_000


def _observed_reach(scenario: Scenario, *, seed: int, shoppers: int) -> dict[str, float]:
    counts: dict[str, int] = {}
    for life in simulate_shoppers(scenario, seed=seed, shoppers=shoppers):
        names = {
            IDENTIFY if e.type is CallType.IDENTIFY else e.name
            for e in life.events
            if e.type in (CallType.TRACK, CallType.IDENTIFY)
        }
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return {name: n / shoppers for name, n in counts.items()}


@pytest.mark.parametrize("name", ["d2c_cart_recovery"])
def test_funnel_frequencies_match_the_analytic_funnel(name):
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    expected = analytic_funnel(scenario).reach
    observed = _observed_reach(scenario, seed=2024, shoppers=SHOPPERS)
    assert set(observed) <= set(expected)
    for event, p in expected.items():
        se = math.sqrt(max(p * (1 - p), 1e-6) / SHOPPERS)
        got = observed.get(event, 0.0)
        assert abs(got - p) <= 4 * se, f"{event}: simulated {got:.4f}, analytic {p:.4f} (4 SE = {4 * se:.4f})"


# --------------------------------------------------------------------------- random journey graphs

_CALLS = [
    {"page": "product"},
    {"page": "home"},
    {"page": "cart"},
    {"track": "Product Viewed"},
    {"track": "Added to Cart"},
    {"track": "Checkout Started"},
    {"track": "Order Completed"},
    {"track": "Subscription Cancelled"},
    {"identify": "newsletter_popup"},
    {"identify": "checkout_email"},
    {"screen": "Wishlist"},
]

_THINKS = st.one_of(
    st.none(),
    st.integers(0, 3600).map(lambda s: f"{s}s"),
    st.builds(lambda m: {"exponential": {"mean": f"{m}s"}}, st.integers(1, 4000)),
    st.builds(
        lambda a, b: {"uniform": {"min": f"{a}s", "max": f"{a + b}s"}},
        st.integers(0, 100),
        st.integers(0, 7200),
    ),
    st.builds(
        lambda m, s: {"lognormal": {"median": f"{m}s", "sigma": s}}, st.integers(1, 600), st.floats(0.1, 2.0)
    ),
)


@st.composite
def journeys(draw):
    size = draw(st.integers(1, 5))
    names = [f"s{i}" for i in range(size)]
    states = {}
    for name in names:
        emit = draw(st.lists(st.sampled_from(_CALLS), max_size=4))
        emit = [{**c, "p": draw(st.sampled_from([1.0, 0.5, 0.1]))} for c in emit]
        targets = draw(st.lists(st.sampled_from(names), unique=True, max_size=size))
        weights = draw(st.lists(st.integers(0, 100), min_size=len(targets), max_size=len(targets)))
        total = sum(weights)
        scale = draw(st.floats(0.0, 1.0)) / total if total > 0 else 0.0
        nxt = {}
        for target, w in zip(targets, weights, strict=True):
            think = draw(_THINKS)
            p = math.floor(w * scale * 1000) / 1000
            nxt[target] = {"p": p, **({"think": think} if think is not None else {})}
        state = {"emit": emit, "next": nxt}
        if draw(st.booleans()):
            low = draw(st.integers(1, 3))
            state["repeat"] = {"min": low, "max": low + draw(st.integers(0, 2))}
        think = draw(_THINKS)
        if think is not None:
            state["think"] = think
        states[name] = state
    return {"start": "s0", "states": states, "max_steps": draw(st.integers(1, 60))}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journeys(), st.integers(0, 2**32), st.floats(0.0, 1.0))
def test_random_journeys_end_with_non_decreasing_time(journey, seed, cross_device):
    scenario = Scenario.model_validate(
        {
            "name": "random",
            "shoppers": 15,
            "population": {"arrivals": {"rate_per_hour": 100}, "returning_share": 0.3},
            "identity": {"cross_device_share": cross_device},
            "journeys": {"j": journey},
        }
    )
    # Each step visits one state: up to its repeat max (default 1) times its calls.
    max_calls = journey["max_steps"] * max(
        s.get("repeat", {"max": 1})["max"] * max(1, len(s["emit"])) for s in journey["states"].values()
    )
    lives = list(simulate_shoppers(scenario, seed=seed))
    assert len(lives) == 15
    for life in lives:
        stamps = [e.timestamp_ms for e in life.events]
        assert stamps == sorted(stamps)
        assert len(life.events) <= max_calls
        assert all(e.journey == "j" and e.state in journey["states"] for e in life.events)
