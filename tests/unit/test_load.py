"""The scenario loader: every error class with its message and exact file:line:column.

Each ``tests/data/scenarios/invalid_*.yaml`` ends with the problems it must produce, one per
comment line ``# expect: LINE:COL | key.path | text``, where ``text`` must appear in the
rendered message (with its hint). The file must produce exactly those problems, in order.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.errors import Problem, ScenarioError
from generator.scenario import Scenario, load_scenario
from generator.scenario.load import COMMAND_LINE, load_scenario_text

DATA = Path(__file__).resolve().parents[1] / "data" / "scenarios"
ROOT = Path(__file__).resolve().parents[2]
INVALID = sorted(DATA.glob("invalid_*.yaml"))
_EXPECT = re.compile(r"^# expect: (\d+):(\d+) \| ([^|]*?) ?\| (.+)$")


def problems_of(path: Path | str, **kwargs) -> list[Problem]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, **kwargs)
    return caught.value.problems


def problems_in(text: str, **kwargs) -> list[Problem]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(text, file="x.yaml", **kwargs)
    return caught.value.problems


def text_of(problem: Problem) -> str:
    return problem.message + (f" ({problem.hint})" if problem.hint else "")


MINIMAL = (DATA / "minimal.yaml").read_text()


def test_there_are_invalid_files_for_every_error_class():
    assert len(INVALID) >= 20


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_file_reports_exactly_its_expected_problems(path: Path):
    expected = [_EXPECT.match(line) for line in path.read_text().splitlines() if line.startswith("# expect:")]
    assert expected and all(expected), f"{path.name}: malformed '# expect:' lines"
    problems = problems_of(path)
    assert len(problems) == len(expected), "\n".join(p.render() for p in problems)
    for problem, want in zip(problems, expected, strict=True):
        assert want is not None
        line, column, key, text = int(want[1]), int(want[2]), want[3].strip(), want[4]
        assert problem.file == str(path)
        assert (problem.line, problem.column) == (line, column), problem.render()
        assert problem.path == key, problem.render()
        assert text in text_of(problem), problem.render()


def test_valid_data_scenarios_load():
    for name in ("minimal", "full"):
        scenario = load_scenario(DATA / f"{name}.yaml")
        assert isinstance(scenario, Scenario)
        assert scenario.name == name


SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.mark.skipif(not SHIPPED, reason="no shipped scenarios yet")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenarios_validate(path: Path):
    scenario = load_scenario(path)
    assert scenario.journeys


# --------------------------------------------------------------------------- rendering


def test_render_is_one_block_with_count_and_locations():
    text = MINIMAL.replace("next: {product: 0.6}", "next: {product: 0.6, cart: 0.5}").replace(
        "track: Added to Cart", "track: Added to Crt"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(text, file="scenarios/x.yaml")
    rendered = str(caught.value)
    lines = rendered.splitlines()
    assert lines[0] == "invalid scenario (2 problems):"
    assert lines[1] == (
        "  scenarios/x.yaml:15:9: journeys.browse.states.landing.next: "
        "transition probabilities sum to 1.1 (> 1): product 0.6 + cart 0.5"
    )
    assert lines[2].startswith("  scenarios/x.yaml:21:")
    assert (
        "tracked event 'Added to Crt' is not in the tracking plan (did you mean 'Added to Cart'?)" in lines[2]
    )


def test_all_problems_at_once_sorted_by_line():
    text = (
        MINIMAL.replace("seed: 7", "seed: -7")
        .replace("{page: home}", "{page: hom}")
        .replace("next: {cart: 0.3}", "next: {kart: 0.3}")
        .replace("identify: newsletter_popup", "identify: popup")
    )
    problems = problems_in(text)
    assert [p.line for p in problems] == sorted(p.line for p in problems)
    paths = [p.path for p in problems]
    assert paths == [
        "seed",
        "journeys.browse.states.landing.emit[0].page",
        "journeys.browse.states.product.next.kart",
        "journeys.browse.states.cart.emit[1].identify",
    ]
    assert "did you mean 'cart'?" in problems[2].hint


def test_did_you_mean_for_a_misspelt_state_key_and_event():
    text = MINIMAL.replace("start: landing", "start: lnding").replace("repeat:", "repaet:")
    text = text.replace("track: Product Viewed", "track: product viewed")
    by_path = {p.path: p for p in problems_in(text)}
    assert by_path["journeys.browse.start"].hint == "did you mean 'landing'?"
    assert by_path["journeys.browse.states.product.repaet"].hint == "did you mean 'repeat'?"
    assert by_path["journeys.browse.states.product.emit[1].track"].hint == "did you mean 'Product Viewed'?"


def test_unknown_key_without_a_close_match_lists_the_allowed_keys():
    problems = problems_in(MINIMAL.replace("seed: 7", "zzzzqq: 7"))
    assert problems[0].message == "unknown key 'zzzzqq'"
    assert problems[0].hint.startswith("allowed keys: 'name', 'description', 'seed'")


def test_leave_is_not_a_state():
    problems = problems_in(MINIMAL.replace("next: {product: 0.6}", "next: {product: 0.6, leave: 0.4}"))
    assert len(problems) == 1
    assert problems[0].message == "transition to unknown state 'leave'"
    assert "remainder" in problems[0].hint


def test_misspelt_transition_does_not_also_report_its_target_unreachable():
    problems = problems_in(MINIMAL.replace("next: {cart: 0.3}", "next: {crt: 0.3}"))
    assert [p.message for p in problems] == ["transition to unknown state 'crt'"]


def test_sum_is_reported_even_when_the_state_has_other_errors():
    text = MINIMAL.replace("next: {product: 0.6}", "next: {product: 0.6, cart: 0.6}").replace(
        "{page: home}", "{page: hom}"
    )
    messages = [p.message for p in problems_in(text)]
    assert any(m.startswith("transition probabilities sum to 1.2 (> 1)") for m in messages)
    assert len(messages) == 2


def test_probability_out_of_range_is_located_at_the_value():
    problems = problems_in(MINIMAL.replace("next: {cart: 0.3}", "next: {cart: 1.5}"))
    assert [(p.path, p.message) for p in problems] == [
        ("journeys.browse.states.product.next.cart", "must be at most 1, got 1.5")
    ]
    assert (problems[0].line, problems[0].column) == (19, 22)


def test_identify_point_defaults_apply_when_identity_is_omitted():
    # minimal.yaml has no identity section: the default points include newsletter_popup.
    assert load_scenario(DATA / "minimal.yaml").identity.points["newsletter_popup"] == 0.08


def test_own_tracking_plan_event_can_be_tracked():
    text = MINIMAL.replace("track: Added to Cart", "track: Wishlist Added") + (
        "tracking_plan:\n  events:\n    Wishlist Added: {properties: {product_id: string}}\n"
    )
    scenario = load_scenario_text(text)
    assert "Wishlist Added" in scenario.tracking_plan.all_events


def test_extends_none_empties_the_plan():
    text = MINIMAL + "tracking_plan: {extends: none}\n"
    problems = problems_in(text)
    assert {p.message for p in problems} == {
        "tracked event 'Product Viewed' is not in the tracking plan",
        "tracked event 'Added to Cart' is not in the tracking plan",
    }


def test_default_events_may_not_be_misspelt_in_plan_keys_but_own_events_need_fillable_properties():
    text = MINIMAL + "tracking_plan:\n  page: {gclid: string}\n"
    problems = problems_in(text)
    assert problems[0].path == "tracking_plan.page.gclid"
    assert "cannot fill" in problems[0].message


def test_new_shoppers_need_a_journey():
    text = MINIMAL.replace("  browse:\n", "  browse:\n    audience: returning\n").replace(
        "returning_share: 0", "returning_share: 0.5"
    )
    problems = problems_in(text)
    assert len(problems) == 1
    assert problems[0].message.startswith("50% of shoppers are new but no journey")


def test_zero_weight_journeys_do_not_count_for_an_audience():
    text = MINIMAL.replace("  browse:\n", "  browse:\n    weight: 0\n")
    problems = problems_in(text)
    assert problems[0].message.startswith("100% of shoppers are new but no journey")


# --------------------------------------------------------------------------- YAML-level problems


def test_file_not_found(tmp_path):
    missing = tmp_path / "nope.yaml"
    problems = problems_of(missing)
    assert problems == [Problem(str(missing), 0, 0, "", "no such file")]
    assert problems[0].render() == f"{missing}: no such file"


def test_directory_and_binary_files(tmp_path):
    assert problems_of(tmp_path)[0].message == "is a directory, not a scenario file"
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"name: x\n\xff\xfe\x00junk")
    problem = problems_of(binary)[0]
    assert (problem.line, problem.column) == (2, 1)
    assert "not UTF-8" in problem.message


def test_unreadable_control_character():
    problem = problems_in("name: a\nseed: \x07\n")[0]
    assert (problem.line, problem.column) == (2, 7)
    assert problem.message.startswith("cannot read the file")


def test_duplicate_keys_anywhere_are_errors_but_merge_keys_may_override():
    problems = problems_in(
        MINIMAL.replace("  returning_share: 0\n", "  returning_share: 0\n  returning_share: 0\n")
    )
    assert [(p.line, p.path) for p in problems] == [(9, "population.returning_share")]
    merged = MINIMAL.replace(
        "population:\n  arrivals: {rate_per_hour: 60}\n",
        "base: &base {rate_per_hour: 10}\npopulation:\n  arrivals: {<<: *base, rate_per_hour: 60}\n",
    )
    problems = problems_in(merged)
    assert [p.message for p in problems] == ["unknown key 'base'"]


def test_keys_are_names_as_written():
    # `on` and `404` are a boolean and an int in YAML 1.1; as state names they stay strings.
    text = MINIMAL.replace("next: {cart: 0.3}", "next: {on: 0.3}").replace("      cart:\n", "      on:\n")
    scenario = load_scenario_text(text)
    assert "on" in scenario.journeys["browse"].states


def test_alias_bomb_and_recursion_are_refused():
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for i in range(1, 8):
        name, previous = chr(97 + i), chr(96 + i)
        bomb += f"{name}: &{name} [{', '.join([f'*{previous}'] * 6)}]\n"
    assert "expands to more than" in problems_in(bomb)[0].message
    recursive = problems_in("name: &n [*n]\n")
    assert any("recursive" in p.message for p in recursive)


def test_non_finite_numbers_and_unknown_tags():
    problems = problems_in(MINIMAL.replace("rate_per_hour: 60", "rate_per_hour: .nan"))
    assert [p.message for p in problems] == ["expected a finite number, got '.nan'"]
    problems = problems_in(MINIMAL.replace("seed: 7", "seed: !python/object 7"))
    assert problems[0].path == "seed" and "cannot read this value" in problems[0].message


def test_multiple_documents_are_a_syntax_error():
    problem = problems_in("name: a\n---\nname: b\n")[0]
    assert problem.line == 2
    assert "expected a single document" in problem.message


# --------------------------------------------------------------------------- overrides


def test_overrides_replace_and_are_validated():
    scenario = load_scenario(
        DATA / "minimal.yaml", overrides={"seed": 99, "shoppers": 5, "population.returning_share": 0}
    )
    assert (scenario.seed, scenario.shoppers) == (99, 5)
    assert load_scenario(DATA / "minimal.yaml", overrides={"seed": None}).seed == 7
    problems = problems_of(DATA / "minimal.yaml", overrides={"shoppers": 0})
    assert [p.render() for p in problems] == [f"{COMMAND_LINE}: shoppers: must be at least 1, got 0"]


def test_override_into_a_scalar_is_a_problem():
    problems = problems_of(DATA / "minimal.yaml", overrides={"name.x": 1})
    assert problems[0].file == COMMAND_LINE
    assert "'name' is not a mapping" in problems[0].message


# --------------------------------------------------------------------------- never anything but ScenarioError

_VALID = yaml.safe_load((DATA / "full.yaml").read_text())


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*prefix, i))


ALL_PATHS = [p for p in _paths(_VALID) if p]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _mutate(data, path, how, value, data_draw):
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "drop":
        del parent[last]
    elif how == "value":
        parent[last] = value
    elif how == "misspell" and isinstance(last, str):
        i = data_draw % (len(last) + 1)
        parent[last[:i] + "x" + last[i + 1 :]] = parent.pop(last)
    elif how == "misspell_value" and isinstance(parent[last], str):
        text = parent[last]
        i = data_draw % (len(text) + 1)
        parent[last] = text[:i] + text[i + 1 :]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutations=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(ALL_PATHS) - 1),
            st.sampled_from(["drop", "value", "misspell", "misspell_value"]),
            _values,
            st.integers(min_value=0, max_value=1000),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_mutations_give_a_scenario_or_located_problems(mutations):
    import copy

    data = copy.deepcopy(_VALID)
    for index, how, value, offset in mutations:
        path = ALL_PATHS[index]
        try:
            _mutate(data, path, how, value, offset)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    text = yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)
    try:
        result = load_scenario_text(text, file="m.yaml")
    except ScenarioError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.column >= 1, problem.render()
            assert problem.message
            assert problem.file == "m.yaml"
        return
    assert isinstance(result, Scenario)


def test_model_level_errors_point_at_the_key_they_are_about():
    problems = problems_in(MINIMAL.split("journeys:")[0] + "journeys: {}\n")
    assert [(p.line, p.path, p.message) for p in problems] == [
        (9, "journeys", "a scenario needs at least one journey")
    ]
    text = MINIMAL.replace(
        "next: {cart: 0.3}", "next: {cart: 0.3}\n        think: {lognormal: {median: 0s, sigma: 1}}"
    )
    problems = problems_in(text)
    assert [(p.path, p.message) for p in problems] == [
        ("journeys.browse.states.product.think.lognormal.median", "lognormal 'median' must be positive")
    ]


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(":-[]{}&*!|>'\"#%@`,? \n\tabc01.")), max_size=80))
def test_arbitrary_text_gives_only_located_problems(text):
    try:
        load_scenario_text(text, file="t.yaml")
    except ScenarioError as exc:
        assert all(p.line >= 1 and p.column >= 1 for p in exc.problems), exc.render()
    else:  # pragma: no cover - no such short text is a whole valid scenario
        raise AssertionError("random text validated")


def test_yaml_booleans_and_numbers_where_text_is_expected_get_a_quoting_hint():
    text = MINIMAL.replace("name: minimal", "name: 2026").replace("{track: Added to Cart}", "{track: yes}")
    by_path = {p.path: p for p in problems_in(text)}
    assert by_path["name"].message == "expected a string, got 2026"
    assert by_path["name"].hint == "put it in quotes: '2026'"
    call = by_path["journeys.browse.states.cart.emit[0].track"]
    assert call.message == "expected a string, got true"
    assert "booleans" in call.hint


# --------------------------------------------------------------------------- bounds: what validates also runs


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ("2026-11-02T00:00:00+25:00", "the UTC offset must be less than 24 hours"),
        ("2026-02-30T00:00:00Z", "day is out of range for month"),
        ("0001-01-01T00:00:00Z", "must be in the years 2000–2099, got 0001-01-01T00:00:00Z"),
        ("2100-01-01T00:00:00Z", "must be in the years 2000–2099"),
        ("1e9", "expected an ISO-8601 date-time"),
        ("2026-11-02", "start needs a time and a time zone, e.g. 2026-11-02T00:00:00Z"),
    ],
)
def test_start_is_a_date_time_in_a_sane_range(start: str, message: str):
    problems = problems_in(MINIMAL.replace("start: 2026-11-02T00:00:00Z", f"start: {start}"))
    assert [(p.line, p.column, p.path) for p in problems] == [(4, 8, "start")]
    assert message in problems[0].message


def test_start_at_the_bounds_and_as_quoted_text_is_valid():
    for start in ("2000-01-01T00:00:00Z", "2099-12-31T23:59:59Z", "'2026-11-02T00:00:00Z'"):
        load_scenario_text(MINIMAL.replace("start: 2026-11-02T00:00:00Z", f"start: {start}"))


def test_duration_is_at_most_3660_days_and_bounds_the_expected_shoppers():
    problems = problems_in(MINIMAL.replace("shoppers: 100", "shoppers: 800\nduration: 999999999d"))
    assert [p.render() for p in problems] == [
        "x.yaml:6:11: duration: a duration must be at most 3660d (about ten years), got 999999999d"
    ]
    load_scenario_text(MINIMAL.replace("shoppers: 100", "duration: 3660d"))
    busy = MINIMAL.replace("shoppers: 100", "duration: 3660d")
    problems = problems_in(busy.replace("rate_per_hour: 60", "rate_per_hour: 1e5"))
    assert [(p.path, p.line) for p in problems] == [("duration", 5)]
    assert problems[0].message.startswith("too long for the arrival rate: about 8,784,000,000 shoppers")


def test_override_of_shoppers_is_checked_against_the_arrival_rate():
    slow = {"shoppers": 100_000_000, "population.arrivals.rate_per_hour": 1}
    problems = problems_of(DATA / "minimal.yaml", overrides=slow)
    assert [(p.file, p.path) for p in problems] == [(COMMAND_LINE, "shoppers")]
    assert "too many shoppers to arrive within 1,000 years: at 1/h" in problems[0].message


def test_numbers_are_finite_and_not_booleans_everywhere():
    for old, new, path in [
        ("returning_share: 0", "returning_share: .nan", "population.returning_share"),
        ("returning_share: 0", "returning_share: false", "population.returning_share"),
        ("rate_per_hour: 60", "rate_per_hour: 1e400", "population.arrivals.rate_per_hour"),
        ("max: 3}", "max: true}", "journeys.browse.states.product.repeat.max"),
    ]:
        problems = problems_in(MINIMAL.replace(old, new))
        assert [p.path for p in problems] == [path], new
