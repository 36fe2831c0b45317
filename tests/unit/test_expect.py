"""Expectations: campaign rules over the truth (event time) and over deliveries (arrival time)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.events import Outcome
from generator.expect import expectations

from .expect_support import CART, HOUR, MIN, T0, cart, delivered, event, identify, order, scenario


def sends(exps):
    return sorted(
        (e.campaign, e.person, e.trigger_event_id, e.send_ms) for e in exps if e.outcome is Outcome.SEND
    )


def by_trigger(exps):
    return {e.trigger_event_id: e for e in exps}


# --------------------------------------------------------------------------- truth


def test_truth_cart_abandoner_gets_message_after_delay():
    evs = [identify(0, "u1", "a1"), cart(10_000, user="u1", anon="a1", id="C1")]
    out = list(expectations(scenario(), evs, basis="truth"))
    assert sends(out) == [("cart_recovery", "u1", "C1", T0 + 10_000 + HOUR)]


def test_truth_buyer_before_send_is_suppressed_as_purchased():
    evs = [identify(0, "u1", "a1"), cart(0, user="u1", id="C1"), order(20 * MIN, user="u1", id="O1")]
    (exp,) = expectations(scenario(), evs, basis="truth")
    assert exp.outcome is Outcome.NO_SEND and exp.reason == "purchased" and exp.exit_event_id == "O1"


def test_truth_purchase_after_send_does_not_suppress():
    evs = [identify(0, "u1"), cart(0, user="u1", id="C1"), order(2 * HOUR, user="u1")]
    assert sends(expectations(scenario(), evs, basis="truth")) == [("cart_recovery", "u1", "C1", T0 + HOUR)]


def test_truth_identified_later_but_before_send_counts_and_after_send_does_not():
    early = [cart(0, anon="a1", id="C1"), identify(30 * MIN, "u1", "a1")]
    assert sends(expectations(scenario(), early, basis="truth")) == [("cart_recovery", "u1", "C1", T0 + HOUR)]
    late = [cart(0, anon="a2", id="C2", shopper=1), identify(2 * HOUR, "u2", "a2", shopper=1)]
    (exp,) = expectations(scenario(), late, basis="truth")
    assert exp.reason == "unaddressable" and exp.outcome is Outcome.NO_SEND


def test_truth_never_identified_is_unaddressable_under_the_anonymous_id():
    (exp,) = expectations(scenario(), [cart(0, anon="a9", id="C9")], basis="truth")
    assert (exp.reason, exp.person) == ("unaddressable", "a9")


def test_truth_filter_excludes_small_carts():
    assert (
        list(expectations(scenario(), [identify(0, "u1"), cart(0, total=5, user="u1")], basis="truth")) == []
    )


def test_truth_frequency_once_per_day():
    campaigns = {"c": {**CART["cart_recovery"], "frequency": {"once_per": "24h"}}}
    evs = [
        identify(0, "u1"),
        cart(0, user="u1", id="A"),
        cart(2 * HOUR, user="u1", id="B"),
        cart(25 * HOUR, user="u1", id="C"),
    ]
    out = by_trigger(expectations(scenario(campaigns), evs, basis="truth"))
    assert out["A"].outcome is Outcome.SEND
    assert out["B"].reason == "frequency"
    assert out["C"].outcome is Outcome.SEND


def test_truth_browse_abandonment_behaviour_trigger_and_exit_on_cart():
    campaigns = {
        "browse": {
            "trigger": {
                "behavior": {
                    "event": "Product Viewed",
                    "at_least": 2,
                    "within": "24h",
                    "and_not": ["Added to Cart"],
                }
            },
            "delay": "2h",
            "exit_on": ["Added to Cart", "Order Completed"],
            "frequency": "once",
        }
    }
    browser = [
        identify(0, "u1"),
        event("Product Viewed", MIN, user="u1", id="V1"),
        event("Product Viewed", 2 * MIN, user="u1", id="V2"),
    ]
    assert sends(expectations(scenario(campaigns), browser, basis="truth")) == [
        ("browse", "u1", "V2", T0 + 2 * MIN + 2 * HOUR)
    ]
    carter = [
        identify(0, "u2", shopper=1),
        event("Product Viewed", MIN, user="u2", shopper=1, id="W1"),
        event("Product Viewed", 2 * MIN, user="u2", shopper=1, id="W2"),
        cart(3 * MIN, user="u2", shopper=1),
    ]
    (exp,) = expectations(scenario(campaigns), carter, basis="truth")
    assert exp.reason == "exited"


def test_truth_stream_must_be_grouped_by_shopper():
    evs = [cart(0, anon="a", shopper=0), cart(1, anon="b", shopper=1), cart(2, anon="a", shopper=0)]
    with pytest.raises(ValueError, match="grouped by shopper"):
        list(expectations(scenario(), evs, basis="truth"))


def test_unknown_basis_is_rejected():
    with pytest.raises(ValueError, match="basis"):
        list(expectations(scenario(), [], basis="nope"))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- delivered


def test_delivered_late_purchase_after_send_does_not_suppress():
    c = cart(0, user="u1", id="C1")
    o = order(20 * MIN, user="u1", id="O1")
    plan = [delivered(identify(-MIN, "u1")), delivered(c), delivered(o, 74 * MIN, faults=("latency",))]
    assert sends(expectations(scenario(), plan, basis="delivered")) == [
        ("cart_recovery", "u1", "C1", T0 + HOUR)
    ]
    # ...while the truth says the buyer must not get it
    truth = list(expectations(scenario(), [identify(-MIN, "u1"), c, o], basis="truth"))
    assert [e.reason for e in truth] == ["purchased"]


def test_delivered_dedupes_same_id_and_enters_new_id_copies():
    c = cart(0, user="u1", id="C1")
    copy = replace(c, id="C1b")
    plan = [
        delivered(identify(-MIN, "u1")),
        delivered(c),
        delivered(c, 5_000, faults=("retry_duplicate",)),
        delivered(copy, 10, faults=("double_fire",), truth_id="C1"),
    ]
    assert [s[2] for s in sends(expectations(scenario(), plan, basis="delivered"))] == ["C1", "C1b"]


def test_delivered_dropped_events_never_arrive():
    plan = [
        delivered(identify(-MIN, "u1")),
        delivered(cart(0, user="u1", id="C1"), dropped=True, faults=("drop",)),
    ]
    assert list(expectations(scenario(), plan, basis="delivered")) == []


def test_delivered_72h_rule_at_arrival():
    old = cart(-73 * HOUR, user="u1", id="OLD")
    ok = cart(-71 * HOUR, user="u1", id="OK")
    plan = [delivered(identify(-MIN, "u1")), delivered(old, 0), delivered(ok, 0)]
    out = by_trigger(expectations(scenario({"c": {**CART["cart_recovery"]}}), plan, basis="delivered"))
    assert out["OLD"].reason == "stale"
    assert out["OK"].outcome is Outcome.SEND and out["OK"].send_ms == T0 + HOUR


def test_delivered_anonymous_merge_at_identify_uses_identify_time():
    c = cart(0, anon="a1", id="C1")
    plan = [delivered(c), delivered(identify(10 * MIN, "u1", "a1"))]
    assert sends(expectations(scenario(), plan, basis="delivered")) == [
        ("cart_recovery", "u1", "C1", T0 + 10 * MIN + HOUR)
    ]


def test_delivered_merge_window_five_minutes_after_identify():
    inside = cart(0, anon="a1", id="IN")
    outside = cart(0, anon="a1", id="OUT")
    plan = [delivered(identify(0, "u1", "a1")), delivered(inside, 5 * MIN), delivered(outside, 5 * MIN + 1)]
    out = by_trigger(
        expectations(
            scenario({"c": {**CART["cart_recovery"], "frequency": "every_time"}}), plan, basis="delivered"
        )
    )
    assert out["IN"].outcome is Outcome.SEND
    assert out["OUT"].reason == "anonymous"


def test_delivered_exit_must_be_processed_after_entry_and_before_send():
    c = cart(0, user="u1", id="C1")
    before = order(-MIN, user="u1", id="O0")  # purchase processed before the (late) cart entry: no exit
    plan = [
        delivered(identify(-2 * MIN, "u1")),
        delivered(before),
        delivered(c, 10 * MIN, faults=("latency",)),
    ]
    assert sends(expectations(scenario(), plan, basis="delivered")) == [
        ("cart_recovery", "u1", "C1", T0 + 70 * MIN)
    ]
    at_send = [delivered(identify(-2 * MIN, "u1")), delivered(c), delivered(order(HOUR, user="u1"))]
    assert len(sends(expectations(scenario(), at_send, basis="delivered"))) == 1  # the send fires first
    just_before = [delivered(identify(-2 * MIN, "u1")), delivered(c), delivered(order(HOUR - 1, user="u1"))]
    assert sends(expectations(scenario(), just_before, basis="delivered")) == []


def test_delivered_name_drift_does_not_trigger_and_retype_fails_filter():
    campaigns = {"c": {"trigger": {"event": "Added to Cart", "where": ["product_id == 'p1'"]}, "delay": "1h"}}
    renamed = replace(cart(0, user="u1", id="R"), name="AddToCart")
    retyped = event("Added to Cart", 0, user="u1", id="T", props={"product_id": 1, "cart_total": 30})
    good = cart(0, user="u1", id="G")
    plan = [delivered(identify(-MIN, "u1")), delivered(renamed), delivered(retyped), delivered(good)]
    assert [s[2] for s in sends(expectations(scenario(campaigns), plan, basis="delivered"))] == ["G"]


def test_delivered_person_without_email_is_not_sent():
    plan = [delivered(identify(-MIN, "u1", email=False)), delivered(cart(0, user="u1", id="C1"))]
    (exp,) = expectations(scenario(), plan, basis="delivered")
    assert exp.reason == "no_email"


def test_delivered_anonymous_id_is_not_reusable():
    c = cart(0, anon="a1", id="C1")
    plan = [
        delivered(identify(-MIN, "u1", "a1")),
        delivered(identify(-30_000, "u2", "a1")),
        delivered(c, 10 * MIN),
    ]
    (exp,) = expectations(scenario(), plan, basis="delivered")
    assert exp.reason == "anonymous"


def test_truth_and_delivered_agree_without_faults():
    evs = [
        identify(0, "u1", "a1"),
        cart(MIN, user="u1", anon="a1", id="C1"),
        order(30 * MIN, user="u1", id="O1"),
        cart(3 * HOUR, user="u1", anon="a1", id="C2"),
    ]
    truth = sends(expectations(scenario(), evs, basis="truth"))
    plan = sends(expectations(scenario(), [delivered(e) for e in evs], basis="delivered"))
    assert truth == plan == [("cart_recovery", "u1", "C2", T0 + 4 * HOUR)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["cart", "order", "view"]), st.integers(0, 6 * 60), st.integers(0, 3)),
        max_size=12,
    )
)
def test_property_without_faults_delivered_equals_truth_for_identified_shoppers(script):
    """With every event delivered at its timestamp by an already-identified person, both bases agree."""
    campaigns = {
        **CART,
        "every": {
            "trigger": {"event": "Product Viewed"},
            "delay": "30m",
            "exit_on": ["Added to Cart"],
            "frequency": {"once_per": "1h"},
        },
    }
    evs = [identify(-HOUR, "u1", "a1")]
    for i, (kind, minute, _) in enumerate(sorted(script, key=lambda s: s[1])):
        at = minute * MIN + i  # distinct times: same-time ordering is a separate question
        if kind == "cart":
            evs.append(cart(at, user="u1", id=f"K{i}"))
        elif kind == "order":
            evs.append(order(at, user="u1", id=f"O{i}"))
        else:
            evs.append(event("Product Viewed", at, user="u1", id=f"V{i}"))
    sc = scenario(campaigns)
    truth = sends(expectations(sc, evs, basis="truth"))
    plan = sends(expectations(sc, [delivered(e) for e in evs], basis="delivered"))
    assert truth == plan


def test_the_fast_expectation_builder_fills_every_field_by_name() -> None:
    # _exp builds Expectation positionally (hot path): a reordered field must fail here.
    from generator.events import CallType, Event, Expectation, Outcome, Source
    from generator.expect import _exp

    trigger = Event(
        id="E1",
        seq=0,
        shopper=7,
        type=CallType.TRACK,
        name="Added to Cart",
        timestamp_ms=5,
        user_id="u1",
        anonymous_id=None,
        properties={},
        context={},
        source=Source.WEB,
    )
    built = _exp(
        "truth",
        "cart",
        "u1",
        trigger,
        ts_entry=5,
        outcome=Outcome.NO_SEND,
        send_ms=9,
        reason="purchased",
        exit_event_id="E2",
    )
    assert (
        built._asdict()
        == Expectation(
            basis="truth",
            campaign="cart",
            person="u1",
            shopper=7,
            outcome=Outcome.NO_SEND,
            trigger_event_id="E1",
            trigger_ms=5,
            send_ms=9,
            reason="purchased",
            exit_event_id="E2",
        )._asdict()
    )
    assert built.shopper == 7 and built.exit_event_id == "E2" and built.reason == "purchased"
