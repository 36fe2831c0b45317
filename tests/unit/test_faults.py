"""Faults: truth stream → delivery plan (rates, tags, truth untouched, ordering, determinism)."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from generator.events import CallType, Delivery, Event, Person, ShopperLife, Source
from generator.faults import PADDING_PROPERTY, plan_deliveries, shopper_deliveries
from generator.ids import ulid, ulid_time_ms
from generator.scenario.model import Scenario
from generator.wire import ITEM_LIMIT_BYTES, encoder_for

T0 = 1_793_577_600_000  # 2026-11-02T00:00:00Z
SEED = 1234


def scenario(**faults: Any) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "faults_test",
            "shoppers": 10,
            "population": {"arrivals": {"rate_per_hour": 100}},
            "journeys": {"j": {"start": "s", "states": {"s": {"emit": [{"page": "home"}]}}}},
            "faults": faults,
        }
    )


def life(k: int, start_ms: int) -> ShopperLife:
    """A hand-built shopper: anonymous web browsing, identify, cart, app screen, server purchase."""
    anon, user = f"anon-{k}", f"user-{k}"
    specs: list[tuple[CallType, str, Source, str | None, dict[str, Any]]] = [
        (
            CallType.PAGE,
            "Product",
            Source.WEB,
            None,
            {"url": f"https://shop.example.com/p/{k}", "path": f"/p/{k}"},
        ),
        (
            CallType.TRACK,
            "Product Viewed",
            Source.WEB,
            None,
            {"product_id": "7001", "price": 19.5, "sku": "A-1"},
        ),
        (
            CallType.IDENTIFY,
            "",
            Source.WEB,
            user,
            {"email": f"{user}@example.com", "created_at": start_ms // 1000},
        ),
        (
            CallType.TRACK,
            "Added to Cart",
            Source.WEB,
            user,
            {"product_id": "7001", "price": 19.5, "quantity": 1},
        ),
        (CallType.SCREEN, "Cart", Source.APP, user, {"items": 1}),
        (
            CallType.TRACK,
            "Added to Cart",
            Source.APP,
            user,
            {"product_id": "7002", "price": 5.0, "quantity": 2},
        ),
        (CallType.TRACK, "Order Completed", Source.SERVER, user, {"order_id": f"o-{k}", "total": 24.5}),
    ]
    events = []
    for seq, (type_, name, source, user_id, props) in enumerate(specs):
        ts = start_ms + 1000 + seq * 7_000
        events.append(
            Event(
                id=ulid(ts, k * 100 + seq),
                shopper=k,
                seq=seq,
                type=type_,
                name=name,
                timestamp_ms=ts,
                user_id=user_id,
                anonymous_id=None if source is Source.SERVER else anon,
                properties=props,
                context={"page": {"url": "https://shop.example.com/"}} if source is Source.WEB else {},
                source=source,
            )
        )
    person = Person(
        shopper=k,
        user_id=user,
        email=f"{user}@example.com",
        first_name="Ada",
        last_name="Lovelace",
        phone="+15555550100",
        created_ms=start_ms,
        returning=False,
        anonymous_ids=(anon,),
    )
    return ShopperLife(
        person=person,
        start_ms=start_ms,
        journey="j",
        device="mobile_web",
        traffic_source="direct",
        events=tuple(events),
    )


def lives(n: int) -> list[ShopperLife]:
    # Shoppers 4 s apart while each one's life spans ~43 s: plenty of interleaving.
    return [life(k, T0 + k * 4_000) for k in range(n)]


def plan(faults: dict[str, Any], n: int = 400, seed: int = SEED) -> list[Delivery]:
    return list(plan_deliveries(scenario(**faults), lives(n), seed=seed))


def dump(deliveries: list[Delivery]) -> bytes:
    return b"\n".join(orjson.dumps(d) for d in deliveries)


def within(observed: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """Binomial count within `sigmas` standard deviations of n·p."""
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


ALL_FAULTS: dict[str, Any] = {
    "latency": [
        {
            "events": ["Order Completed"],
            "source": "server",
            "dist": {"lognormal": {"median": "90s", "p99": "10m"}},
        }
    ],
    "retry_duplicates": [{"p": 0.1, "copies": 2}],
    "double_fires": [{"events": ["Added to Cart"], "p": 0.2, "copies": 1, "within": "50ms"}],
    "drops": [{"source": "client", "p": 0.1}],
    "schema_drift": [
        {"source": "app", "p": 0.5, "rename": {"product_id": "productId"}, "retype": {"price": "string"}}
    ],
    "name_drift": [{"source": "app", "rename": {"Added to Cart": "AddToCart"}}],
    "clock_skew": [{"source": "server", "offset": "-2m", "jitter": "10s"}],
    "out_of_order": [{"source": "web", "p": 0.1, "max_delay": "5m"}],
    "never_identified": {"p": 0.1},
    "oversize": [{"events": ["Order Completed"], "p": 0.05, "bytes": 40000}],
}


# --------------------------------------------------------------------------- invariants


def test_no_faults_is_the_truth_in_time_order():
    shoppers = lives(50)
    truth = {e.id: e for lf in shoppers for e in lf.events}
    deliveries = list(plan_deliveries(scenario(), shoppers, seed=SEED))
    assert sorted(d.event.id for d in deliveries) == sorted(truth)
    assert all(d.faults == () and not d.dropped and d.arrival_ms == d.event.timestamp_ms for d in deliveries)
    assert all(d.event is truth[d.truth_id] for d in deliveries)


def test_truth_is_never_modified():
    truth = lives(200)
    before = orjson.dumps(truth)
    deliveries = list(plan_deliveries(scenario(**ALL_FAULTS), truth, seed=SEED))
    assert len(deliveries) > 7 * 200
    assert orjson.dumps(truth) == before


def test_ordered_by_arrival_then_shopper():
    deliveries = plan(ALL_FAULTS)
    keys = [(d.arrival_ms, d.event.shopper) for d in deliveries]
    assert keys == sorted(keys)


def test_nothing_arrives_before_its_true_time():
    truth = {e.id: e for lf in lives(400) for e in lf.events}
    for d in plan(ALL_FAULTS):
        assert d.arrival_ms >= truth[d.truth_id].timestamp_ms


def test_same_seed_same_bytes_other_seed_other_plan():
    assert dump(plan(ALL_FAULTS)) == dump(plan(ALL_FAULTS))
    assert dump(plan(ALL_FAULTS)) != dump(plan(ALL_FAULTS, seed=SEED + 1))


def test_shopper_k_is_unchanged_when_the_shopper_count_changes():
    small = [d for d in plan(ALL_FAULTS, n=100) if d.event.shopper < 60]
    large = [d for d in plan(ALL_FAULTS, n=300) if d.event.shopper < 60]
    assert dump(small) == dump(large)


def test_shards_union_to_the_whole_plan():
    whole = plan(ALL_FAULTS, n=120)
    parts: list[Delivery] = []
    for i in range(3):
        shard = [lf for lf in lives(120) if lf.person.shopper % 3 == i]
        parts.extend(plan_deliveries(scenario(**ALL_FAULTS), shard, seed=SEED))
    assert sorted(dump([d]) for d in parts) == sorted(dump([d]) for d in whole)


def test_streams_from_an_endless_supply_of_shoppers():
    endless = (life(k, T0 + k * 4_000) for k in itertools.count())
    first = list(itertools.islice(plan_deliveries(scenario(**ALL_FAULTS), endless, seed=SEED), 2000))
    assert len(first) == 2000


def test_lives_out_of_start_order_are_refused():
    with pytest.raises(ValueError, match="start order"):
        list(plan_deliveries(scenario(), [life(1, T0 + 10), life(0, T0)], seed=SEED))


# --------------------------------------------------------------------------- each fault


def test_latency_scoped_to_server_purchases():
    deliveries = plan({"latency": ALL_FAULTS["latency"]}, n=2000)
    delays = [d.arrival_ms - d.event.timestamp_ms for d in deliveries if d.event.name == "Order Completed"]
    assert len(delays) == 2000
    assert 0.85 * 90_000 < statistics.median(delays) < 1.15 * 90_000
    p99 = sorted(delays)[int(0.99 * len(delays))]
    assert 0.6 * 600_000 < p99 < 1.6 * 600_000
    for d in deliveries:
        if d.event.name == "Order Completed":
            assert d.faults == ("latency",)
        else:
            assert d.faults == () and d.arrival_ms == d.event.timestamp_ms


def test_retry_duplicates_same_id_later():
    deliveries = plan({"retry_duplicates": [{"p": 0.2, "copies": 2, "after": "3s"}]}, n=1000)
    originals = {d.truth_id: d for d in deliveries if "retry_duplicate" not in d.faults}
    copies = [d for d in deliveries if "retry_duplicate" in d.faults]
    assert len(originals) == 7000
    assert len(copies) % 2 == 0 and within(len(copies) // 2, 7000, 0.2)
    for copy in copies:
        original = originals[copy.truth_id]
        assert copy.event == original.event and copy.event.id == copy.truth_id
        assert copy.arrival_ms - original.arrival_ms in (3_000, 6_000)


def test_double_fires_get_new_ids_within_the_window():
    deliveries = plan(
        {"double_fires": [{"events": ["Added to Cart"], "p": 0.3, "copies": 2, "within": "50ms"}]}, n=1000
    )
    truth = {e.id: e for lf in lives(1000) for e in lf.events}
    copies = [d for d in deliveries if "double_fire" in d.faults]
    assert len(copies) % 2 == 0 and within(len(copies) // 2, 2000, 0.3)
    ids = [d.event.id for d in deliveries]
    assert len(set(ids)) == len(ids)
    for copy in copies:
        original = truth[copy.truth_id]
        assert original.name == "Added to Cart" and copy.event.id != original.id
        assert 0 <= copy.event.timestamp_ms - original.timestamp_ms <= 50
        assert ulid_time_ms(copy.event.id) == copy.event.timestamp_ms
        assert copy.event.properties == original.properties


def test_drops_only_client_events_and_still_planned():
    deliveries = plan({"drops": [{"source": "client", "p": 0.25}]}, n=1000)
    assert len(deliveries) == 7000  # dropped deliveries are yielded too
    dropped = [d for d in deliveries if d.dropped]
    assert all(d.faults == ("drop",) and d.event.source is not Source.SERVER for d in dropped)
    assert within(len(dropped), 6000, 0.25)


def test_schema_drift_renames_retypes_and_adds_noise():
    drift = {"events": ["Added to Cart"], "p": 0.5, "rename": {"product_id": "productId"}}
    drift |= {"retype": {"price": "string", "quantity": "string"}, "noise": 3}
    deliveries = plan({"schema_drift": [drift]}, n=1000)
    drifted = [d for d in deliveries if d.faults]
    assert within(len(drifted), 2000, 0.5)
    for d in drifted:
        assert d.faults == (
            "schema_drift:rename:product_id>productId",
            "schema_drift:retype:price:string",
            "schema_drift:retype:quantity:string",
            "schema_drift:noise",
        )
        props = d.event.properties
        assert "product_id" not in props and isinstance(props["productId"], str)
        assert isinstance(props["price"], str) and float(props["price"]) in (19.5, 5.0)
        assert next(iter(props)) == "productId"  # renamed in place
        assert {f"noise_{i}" for i in range(3)} <= set(props)


def test_schema_drift_retype_to_number():
    deliveries = plan({"schema_drift": [{"p": 1.0, "retype": {"product_id": "number"}}]}, n=20)
    retyped = [d for d in deliveries if d.faults]
    assert retyped and all(d.event.properties["product_id"] in (7001, 7002) for d in retyped)
    assert all(d.faults == ("schema_drift:retype:product_id:number",) for d in retyped)


def test_name_drift_only_on_the_scoped_platform():
    deliveries = plan({"name_drift": ALL_FAULTS["name_drift"]}, n=200)
    for d in deliveries:
        if d.event.source is Source.APP and d.event.type is CallType.TRACK:
            assert d.event.name == "AddToCart" and d.faults == ("name_drift:Added to Cart>AddToCart",)
        else:
            assert d.faults == () and d.event.name != "AddToCart"


def test_clock_skew_changes_timestamps_not_arrival():
    deliveries = plan({"clock_skew": ALL_FAULTS["clock_skew"]}, n=500)
    truth = {e.id: e for lf in lives(500) for e in lf.events}
    skewed = [d for d in deliveries if d.faults]
    assert len(skewed) == 500 and all(d.event.source is Source.SERVER for d in skewed)
    offsets = [d.event.timestamp_ms - truth[d.truth_id].timestamp_ms for d in skewed]
    assert all(-130_000 <= o <= -110_000 for o in offsets) and len(set(offsets)) > 100
    assert all(d.arrival_ms == truth[d.truth_id].timestamp_ms for d in skewed)
    assert all(d.faults == ("clock_skew",) for d in skewed)


def test_out_of_order_holds_back():
    deliveries = plan({"out_of_order": [{"source": "web", "p": 0.3, "max_delay": "5m"}]}, n=1000)
    held = [d for d in deliveries if d.faults]
    assert within(len(held), 4000, 0.3)
    assert all(
        d.faults == ("out_of_order",) and 1 <= d.arrival_ms - d.event.timestamp_ms <= 300_000 for d in held
    )
    # held events really overtake later ones of the same shopper
    overtaken = 0
    by_shopper: dict[int, list[Delivery]] = {}
    for d in deliveries:
        by_shopper.setdefault(d.event.shopper, []).append(d)
    for seq in by_shopper.values():
        stamps = [d.event.timestamp_ms for d in seq]
        overtaken += stamps != sorted(stamps)
    assert overtaken > 100


def test_never_identified_shoppers():
    deliveries = plan({"never_identified": {"p": 0.2}}, n=2000)
    tagged = {d.event.shopper for d in deliveries if "never_identified" in d.faults}
    assert within(len(tagged), 2000, 0.2)
    for d in deliveries:
        if d.event.shopper in tagged:
            assert d.faults == ("never_identified",)
            assert d.dropped == (d.event.type is CallType.IDENTIFY)
            if d.event.source is not Source.SERVER and d.event.type is not CallType.IDENTIFY:
                assert d.event.user_id is None
            else:
                assert d.event.user_id is not None
        else:
            assert d.faults == () and not d.dropped


def test_oversize_pads_past_the_limit():
    deliveries = plan({"oversize": [{"events": ["Order Completed"], "p": 1.0, "bytes": 40000}]}, n=20)
    padded = [d for d in deliveries if d.faults]
    assert len(padded) == 20
    encoder = encoder_for("pipelines")
    for d in padded:
        assert d.oversize and d.faults == ("oversize",)
        assert len(orjson.dumps(d.event.properties)) > 40000 > ITEM_LIMIT_BYTES
        assert PADDING_PROPERTY in d.event.properties
        assert encoder.encode(d.event).oversize
        (request,) = encoder.batches([d.event])
        assert request.oversize


def test_copies_inherit_payload_faults():
    faults = {
        "schema_drift": [{"p": 1.0, "rename": {"product_id": "productId"}}],
        "retry_duplicates": [{"p": 1.0}],
        "double_fires": [{"p": 1.0}],
    }
    deliveries = shopper_deliveries(scenario(**faults), life(0, T0), seed=SEED)
    cart = [d for d in deliveries if d.truth_id == life(0, T0).events[3].id]
    assert Counter(d.faults[-1] for d in cart) == Counter(
        {"schema_drift:rename:product_id>productId": 1, "retry_duplicate": 1, "double_fire": 1}
    )
    assert all("productId" in d.event.properties for d in cart)


def test_first_matching_entry_wins():
    faults = {"drops": [{"source": "server", "p": 1.0}, {"p": 0.0}]}
    deliveries = plan(faults, n=50)
    assert all(d.dropped == (d.event.source is Source.SERVER) for d in deliveries)


def test_tag_spellings_match_the_interface():
    tags = {t.split(":")[0] for d in plan(ALL_FAULTS, n=600) for t in d.faults}
    assert tags == {
        "latency",
        "retry_duplicate",
        "double_fire",
        "drop",
        "schema_drift",
        "name_drift",
        "clock_skew",
        "out_of_order",
        "never_identified",
        "oversize",
    }


# --------------------------------------------------------------------------- on a real scenario


def test_on_the_shipped_d2c_scenario():
    from generator.scenario.load import load_scenario
    from generator.scenario.model import Faults
    from generator.simulate import simulate_shoppers

    path = Path(__file__).resolve().parents[2] / "scenarios" / "d2c_cart_recovery.yaml"
    base = load_scenario(path)
    real = base.model_copy(update={"faults": Faults.model_validate(ALL_FAULTS)})
    shoppers = list(simulate_shoppers(real, seed=5, shoppers=300))
    before = orjson.dumps(shoppers)
    deliveries = list(plan_deliveries(real, shoppers, seed=5))
    assert orjson.dumps(shoppers) == before
    truth = {e.id: e for lf in shoppers for e in lf.events}
    assert {d.truth_id for d in deliveries} == set(truth)
    keys = [(d.arrival_ms, d.event.shopper) for d in deliveries]
    assert keys == sorted(keys)
    assert all(d.arrival_ms >= truth[d.truth_id].timestamp_ms for d in deliveries)
    tags = {t.split(":")[0] for d in deliveries for t in d.faults}
    assert {"latency", "retry_duplicate", "drop", "clock_skew", "out_of_order", "never_identified"} <= tags
    fewer = list(plan_deliveries(real, simulate_shoppers(real, seed=5, shoppers=120), seed=5))
    assert dump([d for d in fewer if d.event.shopper < 100]) == dump(
        [d for d in deliveries if d.event.shopper < 100]
    )


def test_altered_copies_every_field():
    from dataclasses import replace

    from generator.faults import _altered

    event = replace(life(3, T0).events[3], journey="j", state="s")
    assert _altered(event) == event
    assert _altered(event, name="x", timestamp_ms=1, user_id=None) == replace(
        event, name="x", timestamp_ms=1, user_id=None
    )
