"""Phoenix annotation configs as annotation rules."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.errors import ConfigError, UnexpectedAnswer
from bridge.http import unexpected_shape
from bridge.records import PlatformRule, finite_number
from bridge.targets.phoenix.client import NOT_THE_API, PLATFORM, PhoenixClient, detail


def fetch_rules(client: PhoenixClient, names: Sequence[str]) -> dict[str, PlatformRule]:
    """The rules of the Phoenix annotation configs with these names (absent: no config)."""
    found: dict[str, PlatformRule] = {}
    for name in names:
        response = client.call("GET", f"/v1/annotation_configs/{urllib.parse.quote(name, safe='')}")
        if response.status_code == 404:
            continue
        if response.status_code != 200:
            raise ConfigError(
                f"Phoenix did not return the annotation config '{name}' "
                f"({response.status_code}: {detail(response.text)})"
            )
        config = client.json_object(response).get("data") or {}
        if not isinstance(config, dict):
            shape = "an annotation config that is not an object where one"
            raise UnexpectedAnswer(unexpected_shape(response, PLATFORM, shape, NOT_THE_API))
        found[name] = from_phoenix_config(config)
    return found


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
