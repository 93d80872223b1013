"""The baseline of benchmarks/mlflow_throughput.py: a loop of ``mlflow.log_feedback``.

What a user writes without annobridge: one SDK call per label, in order. Runs with the
MLflow virtualenv's Python. Reads a JSON list of labels (trace_id, name, value, annotator,
rationale, row) and prints one JSON object: labels sent and the seconds the loop took
(imports and connection setup excluded).
"""

from __future__ import annotations

import argparse
import json
import time

import mlflow
from mlflow.entities import AssessmentSource


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--labels", required=True, help="JSON file with the labels to send")
    args = parser.parse_args()
    mlflow.set_tracking_uri(args.url)
    with open(args.labels, encoding="utf-8") as fh:
        labels = json.load(fh)
    started = time.perf_counter()
    for item in labels:
        mlflow.log_feedback(
            trace_id=item["trace_id"],
            name=item["name"],
            value=item["value"],
            source=AssessmentSource(source_type="HUMAN", source_id=item["annotator"]),
            rationale=item["rationale"],
            metadata={"source": "benchmark", "row": str(item["row"])},
        )
    seconds = time.perf_counter() - started
    print(json.dumps({"sent": len(labels), "seconds": seconds}))


if __name__ == "__main__":
    main()
