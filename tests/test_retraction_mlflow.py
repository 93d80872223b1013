"""Retraction on a real MLflow: a cleared synced row's assessment is deleted (by the id
annobridge gave it), another SME's and an LLM judge's on the same trace stay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bridge.mapping import load_mapping
from bridge.pipeline import run
from tests.builders import make_book, sheet_records
from tests.mlflow_server import MlflowServer, server_fixture, traces_fixture

pytestmark = pytest.mark.mlflow
EXPERIMENT = "annobridge-retract"


server = server_fixture("mlflow-retract")


traces = traces_fixture(EXPERIMENT, count=2, seed=9)


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
    make_book(
        tmp_path / "labels.xlsx",
        [[tid, "correct", "alice"], [tid, "incorrect", "bob"]],
        header=["trace_id", "label", "annotator"],
    )
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


def two_trace_project(server: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target: {{type: mlflow, url: "{server.url}", experiment: {EXPERIMENT}}}
state_dir: state
max_retractions: 1
annotations:
  - name: helpfulness
    id_column: trace_id
    label_column: label
    annotator_column: annotator
""",
        encoding="utf-8",
    )
    make_book(
        tmp_path / "labels.xlsx",
        [[t["trace_id"], "yes", "carol"] for t in traces[:2]],
        header=["trace_id", "label", "annotator"],
    )
    assert run(load_mapping(tmp_path / "m.yaml")).counts["synced"] == 2
    wb = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    wb["Labels"]["B2"] = None
    wb["Labels"]["B3"] = None
    wb.save(tmp_path / "labels.xlsx")
    return tmp_path / "m.yaml"


def helpful(server: MlflowServer, traces: list[dict[str, Any]]) -> int:
    return sum(
        1
        for t in traces[:2]
        for a in server.assessments(t["trace_id"])
        if a["assessment_name"] == "helpfulness"
    )


def test_guard_dry_run_and_a_kill_on_mlflow(
    server: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from bridge.errors import ConfigError

    mapping = two_trace_project(server, traces, tmp_path)
    with pytest.raises(ConfigError, match="more than max_retractions"):
        run(load_mapping(mapping))  # two rows cleared, the guard allows one
    assert helpful(server, traces) == 2  # nothing was removed
    planned = run(load_mapping(mapping), dry_run=True).planned
    assert sorted(p["retract"]["id"] for p in planned) == sorted(t["trace_id"] for t in traces[:2])
    assert helpful(server, traces) == 2
    text = mapping.read_text(encoding="utf-8").replace("max_retractions: 1", "max_retractions: 5")
    mapping.write_text(text, encoding="utf-8")
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-m", "tests.crash_driver", "after-send", "1", "sync", str(mapping)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert helpful(server, traces) == 0  # MLflow removed both; the sheet does not say so yet
    assert [r["sync_status"] for r in sheet_records(tmp_path / "labels.xlsx")] == ["synced"] * 2
    again = run(load_mapping(mapping))
    assert again.exit_code == 0 and again.counts["retracted"] == 2
    assert [r["sync_status"] for r in sheet_records(tmp_path / "labels.xlsx")] == ["retracted"] * 2
