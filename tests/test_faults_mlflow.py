"""A real MLflow behind a fault-injecting proxy: 5% 500, 5% 429 with Retry-After,
2% connection resets after the server did the work, 1% stalls past the client timeout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bridge.mapping import load_mapping
from bridge.pipeline import run
from tests.fault_proxy import FaultProxy
from tests.mlflow_server import MlflowServer, server_fixture

pytestmark = pytest.mark.mlflow

EXPERIMENT = "annobridge-faults"
ANNOTATORS = 8


server = server_fixture("mlflow-faults")


@pytest.fixture(scope="module")
def traces(server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("seed") / "traces.json"
    return [t["trace_id"] for t in server.seed(out, experiment=EXPERIMENT, count=20, seed=9)]


def job(tmp_path: Path, url: str, traces: list[str]) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = "Labels"
    ws.append(["trace_id", "label", "annotator"])
    for a in range(ANNOTATORS):
        for i, t in enumerate(traces):
            ws.append([t, ("correct", "incorrect")[(i + a) % 2], f"sme{a}"])
    book.save(tmp_path / "labels.xlsx")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target: {{type: mlflow, url: "{url}", experiment: {EXPERIMENT}, timeout: 4}}
annotations:
  - name: faults
    id_column: trace_id
    label_column: label
    annotator_column: annotator
    rules: {{labels: [correct, incorrect]}}
"""
    )
    return mapping


def test_every_row_ends_synced_or_failed_with_a_reason_and_nothing_is_duplicated(
    server: MlflowServer, traces: list[str], tmp_path: Path
) -> None:
    with FaultProxy(server.url, seed=11) as proxy:
        mapping = load_mapping(job(tmp_path, proxy.url, traces))
        first = run(mapping)
        book = tmp_path / "labels.xlsx"
        rows = list(openpyxl.load_workbook(book)["Labels"].iter_rows(values_only=True))
        header = rows[0]
        status_at, message_at = header.index("sync_status"), header.index("sync_message")
        for row in rows[1:]:  # after the first run: synced, or failed with a reason
            assert row[status_at] in ("synced", "failed"), row
            if row[status_at] == "failed":
                assert row[message_at]
        runs = [first]
        while runs[-1].counts["failed"] and len(runs) < 5:  # failed rows retry next run
            runs.append(run(mapping))
    assert {"500", "429", "reset", "stall"} <= set(proxy.injected)
    assert sum(proxy.injected.values()) > 100
    # Every stall was a timeout: the client hung up before any answer, then went on (a hang
    # is the pytest timeout's to catch; no wall-clock limit here).
    assert proxy.abandoned == proxy.injected["stall"] >= 1
    landed: list[dict[str, Any]] = []
    for t in traces:
        landed += [a for a in server.assessments(t) if a["assessment_name"] == "faults"]
    per_key = Counter((a["trace_id"], a["source"]["source_id"]) for a in landed)
    assert set(per_key.values()) == {1}  # zero duplicates
    assert len(per_key) == len(traces) * ANNOTATORS  # and, after the reruns, nothing missing
    rows = list(openpyxl.load_workbook(book)["Labels"].iter_rows(values_only=True))
    by_key = {(a["trace_id"], a["source"]["source_id"]): a["feedback"]["value"] for a in landed}
    for trace, label, annotator, *_ in rows[1:]:
        assert by_key[(trace, annotator)] == label
    assert all(r[status_at] == "synced" for r in rows[1:])
    print(f"faults injected: {dict(proxy.injected)}; {len(runs)} runs")
