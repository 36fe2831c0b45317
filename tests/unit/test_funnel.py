"""The analytic funnel against hand-computed chains and an independent fixed-point iteration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.scenario.funnel import (
    IDENTIFY,
    analytic_funnel,
    expected_arrivals,
    expected_time_to,
    journey_shares,
)
from generator.scenario.model import Scenario

PV, ATC, CS, OC = "Product Viewed", "Added to Cart", "Checkout Started", "Order Completed"


def make(journeys, *, returning_share=0.0, points=None, **extra) -> Scenario:
    data = {
        "name": "t",
        "shoppers": 10,
        "population": {
            "arrivals": {"rate_per_hour": 60, "diurnal": "flat"},
            "returning_share": returning_share,
        },
        "journeys": journeys,
        **extra,
    }
    if points is not None:
        data["identity"] = {"points": points}
    return Scenario.model_validate(data)


def track(event, p=1.0):
    return {"track": event, "p": p}


def test_linear_chain():
    scenario = make(
        {
            "j": {
                "start": "a",
                "states": {
                    "a": {"emit": [track(PV)], "next": {"b": 0.5}},
                    "b": {"emit": [track(ATC)], "next": {"c": 0.4}},
                    "c": {"emit": [track(OC)]},
                },
            }
        }
    )
    funnel = analytic_funnel(scenario)
    assert funnel.reach[PV] == pytest.approx(1.0)
    assert funnel.reach[ATC] == pytest.approx(0.5)
    assert funnel.reach[OC] == pytest.approx(0.2)
    assert funnel.reach[IDENTIFY] == 0.0
    assert funnel.expected_states == pytest.approx(1 + 0.5 + 0.2)
    assert funnel.expected_calls["track"] == pytest.approx(1.7)
    assert list(funnel.reach) == [PV, ATC, OC, IDENTIFY]  # plan order, identify last


def test_self_loop_with_optional_call():
    # x = 0.3 + 0.7·0.5·x  ⇒  x = 0.3 / 0.65; visits ~ geometric(0.5): mean 2.
    scenario = make({"j": {"start": "a", "states": {"a": {"emit": [track(PV, 0.3)], "next": {"a": 0.5}}}}})
    funnel = analytic_funnel(scenario)
    assert funnel.reach[PV] == pytest.approx(0.3 / 0.65)
    assert funnel.expected_states == pytest.approx(2.0)
    assert funnel.expected_calls["track"] == pytest.approx(0.6)


def test_two_state_loop():
    # x_b = 0.5 + 0.5·0.5·x_a, x_a = 0.8·x_b  ⇒  x_b = 0.625, x_a = 0.5
    scenario = make(
        {
            "j": {
                "start": "a",
                "states": {
                    "a": {"next": {"b": 0.8}},
                    "b": {"emit": [track(ATC, 0.5)], "next": {"a": 0.5}},
                },
            }
        }
    )
    funnel = analytic_funnel(scenario)
    assert funnel.reach[ATC] == pytest.approx(0.5)
    # visits: v_a = 1 + 0.5·v_b, v_b = 0.8·v_a  ⇒  v_a = 1/0.6, v_b = 0.8/0.6
    assert funnel.expected_states == pytest.approx(1.8 / 0.6)


def test_repeat_uniform_count():
    # n ∈ {1, 2, 3}: P(miss) = (0.5 + 0.25 + 0.125) / 3
    scenario = make(
        {"j": {"start": "a", "states": {"a": {"emit": [track(PV, 0.5)], "repeat": {"min": 1, "max": 3}}}}}
    )
    funnel = analytic_funnel(scenario)
    assert funnel.reach[PV] == pytest.approx(1 - 0.875 / 3)
    assert funnel.expected_calls["track"] == pytest.approx(2 * 0.5)


def test_two_calls_of_one_event_in_a_state_and_a_repeat():
    # per repetition miss = 0.5·0.8; n ∈ {2}: miss² = 0.16
    scenario = make(
        {
            "j": {
                "start": "a",
                "states": {"a": {"emit": [track(PV, 0.5), track(PV, 0.2)], "repeat": {"min": 2, "max": 2}}},
            }
        }
    )
    assert analytic_funnel(scenario).reach[PV] == pytest.approx(1 - 0.16)


def test_identify_point_probability_multiplies_the_call():
    scenario = make(
        {
            "j": {
                "start": "a",
                "states": {
                    "a": {"emit": [{"identify": "popup", "p": 0.5}], "next": {"b": 0.5}},
                    "b": {"emit": [{"identify": "checkout"}]},
                },
            }
        },
        points={"popup": 0.1, "checkout": 1.0},
    )
    funnel = analytic_funnel(scenario)
    # P(no identify) = 0.95 · (0.5 + 0.5·0) = 0.475
    assert funnel.reach[IDENTIFY] == pytest.approx(1 - 0.475)
    assert funnel.expected_calls["identify"] == pytest.approx(funnel.reach[IDENTIFY])


def test_audiences_mix_by_weight():
    always = {"start": "a", "states": {"a": {"emit": [track(OC)]}}}
    never = {"start": "a", "states": {"a": {"emit": [track(PV)]}}}
    scenario = make(
        {
            "new_buy": {**always, "audience": "new", "weight": 3},
            "anyone": {**never, "audience": "any", "weight": 1},
            "ret": {**always, "audience": "returning", "weight": 1},
        },
        returning_share=0.25,
    )
    shares = journey_shares(scenario)
    # new (0.75): new_buy 3/4, anyone 1/4; returning (0.25): anyone 1/2, ret 1/2
    assert shares == pytest.approx({"new_buy": 0.5625, "anyone": 0.1875 + 0.125, "ret": 0.125})
    funnel = analytic_funnel(scenario)
    assert funnel.reach[OC] == pytest.approx(0.5625 + 0.125)
    assert funnel.reach[PV] == pytest.approx(0.3125)
    assert sum(j.share for j in funnel.journeys) == pytest.approx(1.0)


def test_unreachable_and_unemitted_events():
    scenario = make(
        {
            "j": {
                "start": "a",
                "states": {"a": {"emit": [track(PV)], "next": {"b": 0.0}}, "b": {"emit": [track(CS)]}},
            }
        }
    )
    funnel = analytic_funnel(scenario)
    assert funnel.reach[CS] == 0.0
    assert ATC not in funnel.reach  # no journey emits it


def test_endless_loop_has_infinite_expected_states_but_finite_reach():
    # Built without the loader (which rejects it): the funnel must not crash.
    scenario = make(
        {
            "j": {
                "start": "a",
                "states": {"a": {"emit": [track(PV, 0.1)], "next": {"b": 1.0}}, "b": {"next": {"a": 1.0}}},
            }
        }
    )
    funnel = analytic_funnel(scenario)
    assert funnel.reach[PV] == pytest.approx(1.0)  # infinitely many tries
    assert math.isinf(funnel.expected_states)


def _iterate(p: np.ndarray, h: np.ndarray, steps: int = 400) -> np.ndarray:
    """Fixed-point iteration x ← h + (1 − h)·P·x from 0: converges to the minimal solution."""
    x = np.zeros_like(h)
    for _ in range(steps):
        x = h + (1 - h) * (p @ x)
    return x


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=5).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(
                st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.5]), min_size=n, max_size=n),
                min_size=n,
                max_size=n,
            ),
            st.lists(st.sampled_from([0.0, 0.2, 0.5, 1.0]), min_size=n, max_size=n),
        )
    )
)
def test_linear_solve_matches_fixed_point_iteration(case):
    n, rows, call_p = case
    # Scale rows so each sums to at most 0.9: every walk ends, iteration converges fast.
    p = np.array(rows, dtype=float)
    sums = p.sum(axis=1, keepdims=True)
    p = np.where(sums > 0.9, p * 0.9 / np.maximum(sums, 1e-12), p)
    names = [f"s{i}" for i in range(n)]
    states = {
        names[i]: {
            "emit": [track(PV, call_p[i])] if call_p[i] > 0 else [],
            "next": {names[j]: float(p[i, j]) for j in range(n) if p[i, j] > 0},
        }
        for i in range(n)
    }
    scenario = make({"j": {"start": "s0", "states": states}})
    expected = _iterate(p, np.array(call_p))[0] if any(call_p) else 0.0
    reach = analytic_funnel(scenario).reach.get(PV, 0.0)
    assert reach == pytest.approx(expected, abs=1e-9)


def test_monte_carlo_agrees_with_analytic():
    scenario = make(
        {
            "j": {
                "start": "land",
                "states": {
                    "land": {"emit": [track(PV, 0.8)], "next": {"view": 0.6, "cart": 0.1}},
                    "view": {
                        "emit": [track(PV, 0.5)],
                        "repeat": {"min": 1, "max": 3},
                        "next": {"view": 0.3, "cart": 0.3},
                    },
                    "cart": {"emit": [track(ATC)], "next": {"view": 0.2, "buy": 0.3}},
                    "buy": {"emit": [track(OC)]},
                },
            }
        }
    )
    journey = scenario.journeys["j"]
    rng = np.random.default_rng(12345)
    walks = 20_000
    hits = {PV: 0, ATC: 0, OC: 0}
    for _ in range(walks):
        state, seen = "land", set()
        while True:
            spec = journey.states[state]
            n = 1 if spec.repeat is None else int(rng.integers(spec.repeat.min, spec.repeat.max + 1))
            for _ in range(n):
                for call in spec.emit:
                    if rng.random() < call.p:
                        seen.add(call.track)
            u, acc, nxt = rng.random(), 0.0, None
            for target, t in spec.next.items():
                acc += t.p
                if u < acc:
                    nxt = target
                    break
            if nxt is None:
                break
            state = nxt
        for event in seen:
            hits[event] += 1
    funnel = analytic_funnel(scenario)
    for event, count in hits.items():
        p = funnel.reach[event]
        sd = math.sqrt(p * (1 - p) / walks)
        assert abs(count / walks - p) < 5 * sd + 1e-9, (event, count / walks, p)


# --------------------------------------------------------------------------- arrivals


def test_expected_arrivals_flat_and_weekend():
    flat = make({"j": {"start": "a", "states": {"a": {}}}})
    assert expected_arrivals(flat, 86_400_000) == pytest.approx(60 * 24)
    assert expected_arrivals(flat, 90 * 60_000) == pytest.approx(90)
    weekend = Scenario.model_validate(
        {
            **flat.model_dump(mode="json", exclude={"population"}),
            "population": {"arrivals": {"rate_per_hour": 10, "weekend_factor": 2.0}, "returning_share": 0},
        }
    )
    # 2026-11-02 is a Monday: 5 weekdays + 2 weekend days; the diurnal curve averages 1 per day.
    assert expected_arrivals(weekend, 7 * 86_400_000) == pytest.approx(10 * 24 * (5 + 2 * 2))


def test_expected_time_to_shoppers():
    flat = make({"j": {"start": "a", "states": {"a": {}}}})
    assert expected_time_to(flat, 90) == 90 * 60_000
    assert expected_time_to(flat, 10**9, limit_ms=86_400_000) is None
