"""MLflow label schemas as annotation rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.records import PlatformRule, finite_number


def from_mlflow_schema(schema: Mapping[str, Any]) -> PlatformRule:
    """An MLflow label schema (label-schemas/list) as rules."""
    name = str(schema.get("name", ""))
    given = schema.get("input") or {}
    if "pass_fail" in given:
        spec = given["pass_fail"] or {}
        labels = [spec.get("positive_label"), spec.get("negative_label")]
        return PlatformRule(
            name,
            f"MLflow label schema '{name}' (pass_fail)",
            {"labels": [str(x) for x in labels if x] or None},
        )
    for kind in ("categorical", "categorical_list"):
        if kind in given:
            options = [str(o) for o in (given[kind] or {}).get("options") or []]
            return PlatformRule(
                name, f"MLflow label schema '{name}' ({kind})", {"labels": options or None}
            )
    if "numeric" in given:
        spec = given["numeric"] or {}
        return PlatformRule(
            name,
            f"MLflow label schema '{name}' (numeric)",
            {
                "score_min": finite_number(spec.get("min_value")),
                "score_max": finite_number(spec.get("max_value")),
            },
        )
    kind = next(iter(given), "text")
    return PlatformRule(name, f"MLflow label schema '{name}' ({kind})", {})
