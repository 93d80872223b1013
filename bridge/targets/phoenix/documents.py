"""Document annotations: one per retrieved document of a retriever span (``annotate:
document``), written and read back over GraphQL.

Phoenix's REST ``POST /v1/document_annotations`` refuses any identifier (422 "Non-empty
identifier ... is not supported"), so over REST a document holds one annotation per name and
two SMEs would overwrite each other; it has no read-back either (docs/platform-notes.md,
"Phoenix"). GraphQL does both: ``createDocumentAnnotations`` takes identifiers and upserts on
(name, span, document position, identifier), so each annotator keeps an annotation per
document, a re-send updates it in place, and ``getSpanByOtelId { documentEvaluations }``
reads every one back. That mutation takes the span's GraphQL id, which the REST span list
gives for up to 1000 OTel ids a request; it checks every position against the span's
documents and refuses the whole request, naming the index, when one is past them: that row
is rejected with Phoenix's reason and the rest is sent again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bridge.errors import ConfigError
from bridge.records import Annotation, Outcome, Status
from bridge.targets.base import chunks
from bridge.targets.phoenix.client import PhoenixClient, result_of, same_result

CREATE = """
mutation ($input: [CreateDocumentAnnotationInput!]!) {
  createDocumentAnnotations(input: $input) { documentAnnotations { id } }
}"""
READ_FIELDS = (
    "documentEvaluations { id name label score explanation documentPosition identifier "
    "annotatorKind }"
)
# Phoenix's GraphQL server refuses a query with more than 50 aliases (MaxAliasesLimiter).
MAX_ALIASES = 50

_OUT_OF_BOUNDS = re.compile(
    r"^(Document position -?\d+ is out of bounds) for span at index (\d+) (\(.*\))", re.S
)

Key = tuple[str, int, str, str]
"""(OTel span id, document position, name, identifier): one document annotation."""


def position(value: Any) -> int | None:
    """A document position from a cell: a whole number >= 0 (``2``, ``2.0``, ``"2"``), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.0*)?", text):
        return int(float(text)) if "." in text else int(text)
    return None


def position_problem(column: str, value: Any) -> str | None:
    """Why a cell is not a document position, in an SME's words (None: it is one)."""
    if position(value) is not None:
        return None
    if value is None or (isinstance(value, str) and not value.strip()):
        return f"{column} is empty; give the document's position in the retriever span (0 first)"
    shown = str(value).strip()
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return (
        f"{column} '{shown}' is not a document position; give a whole number from 0 (the "
        "retriever's first document) up"
    )


