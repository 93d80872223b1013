"""Seed an MLflow experiment with traces of a small question-answering app, through the SDK.

This is how a real app gets its traces into MLflow (``@mlflow.trace`` and
``mlflow.update_current_trace(client_request_id=...)``), so the traces annobridge labels are
real ones. Export is synchronous (MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false): the default async
exporter silently drops traces once its queue (1000) is full. Trace ids come from a seeded
generator (``--threads`` > 1 trades that for speed). By default the seed comes from the
experiment (its id and how many traces it holds already), so seeding a second experiment on
the same server, or the same one again, makes new trace ids instead of moving the traces of
the first (MLflow keys a trace by its id alone), and request ids are numbered after the
traces the experiment holds already; ``--seed N`` gives the same ids for the same N on a
fresh server (the tests' recordings use it).

Runs with the MLflow virtualenv's Python (it needs mlflow, not annobridge):

    .cache/servers/mlflow/bin/python examples/seed_mlflow_traces.py \
        --url http://127.0.0.1:5000 --experiment demo --count 20 --out traces.json

Credentials, when the server wants them, come from MLFLOW_TRACKING_USERNAME/PASSWORD or
MLFLOW_TRACKING_TOKEN, as for any MLflow client. Writes one JSON object per trace to
``--out``: trace_id, client_request_id (or null), experiment_id, question, answer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Before mlflow is imported: the async exporter drops traces past its queue, silently.
os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"

import mlflow  # noqa: E402
from mlflow.client import MlflowClient  # noqa: E402

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


def _one_trace(i: int, request_id: str | None) -> dict[str, Any]:
    question, answer = TOPICS[i % len(TOPICS)]

    @mlflow.trace(name="answer_question", span_type="CHAIN")
    def answer_question(q: str) -> str:
        if request_id:
            mlflow.update_current_trace(client_request_id=request_id)
        with mlflow.start_span(name="llm", span_type="LLM") as span:
            span.set_inputs({"question": q, "model": "demo-model"})
            span.set_outputs({"answer": answer})
        return answer

    answer_question(question)
    trace_id = mlflow.get_last_active_trace_id(thread_local=True)
    if not trace_id:  # pragma: no cover - the SDK always sets it after a traced call
        raise RuntimeError("mlflow returned no trace id")
    return {
        "trace_id": trace_id,
        "client_request_id": request_id,
        "question": question,
        "answer": answer,
    }


def seed(
    url: str,
    experiment: str,
    count: int,
    seed_value: int | None,
    request_prefix: str | None,
    shared_request_id: str | None,
    shared_count: int,
    threads: int,
) -> list[dict[str, Any]]:
    mlflow.set_tracking_uri(url)
    experiment_id = mlflow.set_experiment(experiment).experiment_id
    # Numbered after the traces the experiment holds already: seeding it again adds new
    # request ids (req-0010, ...) instead of a second trace for req-0000.
    existing = len(trace_ids(experiment_id))
    seed_text = default_seed(experiment_id, existing) if seed_value is None else str(seed_value)
    plan: list[tuple[int, str | None]] = [
        (i, f"{request_prefix}-{existing + i:04d}" if request_prefix else None)
        for i in range(count)
    ]
    plan += [
        (count + j, shared_request_id) for j in range(shared_count if shared_request_id else 0)
    ]
    # OpenTelemetry's default id generator draws from the global random module.
    random.seed(seed_text)
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            records = list(pool.map(lambda p: _one_trace(*p), plan))
    else:
        records = [_one_trace(i, rid) for i, rid in plan]
    for r in records:
        r["experiment_id"] = experiment_id
    return records


def default_seed(experiment_id: str, existing: int) -> str:
    """The seed when --seed is not given: the experiment, and the traces it holds already."""
    return f"annobridge-demo:{experiment_id}:{existing}"


def trace_ids(experiment_id: str) -> set[str]:
    """The ids of the experiment's traces (pages of 500)."""
    client = MlflowClient()
    seen: set[str] = set()
    token = None
    while True:
        page = client.search_traces(
            locations=[experiment_id], max_results=500, page_token=token, include_spans=False
        )
        seen.update(t.info.trace_id for t in page)
        token = page.token
        if not token:
            break
    return seen


def check_landed(records: list[dict[str, Any]], experiment_id: str) -> None:
    """Every seeded trace must be stored: read them all back."""
    seen = trace_ids(experiment_id)
    missing = [r["trace_id"] for r in records if r["trace_id"] not in seen]
    if missing:
        sys.exit(f"seed: {len(missing)} of {len(records)} traces did not land, e.g. {missing[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", required=True, help="MLflow tracking server URL")
    parser.add_argument("--experiment", default="annobridge-demo", help="experiment name")
    parser.add_argument("--count", type=int, default=20, help="number of traces")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the trace ids (default: from the experiment and its traces, so a "
        "second seeding makes new ids)",
    )
    parser.add_argument(
        "--request-prefix",
        default="req",
        help="trace i gets client_request_id PREFIX-000i, numbered after the traces the "
        "experiment holds already; '' for none",
    )
    parser.add_argument(
        "--shared-request-id", default=None, help="add traces that share this client_request_id"
    )
    parser.add_argument("--shared-count", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help=">1 is faster, ids not seeded")
    parser.add_argument("--out", required=True, help="where to write the seeded traces (JSON)")
    args = parser.parse_args()
    records = seed(
        args.url.rstrip("/"),
        args.experiment,
        args.count,
        args.seed,
        args.request_prefix or None,
        args.shared_request_id,
        args.shared_count,
        args.threads,
    )
    if records:
        check_landed(records, records[0]["experiment_id"])
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(records, fh, indent=1)


if __name__ == "__main__":
    main()
