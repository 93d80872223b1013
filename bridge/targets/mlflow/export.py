"""MLflow records for export: the experiment's traces, page by page, with their request and
response (previews, or the root span's full text), and the assessments they already hold."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bridge.errors import ConfigError
from bridge.records import ExportQuery, ExportRecord
from bridge.targets.base import chunks
from bridge.targets.mlflow.client import (
    API,
    IDS_PER_LOOKUP,
    SEARCH_PAGE,
    MlflowClient,
    error_message,
)
from bridge.targets.mlflow.links import trace_url
from bridge.targets.mlflow.values import SOURCE_TYPES

_log = logging.getLogger(__name__)


def export_records(
    client: MlflowClient, id_kind: str, query: ExportQuery
) -> Iterator[ExportRecord]:
    """The experiment's traces, oldest first, page by page (traces/search), with the
    request and response previews (or, with ``full_text``, the root span's full inputs
    and outputs from traces/batchGet). Each record carries the names of ``query.names``
    it already holds as valid assessments of the query's annotator kinds. With
    ``id_kind: client_request_id`` the id is the request id; traces without one are
    left out (and said so in the log).

    :raises ConfigError: no experiment, or a filter MLflow refuses.
    """
    experiment_id = client.required_experiment_id()
    clauses: list[str] = []
    if query.since is not None:
        clauses.append(f"attributes.timestamp_ms >= {int(query.since.timestamp() * 1000)}")
    if query.until is not None:
        clauses.append(f"attributes.timestamp_ms < {int(query.until.timestamp() * 1000)}")
    clauses.extend(f.strip() for f in query.filters if f.strip())
    body: dict[str, Any] = {
        "locations": [
            {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}
        ],
        "max_results": max(1, min(query.page_size, SEARCH_PAGE)),
        "order_by": ["timestamp_ms ASC"],
    }
    if clauses:
        body["filter"] = " AND ".join(clauses)
    without_id = 0
    pages = client.trace_pages(
        body, "a --filter is an MLflow search expression, e.g. --filter \"tags.env = 'prod'\""
    )
    for infos in pages:
        full = (
            _full_texts(client, [str(i.get("trace_id")) for i in infos]) if query.full_text else {}
        )
        for info in infos:
            record = record_from_info(
                client, experiment_id, id_kind, query, info, full.get(str(info.get("trace_id")))
            )
            if record is None:
                without_id += 1
                continue
            yield record
        if not infos:
            break
    if without_id:
        _log.warning(
            "%d traces have no client_request_id and were not exported (id_kind: "
            "client_request_id)",
            without_id,
        )


def record_from_info(
    client: MlflowClient,
    experiment_id: str,
    id_kind: str,
    query: ExportQuery,
    info: Mapping[str, Any],
    full: tuple[str | None, str | None] | None = None,
) -> ExportRecord | None:
    """One trace (its trace info) as an export record: with ``full`` (the root span's
    inputs and outputs) or the previews; None when ``id_kind: client_request_id`` and the
    trace has no request id."""
    trace_id = str(info.get("trace_id") or "")
    by_request_id = id_kind == "client_request_id"
    rid = str(info.get("client_request_id") or "") if by_request_id else trace_id
    if not rid:
        return None
    sources = {SOURCE_TYPES.get(k, k) for k in query.annotator_kinds}
    held = {
        str(a.get("assessment_name"))
        for a in info.get("assessments") or []
        if a.get("valid", True) is not False
        and (a.get("source") or {}).get("source_type") in sources
        and a.get("assessment_name") in query.names
    }
    request, answer = full or (
        _preview(info.get("request_preview")),
        _preview(info.get("response_preview")),
    )
    return ExportRecord(
        record_id=rid,
        input=request,
        output=answer,
        start_time=_export_time(info.get("request_time")),
        url=trace_url(client.base_url, experiment_id, trace_id),
        annotated=frozenset(held),
    )


def span_texts(trace: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """A trace's (traces/batchGet) root span full inputs and outputs."""
    spans = trace.get("spans") or []
    root = next((sp for sp in spans if not sp.get("parent_span_id")), None)
    attributes = _span_attributes(root or {})
    return attributes.get("mlflow.spanInputs"), attributes.get("mlflow.spanOutputs")


def full_traces(
    client: MlflowClient, trace_ids: Sequence[str], refused: str, fix: str = ""
) -> Iterator[dict[str, Any]]:
    """The whole traces (info and spans) of these ids, in bulk (traces/batchGet).

    :param refused: what the ConfigError says MLflow did not return, when it answers other
        than 200 (its status and message follow, then ``fix``).
    """
    for part in chunks(list(trace_ids), IDS_PER_LOOKUP):
        response = client.call("GET", f"{API}/traces/batchGet", params={"trace_ids": list(part)})
        if response.status_code != 200:
            raise ConfigError(
                f"MLflow did not return {refused} ({response.status_code} "
                f"{error_message(response)}){fix}"
            )
        yield from client.items(response, "traces")[0]


def _full_texts(
    client: MlflowClient, trace_ids: list[str]
) -> dict[str, tuple[str | None, str | None]]:
    """The root span's full inputs and outputs of each trace (traces/batchGet)."""
    fix = "; export without --full-text to use the previews"
    return {
        str((trace.get("trace_info") or {}).get("trace_id")): span_texts(trace)
        for trace in full_traces(client, trace_ids, "the full traces", fix)
    }


def _span_attributes(span: Mapping[str, Any]) -> dict[str, str]:
    """An OpenTelemetry span's attributes as text: a string as it is, anything else as JSON
    (the way MLflow writes its request and response previews)."""
    out: dict[str, str] = {}
    for item in span.get("attributes") or []:
        value = _any_value(item.get("value") or {})
        out[str(item.get("key"))] = (
            value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        )
    return out


def _any_value(value: Mapping[str, Any]) -> Any:
    """An OpenTelemetry AnyValue (as MLflow's JSON gives it) as a Python value."""
    for key in ("string_value", "stringValue"):
        if key in value:
            return value[key]
    for key in ("bool_value", "boolValue"):
        if key in value:
            return bool(value[key])
    for key in ("int_value", "intValue"):
        if key in value:
            return int(value[key])
    for key in ("double_value", "doubleValue"):
        if key in value:
            return float(value[key])
    for key in ("kvlist_value", "kvlistValue"):
        if key in value:
            pairs = (value[key] or {}).get("values") or []
            return {str(p.get("key")): _any_value(p.get("value") or {}) for p in pairs}
    for key in ("array_value", "arrayValue"):
        if key in value:
            return [_any_value(v or {}) for v in (value[key] or {}).get("values") or []]
    return None


def _preview(text: Any) -> str | None:
    """A request or response preview; a JSON string literal (a whole one) as its text."""
    if not isinstance(text, str):
        return None
    try:
        decoded = json.loads(text)
    except ValueError:
        return text  # cut at 1000 characters, or not JSON: as it is
    return decoded if isinstance(decoded, str) else text


def _export_time(value: Any) -> datetime.datetime | None:
    """An RFC 3339 time (nanoseconds cut to microseconds)."""
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
