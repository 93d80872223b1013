"""A labelling round on a real MLflow server: export with assignment, SMEs label, an LLM judge
writes feedback through MLflow's own API (source LLM_JUDGE), sync, agreement with --judge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bridge.exporting import export
from bridge.mapping import load_mapping
from bridge.pipeline import run
from bridge.rounds import measure
from tests.mlflow_server import MlflowServer, serving

pytestmark = pytest.mark.mlflow
EXPERIMENT = "annobridge-rounds"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    yield from serving(tmp_path_factory, "mlflow-rounds")


@pytest.fixture(scope="module")
def traces(server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("seed") / "traces.json"
    return server.seed(out, experiment=EXPERIMENT, count=6, seed=5)


def judge(server: MlflowServer, trace_id: str, value: str) -> None:
    server.call(
        "POST",
        f"/traces/{trace_id}/assessments",
        {
            "assessment": {
                "assessment_name": "correctness",
                "trace_id": trace_id,
                "source": {"source_type": "LLM_JUDGE", "source_id": "judge-x"},
                "feedback": {"value": value},
                "rationale": f"because {value}",
            }
        },
    )


def test_a_round_on_mlflow(
    server: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    (tmp_path / "m.yaml").write_text(
        f"""
source:
  type: excel
  path: labels.xlsx
  worksheet: Labels
target:
  type: mlflow
  url: {server.url}
  experiment: {EXPERIMENT}
annotations:
  - name: correctness
    id_column: trace_id
    label_column: label
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
      require: label
""",
        encoding="utf-8",
    )
    mapping = load_mapping(tmp_path / "m.yaml")
    exported = export(mapping, assign=["alice", "bob"], per_record=2)
    assert exported.appended == 2 * len(traces)
    assert exported.assigned == {"alice": len(traces), "bob": len(traces)}
    book = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    ws = book["Labels"]
    col = {c.value: c.column for c in ws[1]}
    order: list[str] = []
    for r in range(2, ws.max_row + 1):
        tid = ws.cell(r, col["trace_id"]).value
        who = ws.cell(r, col["annotator"]).value
        if tid not in order:
            order.append(tid)
        # bob disagrees on the first trace only
        flip = who == "bob" and tid == order[0]
        ws.cell(r, col["label"]).value = "incorrect" if flip else "correct"
    book.save(tmp_path / "labels.xlsx")
    assert run(mapping).exit_code == 0
    # the judge: correct everywhere but the last trace; nothing on the second
    for i, tid in enumerate(order):
        if i != 1:
            judge(server, tid, "incorrect" if i == len(order) - 1 else "correct")

    result = measure(load_mapping(tmp_path / "m.yaml"), judge="correctness")
    human, versus = result.results
    assert human.records == len(order) and human.records_with_overlap == len(order)
    assert human.labels is not None
    assert human.labels.percent.value == pytest.approx((len(order) - 1) / len(order))
    assert [d.record_id for d in human.disagreements] == [order[0]]
    # the humans' own assessments (source HUMAN) never count as the judge's
    assert versus.without_verdict == 1  # the second trace
    assert len(versus.ties) == 1  # the first: alice correct, bob incorrect
    assert versus.compared == len(order) - 2
    (wrong,) = versus.disagreements
    assert wrong.record_id == order[-1] and wrong.explanation == "because incorrect"
    assert versus.accuracy.value == pytest.approx((len(order) - 3) / (len(order) - 2))
    tabs = openpyxl.load_workbook(tmp_path / "labels.xlsx").sheetnames
    assert tabs == ["Labels", "Agreement", "Disagreements"]
