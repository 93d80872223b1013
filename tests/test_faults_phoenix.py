"""A real Phoenix behind a fault-injecting proxy: 5% 500, 5% 429 with Retry-After,
2% connection resets after the server did the work, 1% stalls past the client timeout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import openpyxl
import pytest

from bridge.mapping import load_mapping
from bridge.pipeline import run
from tests.fault_proxy import FaultProxy
from tests.servers import PhoenixServer

pytestmark = pytest.mark.phoenix

ANNOTATORS = 7


def job(tmp_path: Path, url: str, spans: list[str]) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Labels"
    ws.append(["span_id", "label", "annotator"])
    for a in range(ANNOTATORS):
        for i, s in enumerate(spans):
            ws.append([s, ("correct", "incorrect")[(i + a) % 2], f"sme{a}"])
    book.save(tmp_path / "labels.xlsx")
    mapping = tmp_path / "m.yaml"
    # Small batches so the run makes a few hundred requests through the proxy. Stalls last
    # until the client times out, so the timeout only needs headroom for real answers.
    mapping.write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target:
  type: phoenix
  url: "{url}"
  project: tests
  timeout: 4
  batch_size: 10
  max_unconfirmed: 20
annotations:
  - name: faults
    id_column: span_id
    label_column: label
    annotator_column: annotator
    rules: {{labels: [correct, incorrect]}}
"""
    )
    return mapping


def test_every_row_ends_synced_or_failed_with_a_reason_and_nothing_is_duplicated(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    spans = [s["span_id"] for s in seeded_spans] + [s["llm_span_id"] for s in seeded_spans]
    with FaultProxy(phoenix.url, seed=7) as proxy:
        mapping = load_mapping(job(tmp_path, proxy.url, spans))
        first = run(mapping)
        runs = [first]
        while runs[-1].counts["failed"] and len(runs) < 4:  # failed rows retry next run
            runs.append(run(mapping))
    assert {"500", "429", "reset", "stall"} <= set(proxy.injected)
    assert sum(proxy.injected.values()) > 100
    # Every stall was a timeout: the client hung up before any answer, then went on (a hang
    # is the pytest timeout's to catch; no wall-clock limit here).
    assert proxy.abandoned == proxy.injected["stall"] >= 1
    rows = list(
        openpyxl.load_workbook(tmp_path / "labels.xlsx")["Labels"].iter_rows(values_only=True)
    )
    header = rows[0]
    status_at, message_at = header.index("sync_status"), header.index("sync_message")
    for row in rows[1:]:
        assert row[status_at] in ("synced", "failed")
        if row[status_at] == "failed":
            assert row[message_at]
    got = [a for a in phoenix.span_annotations(spans, project="tests") if a["name"] == "faults"]
    per_key = Counter((a["span_id"], a["identifier"]) for a in got)
    assert set(per_key.values()) == {1}  # zero duplicates
    assert len(per_key) == len(spans) * ANNOTATORS  # and, after the reruns, nothing missing
    by_key = {(a["span_id"], a["identifier"]): a["result"]["label"] for a in got}
    for span, label, annotator, *_ in rows[1:]:
        assert by_key[(span, f"annobridge:{annotator}")] == label
    assert all(r[status_at] == "synced" for r in rows[1:])
    print(f"faults injected: {dict(proxy.injected)}; {len(runs)} runs")
