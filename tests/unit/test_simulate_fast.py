"""The walker's hand-built records equal what the dataclass constructors build."""

import dataclasses

from generator.events import Event, Person, ShopperLife
from generator.scenario import load_scenario
from generator.simulate import simulate_shoppers
from generator.simulate.journey import _EVENT_FIELDS, _LIFE_FIELDS, _PERSON_FIELDS, fast_ulid


def _rebuilt(obj):
    return type(obj)(**{f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})


def test_the_slot_lists_name_every_field_in_order():
    assert tuple(f.name for f in dataclasses.fields(Event)) == _EVENT_FIELDS
    assert tuple(f.name for f in dataclasses.fields(Person)) == _PERSON_FIELDS
    assert tuple(f.name for f in dataclasses.fields(ShopperLife)) == _LIFE_FIELDS


def test_walked_lives_equal_constructor_built_ones():
    scenario = load_scenario("scenarios/d2c_cart_recovery.yaml")
    for life in simulate_shoppers(scenario, seed=3, shoppers=200):
        assert _rebuilt(life.person) == life.person
        assert _rebuilt(life) == life
        for event in life.events:
            assert _rebuilt(event) == event
            # the inlined id encoder is fast_ulid of the event time
            assert event.id[:10] == fast_ulid(event.timestamp_ms, 0)[:10]
