"""Taking back annotations on Phoenix when an SME clears them in the sheet.

Phoenix's REST filter DELETE selects by name, identifier and time across the whole project,
never by record (an unknown ``span_ids`` parameter is ignored: docs/platform-notes.md,
"Phoenix"), so it could remove the same annotator's label on every span. Instead each
annotation is looked up by (record, name, identifier) and deleted by its id with Phoenix's
GraphQL mutations, which remove exactly those rows: another annotator's annotation, or the
app's, on the same record is never touched. Ids are looked up right before deleting
(Phoenix reuses ids after deletes on SQLite).

A document annotation (``annotate: document``) is looked up by (span, document position,
name, identifier) among the ``documentEvaluations`` of the project's spans and deleted with
``deleteDocumentAnnotations``, so another annotator's annotation on the same document, and
the annotations on the span's other documents, stay.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from bridge.records import Annotation, Outcome
from bridge.targets.phoenix.client import ID_FIELD, PhoenixClient
from bridge.targets.phoenix.documents import DocumentSender, Key, position_problem

_MUTATIONS = {
    "span": (
        "mutation($ids:[ID!]!){deleteSpanAnnotations(input:{annotationIds:$ids})"
        "{spanAnnotations{id}}}",
        "deleteSpanAnnotations",
        "spanAnnotations",
    ),
    "trace": (
        "mutation($ids:[ID!]!){deleteTraceAnnotations(input:{annotationIds:$ids})"
        "{traceAnnotations{id}}}",
        "deleteTraceAnnotations",
        "traceAnnotations",
    ),
    # Phoenix refuses the whole request when one id is gone or given twice, and then
    # deletes none (docs/platform-notes.md, "Phoenix")
    "document": (
        "mutation($ids:[ID!]!){deleteDocumentAnnotations(input:{annotationIds:$ids})"
        "{documentAnnotations{id}}}",
        "deleteDocumentAnnotations",
        "documentAnnotations",
    ),
}
_K = TypeVar("_K", bound=Hashable)
_SESSION = "mutation($id:ID!){deleteProjectSessionAnnotation(id:$id){projectSessionAnnotation{id}}}"


def _held(
    client: PhoenixClient, kind: str, annotations: Sequence[Annotation]
) -> dict[tuple[str, str, str], str]:
    ids = list(dict.fromkeys(a.target_id for a in annotations))
    names = list(dict.fromkeys(a.name for a in annotations))
    held: dict[tuple[str, str, str], str] = {}
    for row in client.annotations(kind, ids, names, strict=True):
        key = (str(row.get(ID_FIELD[kind], "")), str(row.get("name")), str(row.get("identifier")))
        if row.get("id"):
            held[key] = str(row["id"])
    return held


def _delete(client: PhoenixClient, kind: str, ids: list[str]) -> tuple[set[str], str]:
    """Delete these annotation ids: (the ids removed, why the others were not)."""
    if kind == "session":
        gone: set[str] = set()
        problem = ""
        for one in ids:
            data, errors, status = client.graphql(_SESSION, {"id": one})
            if data and not errors:
                gone.add(one)
            else:
                problem = "; ".join(errors) or f"HTTP {status}"
        return gone, problem
    query, field, rows = _MUTATIONS[kind]
    data, errors, status = client.graphql(query, {"ids": ids})
    if data and not errors:
        deleted = (data.get(field) or {}).get(rows) or []
        return {str(d.get("id")) for d in deleted}, ""
    return set(), "; ".join(errors) or f"HTTP {status}"


def _take_back(
    keys: Sequence[_K | None],
    held: dict[_K, str],
    delete: Callable[[list[str]], tuple[set[str], str]],
) -> list[Outcome]:
    """Delete what ``held`` (key -> annotation id) holds of each key, one request for all:
    an outcome per key (``ok("")``: nothing there, never sent or removed already)."""
    to_delete = sorted({held[k] for k in keys if k is not None and k in held})
    gone, problem = delete(to_delete) if to_delete else (set(), "")
    out: list[Outcome] = []
    for k in keys:
        found = held.get(k) if k is not None else None
        if found is None:
            out.append(Outcome.ok(""))
        elif found in gone:
            out.append(Outcome.ok(found))
        else:
            out.append(Outcome.failed(f"Phoenix did not remove annotation {found}: {problem}"))
    return out


def retract(client: PhoenixClient, kind: str, annotations: Sequence[Annotation]) -> list[Outcome]:
    """Take back span, trace or session annotations, by (record, name, identifier)."""
    held = _held(client, kind, annotations)
    keys: list[tuple[str, str, str] | None] = [
        (a.target_id, a.name, a.identifier) if a.identifier else None for a in annotations
    ]
    return _take_back(keys, held, lambda ids: _delete(client, kind, ids))


def retract_documents(sender: DocumentSender, annotations: Sequence[Annotation]) -> list[Outcome]:
    """Take back document annotations, by (span, document position, name, identifier), on
    the spans of the project only (an OTel span id names one span in the whole server)."""
    client = sender.client
    nodes = client.span_nodes(list(dict.fromkeys(a.target_id for a in annotations)))
    stored = sender.stored(list(nodes), strict=True)
    held = {k: i for k, (i, _) in stored.items() if i}
    keys: list[Key | None] = [
        sender.key(a) if a.identifier and sender.position_of(a) is not None else None
        for a in annotations
    ]
    out = _take_back(keys, held, lambda ids: _delete(client, "document", ids))
    for i, a in enumerate(annotations):
        if sender.position_of(a) is None:  # no telling which document's annotation it was
            problem = position_problem(sender.column, a.extra.get(sender.column)) or ""
            out[i] = Outcome.rejected(
                f"{problem}; or set on_clear: keep in the mapping to leave it on Phoenix"
            )
    return out
