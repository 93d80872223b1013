"""An edit of one label of a row sends that one only (issue 13.6): on a real MLflow by trace
id, the row's other assessment is not PATCHed (its last_update_time and its absent rationale
stay as they were)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bridge.mapping import load_mapping
from bridge.pipeline import run
from tests.builders import make_book
from tests.mlflow_server import MlflowServer, server_fixture

pytestmark = pytest.mark.mlflow
EXPERIMENT = "annobridge-only-changed"


server = server_fixture("mlflow-changed")


def test_editing_one_label_leaves_the_other_assessment_alone(
    server: MlflowServer, tmp_path: Path
) -> None:
    (trace,) = server.seed(tmp_path / "t.json", experiment=EXPERIMENT, count=1, seed=4)
    tid = trace["trace_id"]
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
  - name: tone
    id_column: trace_id
    label_column: tone
    annotator_column: annotator
""",
        encoding="utf-8",
    )
    make_book(
        tmp_path / "labels.xlsx",
        [[tid, "correct", "friendly", "alice"]],
        header=["trace_id", "label", "tone", "annotator"],
    )
    assert run(load_mapping(tmp_path / "m.yaml")).counts["synced"] == 1

    def stored() -> dict[str, dict[str, Any]]:
        return {a["assessment_name"]: a for a in server.assessments(tid)}

    before = stored()
    wb = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    wb["Labels"]["B2"] = "incorrect"
    wb.save(tmp_path / "labels.xlsx")
    result = run(load_mapping(tmp_path / "m.yaml"))
    assert result.counts["synced"] == 1 and result.annotations_sent == 1
    after = stored()
    assert after["correctness"]["feedback"]["value"] == "incorrect"
    assert after["tone"] == before["tone"]  # untouched: same update time, no rationale added
    assert "rationale" not in after["tone"]
