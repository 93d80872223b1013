"""The whole loop on a real MLflow server: export the traces to label into a workbook, label
them the way an SME would, sync, and read back that every label landed on the right trace;
and the rules taken from the experiment's label schemas."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from bridge.cli import app
from bridge.mapping import load_mapping
from tests.builders import sheet_records as table
from tests.mlflow_server import MlflowServer, server_fixture, traces_fixture
from tests.mlflow_server import write_mapping as mlflow_mapping

pytestmark = pytest.mark.mlflow
runner = CliRunner()
EXPERIMENT = "annobridge-export"


server = server_fixture("mlflow-export")


traces = traces_fixture(EXPERIMENT, count=12, seed=3)


def write_mapping(directory: Path, server: MlflowServer, name: str) -> Path:
    annotations = f"""  - name: {name}
    id_column: trace_id
    label_column: label
    explanation_column: explanation
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
      require: label"""
    return mlflow_mapping(directory / "mapping.yaml", server, EXPERIMENT, annotations)


def cli(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, [*args, "--json"])
    out = result.stdout.strip().splitlines()
    assert out, result.stderr
    return result.exit_code, json.loads(out[-1])


def test_whole_loop_export_label_sync_read_back(
    server: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    name = "loop_correctness"
    mapping = write_mapping(tmp_path, server, name)
    book = tmp_path / "labels.xlsx"

    started = time.monotonic()
    code, summary = cli("export", str(mapping))
    print(f"export of {summary.get('appended')} traces took {time.monotonic() - started:.2f} s")
    assert code == 0, summary
    rows = table(book)
    by_id = {r["trace_id"]: r for r in rows}
    seeded = {t["trace_id"]: t for t in traces}
    assert set(by_id) == set(seeded)
    for tid, t in seeded.items():
        assert t["question"] in by_id[tid]["input"]
        assert t["answer"] in by_id[tid]["output"]
        assert by_id[tid]["link"] == (
            f"{server.url}/#/experiments/{t['experiment_id']}/traces?selectedEvaluationId={tid}"
        )
        assert by_id[tid]["start_time"].endswith("Z")
    starts = [r["start_time"] for r in rows]
    assert starts == sorted(starts)  # oldest first

    wb = openpyxl.load_workbook(book)
    ws = wb["Labels"]
    col = {c.value: c.column for c in ws[1]}
    expected: dict[str, str] = {}
    for r in range(2, ws.max_row + 1):
        tid = ws.cell(r, col["trace_id"]).value
        label = "incorrect" if r % 3 == 0 else "correct"
        ws.cell(r, col["label"]).value = label
        ws.cell(r, col["annotator"]).value = "sme@example.com"
        expected[tid] = label
    wb.save(book)

    code, synced = cli("sync", str(mapping))
    assert code == 0, synced
    assert synced["counts"]["synced"] == len(expected)
    for tid, label in expected.items():
        got = [a for a in server.assessments(tid) if a["assessment_name"] == name]
        assert [a["feedback"]["value"] for a in got] == [label]
        assert got[0]["source"] == {"source_type": "HUMAN", "source_id": "sme@example.com"}

    code, again = cli("export", str(mapping))
    assert code == 0 and again["appended"] == 0
    assert again["skipped"]["in_sheet"] == len(expected)
    (tmp_path / "fresh").mkdir()
    other = write_mapping(tmp_path / "fresh", server, name)  # a new sheet: labelled ones skipped
    code, fresh = cli("export", str(other), "--dry-run")
    assert code == 0, fresh
    assert fresh["appended"] == 0 and fresh["skipped"]["annotated"] == len(expected)


def test_full_text_equals_the_previews_of_short_traces_and_filters_work(
    server: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    mapping = write_mapping(tmp_path, server, "full_text")
    code, previews = cli("export", str(mapping), "--dry-run")
    assert code == 0, previews
    code, full = cli("export", str(mapping), "--dry-run", "--full-text")
    assert code == 0
    assert full["rows"] == previews["rows"]

    code, none = cli("export", str(mapping), "--dry-run", "--since", "2999-01-01")
    assert code == 0 and none["appended"] == 0
    tid = traces[0]["trace_id"]
    code, one = cli("export", str(mapping), "--dry-run", "--filter", f"trace.request_id = '{tid}'")
    assert code == 0 and [r["trace_id"] for r in one["rows"]] == [tid]
    code, bad = cli("export", str(mapping), "--filter", "nonsense ===")
    assert code == 2 and "MLflow refused the trace search" in bad["error"]["message"]
    code, limited = cli("export", str(mapping), "--dry-run", "--limit", "2")
    assert limited["appended"] == 2


def test_rules_pull_from_label_schemas(
    server: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    experiment_id = traces[0]["experiment_id"]
    server.call(
        "POST",
        "/label-schemas/create",
        {
            "experiment_id": experiment_id,
            "name": "verdict",
            "type": "FEEDBACK",
            "input": {"categorical": {"options": ["great", "fine", "poor"]}},
        },
    )
    mapping = write_mapping(tmp_path, server, "verdict")
    code, done = cli("rules", "pull", str(mapping))
    assert code == 0, done
    assert done["changes"] == [
        {"annotation": "verdict", "key": "labels", "mapping": ["correct", "incorrect"],
         "platform": ["great", "fine", "poor"]}
    ]  # fmt: skip
    assert load_mapping(mapping).annotations[0].rules.labels == ["great", "fine", "poor"]

    absent = write_mapping(tmp_path, server, "no_schema_here")
    code, none = cli("rules", "pull", str(absent))
    assert code == 0 and none["missing"] == ["no_schema_here"]
