"""The official client's bulk call, timed. Runs with the Phoenix virtualenv's Python.

    python _phoenix_official_client.py URL SPANS_JSON NAME true|false

Prints {"started": ..., "seconds": ...}: the wall-clock time the call started, and how long
it took (after imports and DataFrame building, which are not counted against the client).
"""

from __future__ import annotations

import json
import sys
import time

import pandas as pd
from phoenix.client import Client


def main() -> None:
    url, spans_file, name, sync = sys.argv[1:5]
    span_ids = json.load(open(spans_file))
    df = pd.DataFrame(
        {
            "span_id": span_ids,
            "label": ["correct" if i % 2 else "incorrect" for i in range(len(span_ids))],
            "score": [float(i % 2) for i in range(len(span_ids))],
            "explanation": [f"bench row {i}" for i in range(len(span_ids))],
        }
    )
    client = Client(base_url=url)
    started_at = time.time()
    started = time.perf_counter()
    client.spans.log_span_annotations_dataframe(
        dataframe=df, annotation_name=name, annotator_kind="HUMAN", sync=sync == "true"
    )
    print(json.dumps({"started": started_at, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
