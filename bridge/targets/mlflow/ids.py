"""Which MLflow trace each row is about: rows by ``client_request_id`` are resolved in bulk
(``traces/search`` with ``IN (...)``, within the experiment); trace ids are used as given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.records import Annotation
from bridge.targets.base import chunks
from bridge.targets.mlflow.client import API, IDS_PER_LOOKUP, SEARCH_PAGE, MlflowClient

MAX_LISTED = 5  # trace ids listed in an "ambiguous request id" message


def resolve(
    client: MlflowClient, id_kind: str, annotations: Sequence[Annotation]
) -> tuple[dict[str, dict[str, Any]], dict[int, str]]:
    """Trace info (with its assessments) per request id in the sheet, and rows that have
    none. Trace ids are not looked up: a write to an unknown trace answers 404."""
    if id_kind != "client_request_id":
        return {}, {}
    ids = list(dict.fromkeys(a.target_id for a in annotations))
    found, problems = by_request_id(client, ids)
    refused = {
        i: problems[a.target_id] for i, a in enumerate(annotations) if a.target_id in problems
    }
    return found, refused


def _quote(text: str) -> str:
    """A string literal of MLflow's search filter grammar."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def by_request_id(
    client: MlflowClient, ids: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Resolve client_request_ids in bulk (``IN (...)``), within the experiment."""
    experiment_id = client.experiment_id()
    matches: dict[str, list[dict[str, Any]]] = {rid: [] for rid in ids}
    for part in chunks(ids, IDS_PER_LOOKUP):
        body: dict[str, Any] = {
            "locations": [
                {
                    "type": "MLFLOW_EXPERIMENT",
                    "mlflow_experiment": {"experiment_id": experiment_id},
                }
            ],
            "filter": "attributes.client_request_id IN ("
            + ", ".join(_quote(r) for r in part)
            + ")",
            "max_results": SEARCH_PAGE,
        }
        for infos in client.trace_pages(body, "annobridge needs the trace API of MLflow 3"):
            for info in infos:
                rid = info.get("client_request_id")
                if rid in matches:
                    matches[rid].append(info)
    found: dict[str, dict[str, Any]] = {}
    problems: dict[str, str] = {}
    for rid, infos in matches.items():
        if len(infos) == 1:
            found[rid] = infos[0]
        elif not infos:
            problems[rid] = (
                f"no trace with request id '{rid}' in experiment '{client.experiment}'; check "
                "the id (a trace can take a moment to be logged; the row is retried next run)"
            )
        else:
            listed = ", ".join(sorted(i["trace_id"] for i in infos)[:MAX_LISTED])
            more = f" and {len(infos) - MAX_LISTED} more" if len(infos) > MAX_LISTED else ""
            problems[rid] = (
                f"request id '{rid}' matches {len(infos)} traces in experiment "
                f"'{client.experiment}' ({listed}{more}); label them by trace id instead "
                "(id_kind: trace_id)"
            )
    return found, problems


def trace_infos(client: MlflowClient, trace_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The trace infos (with their assessments) of these trace ids, in bulk
    (``traces/batchGetInfos``); a chunk MLflow refuses gives none."""
    infos: list[dict[str, Any]] = []
    for part in chunks(list(trace_ids), IDS_PER_LOOKUP):
        response = client.call("POST", f"{API}/traces/batchGetInfos", json={"trace_ids": part})
        if response.status_code == 200:
            infos.extend(client.items(response, "trace_infos")[0])
    return infos
