"""Links to MLflow traces: the experiment's trace list with the trace opened, the link export
writes (``export.py``) and the Disagreements tab gets where the sheet has none."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.targets.mlflow.client import MlflowClient
from bridge.targets.mlflow.ids import by_request_id, trace_infos


def trace_url(base_url: str, experiment_id: str, trace_id: str) -> str:
    """A trace in MLflow's web app: the experiment's traces, with this one opened."""
    return (
        f"{base_url}/#/experiments/{urllib.parse.quote(experiment_id, safe='')}/traces"
        f"?selectedEvaluationId={urllib.parse.quote(trace_id, safe='')}"
    )


def _experiment_of(info: Mapping[str, Any]) -> str | None:
    """The experiment a trace is in, from its info's ``trace_location``."""
    location = info.get("trace_location") or {}
    found = (location.get("mlflow_experiment") or {}).get("experiment_id")
    return str(found) if found else None


def record_links(client: MlflowClient, id_kind: str, record_ids: Sequence[str]) -> dict[str, str]:
    """By the sheet's record id, its trace's link: trace ids as given in the configured
    experiment; request ids resolved in bulk (an id with no single trace gets none); without
    an experiment configured, each trace's own, from its info (a trace not found gets none).

    :raises BridgeError: MLflow unreachable, the experiment unknown.
    """
    ids = [r for r in dict.fromkeys(record_ids) if r]
    if not ids:
        return {}
    experiment_id = client.experiment_id()
    if id_kind == "client_request_id":
        found, _ = by_request_id(client, ids)
        traces = {
            rid: (str(info.get("trace_id") or ""), experiment_id or _experiment_of(info))
            for rid, info in found.items()
        }
    elif experiment_id is not None:
        traces = {rid: (rid, experiment_id) for rid in ids}
    else:
        traces = {
            str(info.get("trace_id")): (str(info.get("trace_id")), _experiment_of(info))
            for info in trace_infos(client, ids)
        }
    return {
        rid: trace_url(client.base_url, experiment, trace_id)
        for rid, (trace_id, experiment) in traces.items()
        if trace_id and experiment
    }
