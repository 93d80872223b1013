"""A labelling round on a real MLflow server: export with assignment, SMEs label, an LLM judge
writes feedback through MLflow's own API (source LLM_JUDGE), sync, agreement with --judge."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bridge.exporting import export
from bridge.mapping import load_mapping
from bridge.pipeline import run
from bridge.rounds import measure
from tests.builders import make_book, tab_links
from tests.mlflow_server import MlflowServer, server_fixture, traces_fixture

pytestmark = pytest.mark.mlflow
EXPERIMENT = "annobridge-rounds"


server = server_fixture("mlflow-rounds")


traces = traces_fixture(EXPERIMENT, count=6, seed=5)


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


def check_link(server: MlflowServer, url: str, trace_id: str) -> None:
    """The link opens this trace in its experiment on this server, as the real server has it."""
    parts = urllib.parse.urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == server.url and parts.path == "/"
    route, _, query = parts.fragment.partition("?")
    info = server.call("GET", f"/traces/{trace_id}")["trace"]["trace_info"]
    experiment = info["trace_location"]["mlflow_experiment"]["experiment_id"]
    assert route == f"/experiments/{experiment}/traces"
    assert urllib.parse.parse_qs(query) == {"selectedEvaluationId": [info["trace_id"]]}


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
    # the links: export's, from the sheet; then, without the link column, annobridge's own
    links = tab_links(tmp_path / "labels.xlsx")
    assert set(links) == {order[0], order[-1]}
    sheet = {ws.cell(r, col["trace_id"]).value: ws.cell(r, col["link"]).value
             for r in range(2, ws.max_row + 1)}  # fmt: skip
    assert links == {t: sheet[t] for t in links}
    book = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    book["Labels"].delete_cols(col["link"])
    book.save(tmp_path / "labels.xlsx")
    again = measure(load_mapping(tmp_path / "m.yaml"), judge="correctness")
    assert again.messages == [] and again.exit_code == 0
    links = tab_links(tmp_path / "labels.xlsx")
    assert set(links) == {order[0], order[-1]}
    for trace_id, url in links.items():
        check_link(server, url, trace_id)
    assert {t["trace_id"]: t["experiment_id"] for t in traces}[order[0]] in links[order[0]]


def test_request_id_links_on_mlflow(
    server: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Rows by the app's request id: each disputed record's link opens its own trace."""
    by_request = {t["client_request_id"]: t["trace_id"] for t in traces if t["client_request_id"]}
    assert len(by_request) >= 2
    ids = [*sorted(by_request)[:2], "req-never-logged"]
    rows = [
        [r, label, who] for r in ids for label, who in (("correct", "alice"), ("incorrect", "bob"))
    ]
    make_book(tmp_path / "labels.xlsx", rows, header=["request_id", "label", "annotator"])
    (tmp_path / "m.yaml").write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target: {{type: mlflow, url: "{server.url}", experiment: {EXPERIMENT},
          id_kind: client_request_id}}
annotations:
  - {{name: correctness, id_column: request_id, label_column: label,
      annotator_column: annotator}}
""",
        encoding="utf-8",
    )
    result = measure(load_mapping(tmp_path / "m.yaml"), write_tabs=False)
    assert result.messages == [] and set(result.links) == set(ids[:2])  # unresolved: none
    for rid in ids[:2]:
        check_link(server, result.links[rid], by_request[rid])
