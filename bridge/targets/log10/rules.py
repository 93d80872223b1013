"""log10 feedback tasks' JSON schemas as annotation rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.records import PlatformRule, finite_number


def from_json_schema(
    name: str, task_id: str, schema: Mapping[str, Any], json_values: Mapping[str, str]
) -> PlatformRule:
    """A log10 feedback task's JSON schema as rules, through the mapping's json_values."""
    found = schema.get("properties")
    props: Mapping[str, Any] = found if isinstance(found, dict) else {}
    values: dict[str, Any] = {}
    for task_field, source in json_values.items():
        prop = props.get(task_field)
        if not isinstance(prop, dict):
            continue
        if source == "label" and isinstance(prop.get("enum"), list):
            values["labels"] = [str(v) for v in prop["enum"]] or None
        if source == "score" and prop.get("type") in ("number", "integer"):
            values["score_min"] = finite_number(prop.get("minimum"))
            values["score_max"] = finite_number(prop.get("maximum"))
    return PlatformRule(name, f"log10 feedback task '{task_id}' (JSON schema)", values)
