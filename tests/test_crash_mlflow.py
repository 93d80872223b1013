"""Crash safety on a real MLflow: a sync killed (SIGKILL) after MLflow answered and before the
statuses were written, then an SME undoes the relabel, status cells included.

Only the journal knows that MLflow holds the killed run's labels while the sheet says every
row is synced and unchanged; the next run must send the rows again (issue 16, item 1).
The kill points are set in the killed process by tests/crash_driver.py.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.mlflow_server import MlflowServer, server_fixture

pytestmark = pytest.mark.mlflow

EXPERIMENT = "annobridge-crash"
ANNOTATORS = 4
ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "annobridge")


server = server_fixture("mlflow-crash")


@pytest.fixture(scope="module")
def trace_ids(server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("seed") / "traces.json"
    return [t["trace_id"] for t in server.seed(out, experiment=EXPERIMENT, count=30, seed=16)]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}


def write_job(tmp_path: Path, server: MlflowServer, traces: list[str], name: str) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = "Labels"
    ws.append(["trace_id", "label", "annotator"])
    for who in range(ANNOTATORS):
        for trace in traces:
            ws.append([trace, "correct", f"sme{who}@example.com"])
    book.save(tmp_path / "labels.xlsx")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        f"""source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target: {{type: mlflow, url: "{server.url}", experiment: {EXPERIMENT}}}
state_dir: state
annotations:
  - name: {name}
    id_column: trace_id
    label_column: label
    annotator_column: annotator
    rules: {{labels: [correct, incorrect], require: label}}
"""
    )
    return mapping


def finish(mapping: Path) -> dict[str, Any]:
    done = subprocess.run(
        [CLI, "sync", str(mapping), "--json"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def killed_at(mapping: Path, point: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.crash_driver", point, "1", "sync", str(mapping)],
        capture_output=True,
        text=True,
        env=env(),
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def journal(mapping: Path) -> Counter[str]:
    (path,) = (mapping.parent / "state").glob("journal-*.sqlite3")  # the mapping's own
    db = sqlite3.connect(path)
    try:
        return Counter(state for (state,) in db.execute("SELECT state FROM sends"))
    finally:
        db.close()


def relabel(book: Path, label: str) -> None:
    wb = openpyxl.load_workbook(book)
    for (cell,) in wb["Labels"].iter_rows(min_row=2, min_col=2, max_col=2):
        cell.value = label
    wb.save(book)


def held(server: MlflowServer, traces: list[str], name: str) -> Counter[str]:
    """The values MLflow holds for ``name``, one assessment per (trace, annotator)."""
    got = [a for t in traces for a in server.assessments(t) if a["assessment_name"] == name]
    keys = Counter((a["trace_id"], a["source"]["source_id"]) for a in got)
    assert set(keys.values()) == {1}, "two assessments from one row"
    return Counter(str(a["feedback"]["value"]) for a in got)


@pytest.mark.parametrize("point", ["after-send", "after-confirmed"])
def test_an_undo_after_a_crash_is_sent_again_so_mlflow_holds_what_the_sheet_says(
    server: MlflowServer, trace_ids: list[str], tmp_path: Path, point: str
) -> None:
    rows = len(trace_ids) * ANNOTATORS
    name = f"crash_undo_{point.replace('-', '_')}"
    mapping = write_job(tmp_path, server, trace_ids, name)
    book = tmp_path / "labels.xlsx"
    assert finish(mapping)["counts"]["synced"] == rows
    before = book.read_bytes()

    relabel(book, "incorrect")
    killed_at(mapping, point)  # MLflow took every edit; no status was written
    assert journal(mapping) == {"sending" if point == "after-send" else "confirmed": rows}
    assert held(server, trace_ids, name) == {"incorrect": rows}

    book.write_bytes(before)  # the SME undoes: old labels, old status cells ("synced")
    summary = finish(mapping)
    assert summary["annotations_sent"] == rows
    assert held(server, trace_ids, name) == {"correct": rows}  # what the sheet says
    assert journal(mapping) == {}
    again = finish(mapping)
    assert again["annotations_sent"] == 0 and again["counts"]["unchanged"] == rows
