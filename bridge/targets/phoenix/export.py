"""Phoenix records for export: a project's root spans (or traces), page by page, each with
the annotation names it already holds; for ``annotate: document``, every document of its
retriever spans (read from the spans' OpenInference ``retrieval.documents`` attributes,
which Phoenix's REST API returns flattened: ``retrieval.documents.0.document.content``)."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from bridge.errors import ConfigError, UnexpectedAnswer
from bridge.http import unexpected_shape
from bridge.records import ExportDocument, ExportQuery, ExportRecord, finite_number
from bridge.targets.phoenix.client import (
    ID_FIELD,
    MAX_IDS_PER_GET,
    NOT_THE_API,
    PLATFORM,
    PhoenixClient,
    detail,
)
from bridge.targets.phoenix.documents import document_annotations

_DOCUMENT_KEY = re.compile(r"^retrieval\.documents\.(\d+)\.document\.(id|content|score)$")


def export_records(client: PhoenixClient, kind: str, query: ExportQuery) -> Iterator[ExportRecord]:
    """The project's root spans (every span with ``roots_only`` False), oldest first,
    page by page; for ``annotate: trace``, its traces (one per root span). Each record
    carries the names of ``query.names`` it already holds from ``query.annotator_kinds``.

    :raises ConfigError: unknown project, a filter Phoenix refuses, or ``annotate: session``.
    """
    if kind == "session":
        raise ConfigError(
            "export lists spans or traces; sessions cannot be exported yet: set "
            "target.annotate to span or trace to export, or fill the session ids by hand"
        )
    project_id = _project_id(client)
    params: dict[str, Any] = {
        "limit": max(1, min(query.page_size, MAX_IDS_PER_GET)),
        "sort": "start_time",
        "order": "asc",
    }
    if kind == "document":
        params["span_kind"] = "RETRIEVER"
    elif query.roots_only or kind == "trace":
        params["parent_id"] = "null"
    if query.since is not None:
        params["start_time"] = query.since.isoformat()
    if query.until is not None:
        params["end_time"] = query.until.isoformat()
    if query.filters:
        params["attribute"] = list(query.filters)
    cursor: str | None = None
    while True:
        if cursor:
            params["cursor"] = cursor
        response = client.call("GET", f"{client.project_path}/spans", params=params)
        if response.status_code != 200:
            raise ConfigError(
                f"Phoenix refused to list the spans of project '{client.project}' "
                f"({response.status_code}: {detail(response.text)}); a --filter is "
                "key:value on a span attribute, e.g. --filter metadata.tier:gold"
            )
        spans, body = client.items(response)
        ids = [_record_id(kind, s) for s in spans]
        if kind == "document":
            held_documents = _held_documents(client, ids, query)
            held: dict[str, set[str]] = {}
        else:
            held = _held(client, kind, sorted(set(ids)), query)
        for span, rid in zip(spans, ids, strict=True):
            attributes = span.get("attributes") or {}
            context = span.get("context") or {}
            url = None
            if project_id and context.get("trace_id"):
                url = (
                    f"{client.base_url}/projects/{urllib.parse.quote(project_id, safe='')}"
                    f"/traces/{urllib.parse.quote(context['trace_id'], safe='')}"
                )
                if span.get("id"):
                    url += "?selectedSpanNodeId=" + urllib.parse.quote(span["id"], safe="")
            if kind == "document":
                for doc in retrieved_documents(attributes):
                    yield ExportRecord(
                        record_id=rid,
                        input=_text(attributes.get("input.value")),
                        start_time=_time(span.get("start_time")),
                        url=url,
                        annotated=frozenset(held_documents.get((rid, doc.position), ())),
                        document=doc,
                    )
                continue
            yield ExportRecord(
                record_id=rid,
                input=_text(attributes.get("input.value")),
                output=_text(attributes.get("output.value")),
                start_time=_time(span.get("start_time")),
                url=url,
                annotated=frozenset(held.get(rid, ())),
            )
        cursor = body.get("next_cursor")
        if not cursor or not spans:
            return


def retrieved_documents(attributes: Mapping[str, Any]) -> list[ExportDocument]:
    """A retriever span's documents, by position: from the flattened attributes
    (``retrieval.documents.<n>.document.<field>``) or a nested ``retrieval.documents`` list."""
    fields: dict[int, dict[str, Any]] = {}
    nested = attributes.get("retrieval.documents")
    if isinstance(nested, list):
        for n, item in enumerate(nested):
            doc = item.get("document", item) if isinstance(item, dict) else {}
            fields[n] = {k: doc.get(k) for k in ("id", "content", "score") if isinstance(doc, dict)}
    for key, value in attributes.items():
        m = _DOCUMENT_KEY.match(key)
        if m:
            fields.setdefault(int(m[1]), {})[m[2]] = value
    return [
        ExportDocument(
            position=n,
            document_id=None if f.get("id") is None else str(f["id"]),
            content=_text(f.get("content")),
            score=finite_number(f.get("score")),
        )
        for n, f in sorted(fields.items())
    ]


def _held_documents(
    client: PhoenixClient, span_ids: Sequence[str], query: ExportQuery
) -> dict[tuple[str, int], set[str]]:
    """Which of ``query.names`` each (span, document position) already holds."""
    held: dict[tuple[str, int], set[str]] = {}
    if not span_ids or not query.names:
        return held
    for span, row in document_annotations(client, span_ids):
        name = str(row.get("name"))
        if name in query.names and row.get("annotatorKind") in query.annotator_kinds:
            held.setdefault((span, int(row.get("documentPosition", -1))), set()).add(name)
    return held


def _record_id(kind: str, span: Mapping[str, Any]) -> str:
    context = span.get("context") or {}
    return str(context.get("trace_id" if kind == "trace" else "span_id") or "")


def _project_id(client: PhoenixClient) -> str | None:
    """The project's GlobalID (for links into Phoenix's UI)."""
    response = client.call("GET", client.project_path)
    if response.status_code == 404:
        listing = client.call("GET", "/v1/projects", params={"limit": 100})
        names = []
        if listing.status_code == 200:
            names = [str(p.get("name")) for p in client.items(listing)[0]]
        known = f" (projects: {', '.join(names)})" if names else ""
        raise ConfigError(
            f"Phoenix at {client.base_url} has no project '{client.project}'{known}; set "
            "target.project (or PHOENIX_PROJECT_NAME) to the project of the traces"
        )
    if response.status_code != 200:
        return None
    data = client.json_object(response).get("data") or {}
    if not isinstance(data, dict):
        shape = "a project that is not an object where one"
        raise UnexpectedAnswer(unexpected_shape(response, PLATFORM, shape, NOT_THE_API))
    return str(data["id"]) if data.get("id") else None


def _held(
    client: PhoenixClient, kind: str, ids: Sequence[str], query: ExportQuery
) -> dict[str, set[str]]:
    """Which of ``query.names`` each record already holds (by the query's annotator kinds)."""
    held: dict[str, set[str]] = {}
    if not ids or not query.names:
        return held
    for row in client.annotations(kind, ids, query.names, strict=True):
        if row.get("annotator_kind") in query.annotator_kinds:
            rid = row.get(ID_FIELD[kind])
            held.setdefault(str(rid), set()).add(str(row.get("name")))
    return held


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def projects_with_records(client: PhoenixClient, limit: int = 20) -> list[str]:
    """The projects other than the client's that hold spans (the first ``limit`` looked at)."""
    listing = client.call("GET", "/v1/projects", params={"limit": 100})
    if listing.status_code != 200:
        return []
    names = [str(p.get("name")) for p in client.items(listing)[0] if p.get("name")]
    found = []
    for name in [n for n in names if n != client.project][:limit]:
        path = f"/v1/projects/{urllib.parse.quote(name, safe='')}/spans"
        response = client.call("GET", path, params={"limit": 1})
        if response.status_code == 200 and client.items(response)[0]:
            found.append(name)
    return found
