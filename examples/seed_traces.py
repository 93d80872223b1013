"""Seed a Phoenix project with traces of a small question-answering app, through OpenTelemetry.

This is how a real app gets its traces into Phoenix (phoenix.otel + OTLP/HTTP), so the spans
annobridge labels are real ones. Ids are drawn from a seeded generator: the same
``--seed`` gives the same span and trace ids on every run, which keeps the example workbook
and the recorded test cassettes valid across fresh servers.

Runs with the Phoenix virtualenv's Python (it needs arize-phoenix-otel, not annobridge):

    .cache/servers/phoenix/bin/python examples/seed_traces.py \
        --url http://127.0.0.1:6006 --project demo --count 20 --out spans.json

Prints nothing but errors; writes one JSON object per root span to ``--out``:
span_id, trace_id, session_id, question, answer, llm_span_id. With ``--retriever``, each
trace also has a RETRIEVER span with three documents (OpenInference ``retrieval.documents``
attributes), and each object its ``retriever_span_id`` and ``documents`` (id, content, score).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import urllib.parse
import urllib.request
from typing import Any

from opentelemetry.sdk.trace.id_generator import IdGenerator
from phoenix.otel import register

TOPICS = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("Who wrote Pride and Prejudice?", "Jane Austen wrote Pride and Prejudice in 1813."),
    ("What is the boiling point of water at sea level?", "100 degrees Celsius."),
    ("Which planet is known as the red planet?", "Jupiter is known as the red planet."),
    ("What is 12 times 12?", "12 times 12 is 144."),
    ("What gas do plants absorb?", "Plants absorb carbon dioxide for photosynthesis."),
    ("Who painted the Mona Lisa?", "Vincent van Gogh painted the Mona Lisa."),
]


class SeededIds(IdGenerator):
    """Deterministic OpenTelemetry ids."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1


def _get_json(url: str, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def wait_for_spans(
    url: str, project: str, span_ids: set[str], headers: dict[str, str], timeout: float
) -> None:
    """Poll Phoenix until every seeded span is stored (OTLP ingestion is asynchronous)."""
    deadline = time.monotonic() + timeout
    missing = set(span_ids)
    base = f"{url}/v1/projects/{urllib.parse.quote(project, safe='')}/spans"
    while missing:
        cursor = ""
        seen: set[str] = set()
        try:
            while True:
                query = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
                body = _get_json(f"{base}?{urllib.parse.urlencode(query)}", headers)
                seen.update(s["context"]["span_id"] for s in body["data"])
                cursor = body.get("next_cursor") or ""
                if not cursor:
                    break
        except urllib.error.HTTPError as exc:
            if exc.code != 404:  # the project appears with its first span
                raise
        missing -= seen
        if not missing:
            return
        if time.monotonic() > deadline:
            sys.exit(f"seed: {len(missing)} of {len(span_ids)} spans did not land in {timeout}s")
        # Each check lists every span; for big seeds, check less often so as not to slow
        # the ingestion it is waiting for.
        time.sleep(0.5 if len(span_ids) <= 2000 else 5.0)


def documents_for(question: str, answer: str, i: int) -> list[dict[str, Any]]:
    """Three retrieved documents: the answer first, then two less relevant ones."""
    return [
        {"id": f"doc-{i}-0", "content": answer, "score": 0.92, "metadata": {"source": "wiki"}},
        {"id": f"doc-{i}-1", "content": f"Background on: {question}", "score": 0.41},
        {"id": f"doc-{i}-2", "content": "An unrelated paragraph about the weather.", "score": 0.12},
    ]


def retriever_attributes(question: str, documents: list[dict[str, Any]]) -> dict[str, Any]:
    """A RETRIEVER span's OpenInference attributes, flattened as the instrumentations do."""
    attributes: dict[str, Any] = {"openinference.span.kind": "RETRIEVER", "input.value": question}
    for n, doc in enumerate(documents):
        prefix = f"retrieval.documents.{n}.document"
        attributes[f"{prefix}.id"] = doc["id"]
        attributes[f"{prefix}.content"] = doc["content"]
        attributes[f"{prefix}.score"] = doc["score"]
        if doc.get("metadata"):
            attributes[f"{prefix}.metadata"] = json.dumps(doc["metadata"])
    return attributes


def seed(
    url: str,
    project: str,
    count: int,
    seed_value: int,
    api_key: str | None,
    retriever: bool = False,
) -> list[dict]:
    provider = register(
        endpoint=f"{url}/v1/traces",
        project_name=project,
        batch=True,
        set_global_tracer_provider=False,
        protocol="http/protobuf",
        verbose=False,
        api_key=api_key,
        id_generator=SeededIds(seed_value),
    )
    tracer = provider.get_tracer("annobridge-demo-app")
    records = []
    for i in range(count):
        question, answer = TOPICS[i % len(TOPICS)]
        session = f"session-{i // 4:04d}"
        with tracer.start_as_current_span(
            "answer_question",
            attributes={
                "openinference.span.kind": "CHAIN",
                "input.value": question,
                "output.value": answer,
                "session.id": session,
            },
        ) as root:
            documents = documents_for(question, answer, i) if retriever else []
            if retriever:
                with tracer.start_as_current_span(
                    "retrieve", attributes=retriever_attributes(question, documents)
                ) as retrieve:
                    pass
            with tracer.start_as_current_span(
                "llm",
                attributes={
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "demo-model",
                    "input.value": question,
                    "output.value": answer,
                },
            ) as llm:
                pass
        if i % 200 == 199:
            # The batch processor's queue holds 2048 spans and drops the rest silently.
            provider.force_flush()
        ctx = root.get_span_context()
        record = {
            "span_id": f"{ctx.span_id:016x}",
            "trace_id": f"{ctx.trace_id:032x}",
            "session_id": session,
            "question": question,
            "answer": answer,
            "llm_span_id": f"{llm.get_span_context().span_id:016x}",
        }
        if retriever:
            record["retriever_span_id"] = f"{retrieve.get_span_context().span_id:016x}"
            record["documents"] = documents
        records.append(record)
    provider.force_flush()
    provider.shutdown()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="Phoenix base URL")
    parser.add_argument("--project", default="default")
    parser.add_argument("--count", type=int, default=20, help="number of traces")
    parser.add_argument("--seed", type=int, default=7, help="seed of the span and trace ids")
    parser.add_argument("--out", required=True, help="where to write the seeded spans (JSON)")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--retriever", action="store_true", help="add a RETRIEVER span with 3 documents"
    )
    args = parser.parse_args()
    url = args.url.rstrip("/")
    records = seed(url, args.project, args.count, args.seed, args.api_key, args.retriever)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    ids = {r["span_id"] for r in records} | {r["llm_span_id"] for r in records}
    ids |= {r["retriever_span_id"] for r in records if "retriever_span_id" in r}
    wait_for_spans(url, args.project, ids, headers, args.timeout)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(records, fh, indent=1)


if __name__ == "__main__":
    main()
