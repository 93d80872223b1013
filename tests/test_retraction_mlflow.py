"""Retraction on a real MLflow: a cleared synced row's assessment is deleted (by the id
annobridge gave it), another SME's and an LLM judge's on the same trace stay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bridge.mapping import load_mapping
from bridge.pipeline import run
from tests.builders import sheet_records
from tests.mlflow_server import MlflowServer

pytestmark = pytest.mark.mlflow
EXPERIMENT = "annobridge-retract"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-retract"), workers=1, jobs=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def traces(server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("seed") / "traces.json"
    return server.seed(out, experiment=EXPERIMENT, count=2, seed=9)


def names(server: MlflowServer, trace_id: str) -> set[tuple[str, str]]:
    return {
        (a["source"]["source_type"], a["source"]["source_id"])
        for a in server.assessments(trace_id)
        if a["assessment_name"] == "correctness" and a.get("valid", True)
    }


def test_only_the_cleared_rows_assessment_is_deleted(
    server: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    tid = traces[0]["trace_id"]
    (tmp_path / "m.yaml").write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target: {{type: mlflow, url: "{server.url}", experiment: {EXPERIMENT}}}
state_dir: state
annotations:
  - name: correctness
    id_column: trace_id
    label_column: label
    annotator_column: annotator
    rules: {{labels: [correct, incorrect], require: label}}
""",
        encoding="utf-8",
    )
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Labels"
    ws.append(["trace_id", "label", "annotator"])
    ws.append([tid, "correct", "alice"])
    ws.append([tid, "incorrect", "bob"])
    book.save(tmp_path / "labels.xlsx")
    mapping = load_mapping(tmp_path / "m.yaml")
    assert run(mapping).counts["synced"] == 2
    server.call(
        "POST",
        f"/traces/{tid}/assessments",
        {
            "assessment": {
                "assessment_name": "correctness",
                "trace_id": tid,
                "source": {"source_type": "LLM_JUDGE", "source_id": "judge-x"},
                "feedback": {"value": "correct"},
            }
        },
    )
    assert names(server, tid) == {("HUMAN", "alice"), ("HUMAN", "bob"), ("LLM_JUDGE", "judge-x")}
    wb = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    wb["Labels"]["B2"] = None
    wb.save(tmp_path / "labels.xlsx")
    result = run(load_mapping(tmp_path / "m.yaml"))
    assert result.exit_code == 0 and result.counts["retracted"] == 1
    assert names(server, tid) == {("HUMAN", "bob"), ("LLM_JUDGE", "judge-x")}
    rows = sheet_records(tmp_path / "labels.xlsx")
    assert [r["sync_status"] for r in rows] == ["retracted", "synced"]
    assert "correctness taken back" in rows[0]["sync_message"]
    assert run(load_mapping(tmp_path / "m.yaml")).counts["unchanged"] == 2
