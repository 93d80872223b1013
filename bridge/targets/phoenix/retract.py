"""Taking back annotations on Phoenix when an SME clears them in the sheet.

Phoenix's REST filter DELETE selects by name, identifier and time across the whole project,
never by record (an unknown ``span_ids`` parameter is ignored: docs/platform-notes.md,
"Phoenix"), so it could remove the same annotator's label on every span. Instead each
annotation is looked up by (record, name, identifier) and deleted by its id with Phoenix's
GraphQL mutations, which remove exactly those rows: another annotator's annotation, or the
app's, on the same record is never touched. Ids are looked up right before deleting
(Phoenix reuses ids after deletes on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.records import Annotation, Outcome
from bridge.targets.phoenix.client import ID_FIELD, PhoenixClient

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
}
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


def retract(client: PhoenixClient, kind: str, annotations: Sequence[Annotation]) -> list[Outcome]:
    if kind not in ("span", "trace", "session"):
        reason = (
            f"taking back a {kind} annotation is not supported yet; remove it in Phoenix, or "
            "set on_clear: keep in the mapping"
        )
        return [Outcome.rejected(reason) for _ in annotations]
    held = _held(client, kind, annotations)
    wanted = {a.identifier and held.get((a.target_id, a.name, a.identifier)) for a in annotations}
    to_delete = sorted(i for i in wanted if i)
    gone, problem = _delete(client, kind, to_delete) if to_delete else (set(), "")
    out: list[Outcome] = []
    for a in annotations:
        found = held.get((a.target_id, a.name, a.identifier))
        if found is None:
            out.append(Outcome.ok(""))  # nothing there (never sent, or removed already)
        elif found in gone:
            out.append(Outcome.ok(found))
        else:
            out.append(Outcome.failed(f"Phoenix did not remove annotation {found}: {problem}"))
    return out
