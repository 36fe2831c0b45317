"""The JSON Schema of scenario files, for editors (``shopsim schema > scenario.schema.json``).

The schema is pydantic's, for the model's validation mode, plus the shorthands the model
accepts before validation (a bare duration for a distribution, a bare probability for a
transition, ``tracking_plan: default``, ``"string?"`` property specs, filters and thresholds
written as strings), so every shipped scenario validates in an editor as it does in shopsim.
Cross-field rules (unknown states, events missing from the tracking plan, ...) cannot be
expressed in JSON Schema: ``shopsim validate`` checks those.
"""

from __future__ import annotations

import json
from typing import Any

from generator.durations import DURATION_PATTERN, MAX_DURATION_MS
from generator.scenario.model import Scenario

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:shopsim:schema:scenario"

_DURATION = {
    "anyOf": [
        {"type": "string", "pattern": DURATION_PATTERN},
        {"type": "number", "minimum": 0, "maximum": MAX_DURATION_MS // 1000},
    ],
}

_SHORTHANDS: dict[str, dict[str, Any]] = {
    "Distribution": {**_DURATION, "description": "A fixed duration: '30s' (same as {fixed: 30s})."},
    "Transition": {"type": "number", "minimum": 0, "maximum": 1, "description": "The probability alone."},
    "TrackingPlan": {"const": "default", "description": "The seed's default taxonomy."},
    "PropertySpec": {
        "type": "string",
        "pattern": r"^\s*(string|number|integer|boolean|array|object)\??\s*$",
        "description": "A type, '?' for optional: 'string', 'number?'.",
    },
    "Filter": {
        "type": "string",
        "pattern": r"^\s*[A-Za-z_][\w.]*\s*(==|!=|>=|<=|>|<|exists|in)",
        "description": "'<property> <op> <value>', e.g. 'cart_total >= 20' or 'coupon exists'.",
    },
    "Threshold": {
        "type": "string",
        "pattern": r"^\s*[a-z_0-9]+(\[[^\]]+\])?\s*(==|!=|>=|<=|>|<)\s*-?\d+(\.\d+)?\s*$",
        "description": "'<metric>[<campaign>] <op> <number>', e.g. 'trigger_recall[cart_recovery] >= 0.95'.",
    },
}


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file."""
    schema = Scenario.model_json_schema(mode="validation")
    defs: dict[str, Any] = schema.get("$defs", {})
    for name, shorthand in _SHORTHANDS.items():
        if name not in defs:  # pragma: no cover - guards a model refactor
            raise AssertionError(f"the scenario model no longer has {name}; update schema._SHORTHANDS")
        full = defs[name]
        defs[name] = {
            "title": full.get("title", name),
            "description": full.get("description", ""),
            "anyOf": [shorthand, {k: v for k, v in full.items() if k not in ("title", "description")}],
        }
    schema.pop("title", None)
    schema.pop("description", None)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "shopsim scenario",
        "description": (
            "A shopsim scenario: who arrives (population), what they browse (catalog), how they become "
            "known (identity), what they do (journeys), what the shop tracks (tracking_plan), the "
            "workspace's campaigns, injected faults and the run's thresholds (expect). Cross-field "
            "rules are checked by `shopsim validate`."
        ),
        **schema,
    }


def schema_json() -> str:
    """The schema as indented JSON text (stable key order, trailing newline)."""
    return json.dumps(scenario_schema(), indent=2, ensure_ascii=False) + "\n"
