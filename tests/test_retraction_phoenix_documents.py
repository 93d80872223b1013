"""Taking back a document annotation (``annotate: document``), without a server: the
requests the Phoenix target builds, against a stand-in session that answers as Phoenix
20.26.1 does (docs/platform-notes.md, "Phoenix"): the project's span list over REST, the
spans' ``documentEvaluations`` and ``deleteDocumentAnnotations`` over GraphQL, a delete
naming one gone id refused whole."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from bridge.errors import ConfigError
from bridge.records import Annotation, Status
from bridge.targets.phoenix.config import PhoenixConfig
from bridge.targets.phoenix.target import PhoenixTarget

SPAN = "595a6fe30fceb53c"
OTHER = "6d03a33694413224"  # a span of another project
NAME = "relevance"


@dataclass
class Doc:
    id: str
    span: str
    position: int
    identifier: str
    name: str = NAME
    kind: str = "HUMAN"


@dataclass
class StandInPhoenix(requests.Session):
    """Phoenix's answers to the three requests a document retraction makes; every request
    is kept in ``sent`` as (method, path, query, JSON body)."""

    docs: list[Doc] = field(default_factory=list)
    project_spans: dict[str, str] = field(default_factory=lambda: {SPAN: "U3Bhbjox"})
    read_errors: list[str] = field(default_factory=list)
    sent: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kw: Any) -> Any:
        parts = urlsplit(str(url))
        params = kw.get("params") or {}
        query = parse_qs(parts.query) | {
            k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in params.items()
        }
        body = kw.get("json")
        self.sent.append((str(method), parts.path, query, body))
        if method == "GET" and parts.path == "/v1/projects/rag/spans":
            spans = [
                {"id": self.project_spans[s], "context": {"span_id": s}}
                for s in query.get("span_id", [])
                if s in self.project_spans
            ]
            return answer({"data": spans, "next_cursor": None})
        assert method == "POST" and parts.path == "/graphql", (method, url)
        text, variables = body["query"], body["variables"]
        if "deleteDocumentAnnotations" in text:
            held = {d.id for d in self.docs}
            gone = [i for i in variables["ids"] if i not in held]
            if gone:  # Phoenix refuses the whole request and deletes none
                return answer({"data": None, "errors": [{"message": f"Could not find {gone}"}]})
            self.docs = [d for d in self.docs if d.id not in variables["ids"]]
            deleted = [{"id": i} for i in variables["ids"]]
            return answer({"data": {"deleteDocumentAnnotations": {"documentAnnotations": deleted}}})
        assert "getSpanByOtelId" in text, text
        if self.read_errors:
            return answer({"data": None, "errors": [{"message": m} for m in self.read_errors]})
        data = {
            alias: {
                "documentEvaluations": [
                    {
                        "id": d.id,
                        "name": d.name,
                        "label": "relevant",
                        "score": None,
                        "explanation": None,
                        "documentPosition": d.position,
                        "identifier": d.identifier,
                        "annotatorKind": d.kind,
                    }
                    for d in self.docs
                    if d.span == span
                ]
            }
            for alias, span in variables.items()
        }
        return answer({"data": data})

    def deletes(self) -> list[Any]:
        return [b for _, _, _, b in self.sent if b and "deleteDocumentAnnotations" in b["query"]]

    def reads(self) -> list[Any]:
        return [b for _, _, _, b in self.sent if b and "getSpanByOtelId" in b["query"]]


def answer(body: Any, status: int = 200) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    return response


def held_docs() -> list[Doc]:
    return [
        Doc("RG9jdW1lbnRBbm5vdGF0aW9uOjE=", SPAN, 0, "annobridge:alice"),
        Doc("RG9jdW1lbnRBbm5vdGF0aW9uOjI=", SPAN, 0, "annobridge:bob"),
        Doc("RG9jdW1lbnRBbm5vdGF0aW9uOjM=", SPAN, 1, "annobridge:alice"),
        Doc("RG9jdW1lbnRBbm5vdGF0aW9uOjQ=", SPAN, 1, "annobridge:bob"),
        Doc("RG9jdW1lbnRBbm5vdGF0aW9uOjU=", SPAN, 1, "", kind="LLM"),  # the app's, over REST
        Doc("RG9jdW1lbnRBbm5vdGF0aW9uOjY=", SPAN, 1, "annobridge:bob", name="other"),
    ]


def cleared(span: str, position: Any, annotator: str) -> Annotation:
    """A document annotation the sheet no longer says, as the pipeline plans it."""
    return Annotation(
        row_index=0,
        name=NAME,
        kind="span",
        target_id=span,
        label=None,
        score=None,
        explanation=None,
        annotator=annotator,
        annotator_kind="HUMAN",
        identifier=f"annobridge:{annotator}",
        metadata={"row": 5},
        extra={"position": position},
    )


def target(session: StandInPhoenix) -> PhoenixTarget:
    config = PhoenixConfig(
        type="phoenix",
        url="http://127.0.0.1:9",
        project="rag",
        annotate="document",
        document_position_column="position",
    )
    return PhoenixTarget(config, session=session)


def test_only_that_annotators_annotation_on_that_document_is_deleted_by_its_id() -> None:
    phoenix = StandInPhoenix(docs=held_docs())
    outcomes = target(phoenix).retract([cleared(SPAN, "1", "bob")])
    assert [(o.status, o.remote_id) for o in outcomes] == [
        (Status.SYNCED, "RG9jdW1lbnRBbm5vdGF0aW9uOjQ=")
    ]
    assert phoenix.deletes() == [
        {
            "query": "mutation($ids:[ID!]!){deleteDocumentAnnotations(input:{annotationIds:$ids})"
            "{documentAnnotations{id}}}",
            "variables": {"ids": ["RG9jdW1lbnRBbm5vdGF0aW9uOjQ="]},
        }
    ]
    assert [(d.position, d.identifier, d.name) for d in phoenix.docs] == [
        (0, "annobridge:alice", NAME),
        (0, "annobridge:bob", NAME),
        (1, "annobridge:alice", NAME),
        (1, "", NAME),
        (1, "annobridge:bob", "other"),
    ]


def test_several_at_once_go_in_one_delete_and_what_is_not_there_is_said_so() -> None:
    phoenix = StandInPhoenix(docs=held_docs())
    outcomes = target(phoenix).retract(
        [
            cleared(SPAN, 1, "alice"),
            cleared(SPAN, 2, "alice"),  # never sent to document 2
            cleared(SPAN, 0.0, "bob"),
            cleared(OTHER, 0, "bob"),  # a span of another project: never read
        ]
    )
    assert [(o.status, o.remote_id) for o in outcomes] == [
        (Status.SYNCED, "RG9jdW1lbnRBbm5vdGF0aW9uOjM="),
        (Status.SYNCED, ""),
        (Status.SYNCED, "RG9jdW1lbnRBbm5vdGF0aW9uOjI="),
        (Status.SYNCED, ""),
    ]
    assert [d["variables"]["ids"] for d in phoenix.deletes()] == [
        ["RG9jdW1lbnRBbm5vdGF0aW9uOjI=", "RG9jdW1lbnRBbm5vdGF0aW9uOjM="]
    ]
    assert [r["variables"] for r in phoenix.reads()] == [{"s0": SPAN}]
    assert len(phoenix.docs) == 4


def test_nothing_held_sends_no_delete() -> None:
    phoenix = StandInPhoenix(docs=held_docs()[:1])
    outcomes = target(phoenix).retract([cleared(SPAN, 1, "bob")])
    assert [(o.status, o.remote_id) for o in outcomes] == [(Status.SYNCED, "")]
    assert phoenix.deletes() == [] and len(phoenix.docs) == 1


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("", "position is empty; give the document's position in the retriever span (0 first)"),
        ("two", "position 'two' is not a document position; give a whole number from 0"),
    ],
)
def test_a_cleared_row_with_no_position_takes_nothing_back_and_says_why(
    cell: str, reason: str
) -> None:
    phoenix = StandInPhoenix(docs=held_docs())
    (outcome,) = target(phoenix).retract([cleared(SPAN, cell, "bob")])
    assert outcome.status == Status.REJECTED
    assert outcome.message.startswith(reason)
    assert outcome.message.endswith("; or set on_clear: keep in the mapping to leave it on Phoenix")
    assert phoenix.deletes() == [] and len(phoenix.docs) == 6


def test_a_read_phoenix_refuses_is_an_error_not_nothing_there() -> None:
    phoenix = StandInPhoenix(docs=held_docs(), read_errors=["an unexpected error occurred"])
    with pytest.raises(ConfigError, match="Phoenix refused to read document annotations"):
        target(phoenix).retract([cleared(SPAN, 1, "bob")])
    assert phoenix.deletes() == [] and len(phoenix.docs) == 6


def test_a_delete_phoenix_refuses_fails_the_row_with_its_reason() -> None:
    class GoneMeanwhile(StandInPhoenix):
        def request(self, method: str | bytes, url: str | bytes, *a: Any, **kw: Any) -> Any:
            body = kw.get("json") or {}
            if "deleteDocumentAnnotations" in body.get("query", ""):
                self.docs = [d for d in self.docs if d.identifier != "annobridge:bob"]
            return super().request(method, url, *a, **kw)

    phoenix = GoneMeanwhile(docs=held_docs())
    (outcome,) = target(phoenix).retract([cleared(SPAN, 1, "bob")])
    assert outcome.status == Status.FAILED
    assert outcome.message.startswith(
        "Phoenix did not remove annotation RG9jdW1lbnRBbm5vdGF0aW9uOjQ=: Could not find"
    )
