"""MLflow review queues (open source since 3.14, ``/api/3.0/mlflow/review-queues/*``).

A queue belongs to the experiment, names its assigned users, and holds items (traces), each
PENDING, COMPLETE or DECLINED. Export lists a queue's PENDING traces; after a sync, the
traces of the rows that ended synced are marked COMPLETE with ``completed_by`` = the row's
annotator. Measured on the real 3.17.2 server (``docs/platform-notes.md``, "MLflow"):

- enum names are UPPERCASE; COMPLETE needs ``completed_by`` (no auth); setting COMPLETE
  again changes nothing; writing a Feedback does not change an item's status;
- with MLflow auth on, the server ignores the ``completed_by`` sent and records the
  logged-in user: completion is then credited to annobridge's account (the reviewer stays
  in each Feedback's source id).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

from bridge import http
from bridge.errors import ConfigError
from bridge.records import ExportQuery, ExportRecord
from bridge.targets.mlflow import ids
from bridge.targets.mlflow.client import API, MlflowClient, error_message
from bridge.targets.mlflow.export import full_traces, record_from_info, span_texts

QUEUES = f"{API}/review-queues"
PAGE = 1000
MAX_LISTED = 20  # queue names listed in an "unknown queue" message


def _names(client: MlflowClient, experiment_id: str) -> list[str]:
    def refused(response: requests.Response) -> str:
        return (
            f"MLflow at {http.redact(client.base_url)} did not list its review queues "
            f"({response.status_code} {error_message(response)}); review queues need "
            "MLflow 3.14 or later"
        )

    params = {"experiment_id": experiment_id, "max_results": 100}
    return [
        str(q.get("name"))
        for q in client.listed(f"{QUEUES}/list", params, "review_queues", refused)
    ]


def find_queue(client: MlflowClient, name: str) -> dict[str, Any]:
    """The experiment's review queue named ``name`` (names are case-insensitive).

    :raises ConfigError: no such queue (naming the queues that exist), or no queues at all.
    """
    experiment_id = client.required_experiment_id()
    response = client.call(
        "GET", f"{QUEUES}/get-by-name", params={"experiment_id": experiment_id, "name": name}
    )
    if response.status_code == 200:
        return client.member(response, "review_queue")
    known = _names(client, experiment_id)
    listed = ", ".join(known[:MAX_LISTED]) + (" …" if len(known) > MAX_LISTED else "")
    raise ConfigError(
        f"MLflow experiment '{client.experiment}' has no review queue '{name}' "
        + (f"(its queues: {listed}); " if known else "(it has no review queues); ")
        + "check --queue, or create the queue in MLflow's UI"
    )


def pending_items(client: MlflowClient, queue_id: str) -> list[str]:
    """The trace ids of the queue's PENDING items, in the queue's order."""

    def refused(response: requests.Response) -> str:
        return (
            f"MLflow did not list the review queue's items ({response.status_code} "
            f"{error_message(response)})"
        )

    params = {"queue_id": queue_id, "status": "PENDING", "max_results": PAGE}
    items = client.listed(f"{QUEUES}/items/list", params, "items", refused)
    return list(dict.fromkeys(str(i["item_id"]) for i in items if i.get("item_id")))


def queue_records(
    client: MlflowClient, id_kind: str, name: str, query: ExportQuery
) -> tuple[list[ExportRecord], list[str]]:
    """The queue's PENDING traces as export records (traces/batchGet), and its users."""
    queue = find_queue(client, name)
    experiment_id = client.required_experiment_id()
    trace_ids = pending_items(client, str(queue.get("queue_id")))
    by_id: dict[str, ExportRecord] = {}
    for trace in full_traces(client, trace_ids, "the queue's traces"):
        info = trace.get("trace_info") or {}
        full = span_texts(trace) if query.full_text else None
        record = record_from_info(client, experiment_id, id_kind, query, info, full)
        if record is not None:
            by_id[str(info.get("trace_id"))] = record
    records = [by_id[t] for t in trace_ids if t in by_id]
    return records, [str(u) for u in queue.get("users") or []]


def complete(client: MlflowClient, id_kind: str, name: str, done: Sequence[tuple[str, str]]) -> int:
    """Mark each (record id, annotator)'s item COMPLETE, completed_by the annotator; the
    first pair of a record wins. Returns how many items were marked.

    :raises ConfigError: no such queue, or MLflow refused a change (the rest is not tried).
    """
    first: dict[str, str] = {}
    for record_id, who in done:
        first.setdefault(record_id, who)
    if not first:
        return 0
    queue_id = str(find_queue(client, name).get("queue_id"))
    traces = {r: r for r in first}
    if id_kind == "client_request_id":
        found, _ = ids.by_request_id(client, list(first))
        traces = {r: str(info["trace_id"]) for r, info in found.items()}
    pending = set(pending_items(client, queue_id))
    marked = 0
    for record_id, who in first.items():
        trace_id = traces.get(record_id)
        if trace_id is None or trace_id not in pending:
            continue  # not in the queue, or already complete: nothing to change
        body = {"queue_id": queue_id, "item_id": trace_id, "status": "COMPLETE"}
        response = client.call(
            "POST", f"{QUEUES}/items/set-status", json={**body, "completed_by": who}
        )
        if response.status_code != 200:
            raise ConfigError(
                f"MLflow did not mark trace {trace_id} complete in review queue '{name}' "
                f"({response.status_code} {error_message(response)})"
            )
        marked += 1
    return marked
