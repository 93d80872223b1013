"""MLflow label schemas: read from the experiment, and as annotation rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import requests

from bridge.errors import ConfigError
from bridge.records import PlatformRule, finite_number
from bridge.targets.mlflow.client import API, MlflowClient, error_message


def label_schemas(client: MlflowClient) -> list[dict[str, Any]]:
    """The experiment's label schemas (REST ``label-schemas/list``, every page)."""
    if not client.experiment:
        raise ConfigError(
            "reading MLflow label schemas needs the experiment: set target.experiment "
            "(its name or id) or MLFLOW_EXPERIMENT_NAME"
        )
    experiment_id = client.experiment_id()

    def refused(response: requests.Response) -> str:
        return (
            f"cannot read the label schemas of experiment '{client.experiment}' "
            f"({response.status_code} {error_message(response)}); this needs MLflow "
            "3.14 or later, or set label_schemas: false"
        )

    params = {"experiment_id": experiment_id, "max_results": 100}
    return list(client.listed(f"{API}/label-schemas/list", params, "label_schemas", refused))


def fetch_rules(client: MlflowClient, names: Sequence[str]) -> dict[str, PlatformRule]:
    """The rules of the experiment's label schemas with these names."""
    client.required_experiment_id()  # says what to set when there is no experiment
    return {
        str(schema["name"]): from_mlflow_schema(schema)
        for schema in label_schemas(client)
        if schema.get("name") in names
    }


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
