"""Phoenix annotation configs as annotation rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.records import PlatformRule, finite_number


def from_phoenix_config(config: Mapping[str, Any]) -> PlatformRule:
    """A Phoenix annotation config (GET /v1/annotation_configs/{name}) as rules."""
    name = str(config.get("name", ""))
    kind = str(config.get("type", "")).upper()
    origin = f"Phoenix annotation config '{name}' ({kind})"
    if kind == "CATEGORICAL":
        labels = [str(v.get("label")) for v in config.get("values") or [] if isinstance(v, dict)]
        return PlatformRule(name, origin, {"labels": labels or None})
    if kind == "CONTINUOUS":
        return PlatformRule(
            name,
            origin,
            {
                "score_min": finite_number(config.get("lower_bound")),
                "score_max": finite_number(config.get("upper_bound")),
            },
        )
    return PlatformRule(name, origin, {})  # FREEFORM: free text, no label or score rule
