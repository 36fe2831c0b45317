"""The exported JSON Schema accepts every valid scenario (shorthands included) and rejects bad shapes.

No jsonschema package is a dependency, so this file carries a small validator for exactly the
keywords the schema uses; a test asserts that no other keyword appears.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.scenario.schema import scenario_schema, schema_json

DATA = Path(__file__).resolve().parents[1] / "data" / "scenarios"
ROOT = Path(__file__).resolve().parents[2]
VALID = [DATA / "minimal.yaml", DATA / "full.yaml", *sorted((ROOT / "scenarios").glob("*.yaml"))]

SUPPORTED = {
    "$schema", "$id", "$defs", "$ref", "title", "description", "default", "format",
    "type", "enum", "const", "anyOf", "properties", "required", "additionalProperties", "propertyNames",
    "items", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
    "pattern",
}  # fmt: skip


def _keywords(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            out.add(key)
            if key in ("properties", "$defs"):
                for child in value.values():
                    _keywords(child, out)
            elif key not in ("default", "const", "enum"):
                _keywords(value, out)
    elif isinstance(node, list):
        for child in node:
            _keywords(child, out)
    return out


def _errors(instance: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$") -> list[str]:
    """Violations of ``schema`` by ``instance`` (a JSON value); empty when valid."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return _errors(instance, root["$defs"][name], root, path)
    if "anyOf" in schema:
        branches = [_errors(instance, branch, root, path) for branch in schema["anyOf"]]
        if all(branches):
            return [f"{path}: no branch of anyOf matches ({'; '.join(b[0] for b in branches)})"]
    errors: list[str] = []
    kind = schema.get("type")
    types = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "null": type(None),
        "integer": int,
        "number": (int, float),
    }
    if kind is not None:
        ok = isinstance(instance, types[kind]) and not (
            kind in ("integer", "number") and isinstance(instance, bool)
        )
        if kind == "integer" and isinstance(instance, float) and instance.is_integer():
            ok = True
        if not ok:
            return [f"{path}: expected {kind}, got {instance!r}"]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{path}: {instance!r} not in {schema['enum']}")
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{path}: {instance!r} != {schema['const']!r}")
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        for key, check in (
            ("minimum", lambda v, b: v >= b),
            ("maximum", lambda v, b: v <= b),
            ("exclusiveMinimum", lambda v, b: v > b),
            ("exclusiveMaximum", lambda v, b: v < b),
        ):
            if key in schema and not check(instance, schema[key]):
                errors.append(f"{path}: {instance} violates {key} {schema[key]}")
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0) or len(instance) > schema.get("maxLength", 10**9):
            errors.append(f"{path}: length of {instance!r}")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errors.append(f"{path}: {instance!r} does not match {schema['pattern']}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            errors += _errors(item, schema["items"], root, f"{path}[{i}]")
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in instance:
                errors.append(f"{path}: missing {name}")
        for key, value in instance.items():
            if "propertyNames" in schema:
                errors += _errors(key, schema["propertyNames"], root, f"{path}.<key {key}>")
            if key in props:
                errors += _errors(value, props[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: additional property {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += _errors(value, schema["additionalProperties"], root, f"{path}.{key}")
    return errors


def _as_json(path: Path) -> Any:
    """The YAML as an editor's YAML language server sees it: timestamps are strings."""

    def default(value: Any) -> str:
        if isinstance(value, datetime | date):
            return value.isoformat().replace("+00:00", "Z")
        raise TypeError(value)

    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=default))


SCHEMA = scenario_schema()


def test_schema_round_trips_as_json():
    assert json.loads(schema_json()) == SCHEMA
    assert schema_json().endswith("}\n")


def test_schema_uses_only_keywords_the_test_validator_understands():
    assert _keywords(SCHEMA, set()) <= SUPPORTED


def test_key_facts():
    assert SCHEMA["additionalProperties"] is False
    defs = SCHEMA["$defs"]
    assert {"Journey", "State", "Call", "Campaign", "Faults", "TrackingPlan"} <= set(defs)
    assert set(SCHEMA["properties"]) >= {
        "name",
        "seed",
        "start",
        "population",
        "journeys",
        "campaigns",
        "expect",
    }
    # shorthands are accepted: a bare duration, a bare probability, "default", "string?"
    assert _errors("30s", defs["Distribution"], SCHEMA) == []
    assert _errors(0.4, defs["Transition"], SCHEMA) == []
    assert _errors("default", defs["TrackingPlan"], SCHEMA) == []
    assert _errors("string?", defs["PropertySpec"], SCHEMA) == []
    assert _errors("cart_total >= 20", defs["Filter"], SCHEMA) == []
    assert _errors("trigger_recall[cart_recovery] >= 0.95", defs["Threshold"], SCHEMA) == []


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_scenarios_conform(path):
    assert _errors(_as_json(path), SCHEMA, SCHEMA) == []


def test_bad_shapes_do_not_conform():
    data = _as_json(DATA / "minimal.yaml")
    data["journeys"]["browse"]["states"]["landing"]["nxet"] = {}
    assert any("additional property 'nxet'" in e for e in _errors(data, SCHEMA, SCHEMA))
    data = _as_json(DATA / "minimal.yaml")
    data["journeys"]["browse"]["states"]["product"]["next"]["cart"] = 1.5
    assert _errors(data, SCHEMA, SCHEMA)
    data = _as_json(DATA / "minimal.yaml")
    del data["population"]
    assert "$: missing population" in _errors(data, SCHEMA, SCHEMA)