def document_annotations(
    client: PhoenixClient, span_ids: Sequence[str], *, strict: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(OTel span id, annotation) for every document annotation on these spans, read with
    ``getSpanByOtelId`` (one query per 50 spans: Phoenix allows 50 aliases a query). A
    refused query gives none, or with ``strict`` raises ConfigError (a retraction must not
    take "could not read" for "nothing there")."""
    for part in chunks(list(dict.fromkeys(span_ids)), MAX_ALIASES):
        params = ", ".join(f"$s{i}: String!" for i in range(len(part)))
        fields = " ".join(
            f"s{i}: getSpanByOtelId(spanId: $s{i}) {{ {READ_FIELDS} }}" for i in range(len(part))
        )
        variables = {f"s{i}": span for i, span in enumerate(part)}
        data, errors, status = client.graphql(f"query ({params}) {{ {fields} }}", variables)
        if strict and (data is None or errors):
            reason = "; ".join(errors) or f"HTTP {status}"
            raise ConfigError(f"Phoenix refused to read document annotations ({reason[:300]})")
        for i, span in enumerate(part):
            node = (data or {}).get(f"s{i}") or {}
            for row in node.get("documentEvaluations") or []:
                if isinstance(row, dict):
                    yield span, row


class DocumentSender:
    """Sends document annotations of one Phoenix project and confirms them."""

    def __init__(self, client: PhoenixClient, position_column: str, batch_size: int) -> None:
        self.client = client
        self.column = position_column
        self.batch_size = batch_size

    def position_of(self, a: Annotation) -> int | None:
        return position(a.extra.get(self.column))

    def payload(self, a: Annotation) -> dict[str, Any]:
        """What is sent for one annotation (``spanId`` is the span's GraphQL id at send time)."""
        return {
            "spanId": a.target_id,
            "documentPosition": self.position_of(a),
            "name": a.name,
            "annotatorKind": a.annotator_kind,
            "label": a.label,
            "score": a.score,
            "explanation": a.explanation,
            "metadata": a.metadata,
            "source": "API",
            "identifier": a.identifier,
        }

    def key(self, a: Annotation) -> Key:
        return (a.target_id, self.position_of(a) or 0, a.name, a.identifier)

    def send(
        self,
        annotations: Sequence[Annotation],
        done: Callable[[int], None],
        out: dict[int, Outcome],
    ) -> None:
        """Settle every annotation in ``out`` (by ``id(annotation)``), as it goes: when
        Phoenix stops answering, what was settled before is kept there."""
        nodes = self.client.span_nodes(list(dict.fromkeys(a.target_id for a in annotations)))
        known: list[Annotation] = []
        for a in annotations:
            if a.target_id not in nodes:
                out[id(a)] = Outcome.rejected(
                    f"Phoenix has no span '{a.target_id}' in project '{self.client.project}'; "
                    "check the id (new traces can take a few seconds to appear; the row is "
                    "retried next run)"
                )
            elif self.position_of(a) is None:  # pragma: no cover - refused by problems()
                out[id(a)] = Outcome.rejected(
                    position_problem(self.column, a.extra.get(self.column)) or ""
                )
            else:
                known.append(a)
        done(len(annotations) - len(known))
        for batch in chunks(known, self.batch_size):
            written = self._create(batch, nodes, out)
            if written:
                out.update(self._confirm(written))
            done(len(batch))

    def _create(
        self, batch: Sequence[Annotation], nodes: dict[str, str], out: dict[int, Outcome]
    ) -> list[Annotation]:
        """Write a batch; a row Phoenix refuses is settled in ``out`` and the rest sent
        again. :returns: the annotations written."""
        pending = list(batch)
        while pending:
            inputs = [{**self.payload(a), "spanId": nodes[a.target_id]} for a in pending]
            data, errors, status = self.client.graphql(CREATE, {"input": inputs})
            if data and data.get("createDocumentAnnotations") and not errors:
                return pending
            reason = "; ".join(errors) or "no answer"
            if status != 200:
                for a in pending:
                    out[id(a)] = Outcome(
                        Status.REJECTED if 400 <= status < 500 else Status.FAILED,
                        f"Phoenix answered {status}: {reason}",
                    )
                return []
            bounds = _OUT_OF_BOUNDS.match(errors[0]) if errors else None
            if bounds and int(bounds[2]) < len(pending):
                bad = pending.pop(int(bounds[2]))
                out[id(bad)] = Outcome.rejected(
                    f"Phoenix: {bounds[1]} for span {bad.target_id} {bounds[3]}; positions "
                    f"start at 0: fix {self.column}"
                )
                continue
            if len(pending) > 1:  # isolate the row Phoenix refuses
                half = len(pending) // 2
                return self._create(pending[:half], nodes, out) + self._create(
                    pending[half:], nodes, out
                )
            out[id(pending[0])] = Outcome.rejected(f"Phoenix refused it: {reason[:300]}")
            return []
        return []

    def stored(
        self, span_ids: Sequence[str], *, strict: bool = False
    ) -> dict[Key, tuple[str, dict[str, Any]]]:
        """Every document annotation Phoenix holds on these spans: key -> (id, result)."""
        found: dict[Key, tuple[str, dict[str, Any]]] = {}
        for span, row in document_annotations(self.client, span_ids, strict=strict):
            key = (
                span,
                int(row.get("documentPosition", -1)),
                str(row.get("name")),
                str(row.get("identifier") or ""),
            )
            found[key] = (
                str(row.get("id", "")),
                {f: row.get(f) for f in ("label", "score", "explanation")},
            )
        return found

    def _confirm(self, written: Sequence[Annotation]) -> dict[int, Outcome]:
        """Read the written annotations back: the ones stored as sent are synced."""
        stored = self.stored([a.target_id for a in written])
        out: dict[int, Outcome] = {}
        for a in written:
            found = stored.get(self.key(a))
            if found is not None and same_result(
                result_of(a.label, a.score, a.explanation), found[1]
            ):
                out[id(a)] = Outcome.ok(found[0])
            else:
                out[id(a)] = Outcome.failed(
                    "Phoenix accepted the document annotation but does not hold it as sent"
                )
        return out
