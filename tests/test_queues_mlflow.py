"""MLflow review queues on the real server, both ways: export --queue lists the queue's
pending traces, one row per (trace, assigned user); a sync marks the items of the synced rows
COMPLETE with completed_by = the row's annotator, and leaves the others PENDING."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from bridge.cli import app
from bridge.errors import ConfigError
from bridge.exporting import export
from bridge.mapping import load_mapping
from bridge.pipeline import run
from tests.mlflow_server import MlflowServer, server_fixture, traces_fixture
from tests.mlflow_server import write_mapping as mlflow_mapping

pytestmark = pytest.mark.mlflow
EXPERIMENT = "annobridge-queues"
QUEUE = "sheet-import-1"


server = server_fixture("mlflow-queues")


traces = traces_fixture(EXPERIMENT, count=5, seed=11)


def experiment_id(server: MlflowServer) -> str:
    name = urllib.parse.quote(EXPERIMENT)
    found = server.call("GET", f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}")
    return str(found["experiment"]["experiment_id"])


def items(server: MlflowServer, queue_id: str) -> dict[str, dict[str, Any]]:
    listed = server.call("GET", f"/review-queues/items/list?queue_id={queue_id}")
    return {i["item_id"]: i for i in listed.get("items", [])}


ANNOTATIONS = """  - name: correctness
    id_column: trace_id
    label_column: label
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
      require: label"""


def write_mapping(tmp_path: Path, server: MlflowServer, extra: str = "") -> Path:
    return mlflow_mapping(tmp_path / "m.yaml", server, EXPERIMENT, ANNOTATIONS, extra)


def test_export_a_queue_then_sync_completes_its_items(
    server: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    exp = experiment_id(server)
    created = server.call(
        "POST",
        "/review-queues/create",
        {"experiment_id": exp, "name": QUEUE, "queue_type": "CUSTOM",
         "users": ["alice@example.com", "bob@example.com"]},
    )  # fmt: skip
    queue_id = created["review_queue"]["queue_id"]
    queued = [t["trace_id"] for t in traces[:3]]  # traces 4 and 5 are not in the queue
    server.call("POST", "/review-queues/items/add", {"queue_id": queue_id, "item_ids": queued})

    mapping = load_mapping(write_mapping(tmp_path, server, f"  review_queue: {QUEUE}"))
    exported = export(mapping, queue=QUEUE)
    assert exported.queue_users == ["alice@example.com", "bob@example.com"]
    assert exported.appended == 6
    book = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    ws = book["Labels"]
    col = {c.value: c.column for c in ws[1]}
    rows = [
        (ws.cell(r, col["trace_id"]).value, ws.cell(r, col["annotator"]).value, r)
        for r in range(2, ws.max_row + 1)
    ]
    assert sorted((t, who) for t, who, _ in rows) == sorted(
        (t, who) for t in queued for who in ("alice@example.com", "bob@example.com")
    )
    # again: nothing is duplicated
    assert export(mapping, queue=QUEUE).appended == 0

    # trace 0: both label; trace 1: only bob; trace 2: nobody
    for tid, who, r in rows:
        if tid == queued[0] or (tid == queued[1] and who == "bob@example.com"):
            ws.cell(r, col["label"]).value = "correct"
    book.save(tmp_path / "labels.xlsx")
    result = run(mapping)
    assert result.exit_code == 0, result.issues
    assert result.queue_completed == 2 and result.queue_warning == ""

    after = items(server, queue_id)
    assert after[queued[0]]["status"] == "COMPLETE"
    assert after[queued[0]]["completed_by"] in ("alice@example.com", "bob@example.com")
    assert after[queued[1]]["status"] == "COMPLETE"
    assert after[queued[1]]["completed_by"] == "bob@example.com"
    assert after[queued[2]]["status"] == "PENDING"
    assert "completed_by" not in after[queued[2]]

    # the completed traces are no longer pending: a new export of the queue lists only trace 2,
    # which is in the sheet already
    again = export(mapping, queue=QUEUE, dry_run=True)
    assert (again.appended, again.in_sheet) == (0, 1)

    # --assign wins over the queue's users
    other = tmp_path / "other"
    other.mkdir()
    mine = load_mapping(write_mapping(other, server))
    assigned = export(mine, queue=QUEUE, assign=["carol"], dry_run=True)
    assert [r["annotator"] for r in assigned.rows] == ["carol"]
    assert [r["trace_id"] for r in assigned.rows] == [queued[2]]


def test_a_queue_by_request_id(
    server: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    exp = experiment_id(server)
    created = server.call(
        "POST",
        "/review-queues/create",
        {"experiment_id": exp, "name": "by-request", "queue_type": "CUSTOM", "users": ["ann"]},
    )
    queue_id = created["review_queue"]["queue_id"]
    trace = traces[3]
    assert trace["client_request_id"]
    server.call(
        "POST", "/review-queues/items/add", {"queue_id": queue_id, "item_ids": [trace["trace_id"]]}
    )
    path = write_mapping(
        tmp_path, server, "  id_kind: client_request_id\n  review_queue: by-request"
    )
    path.write_text(path.read_text().replace("trace_id", "request_id"))
    mapping = load_mapping(path)
    exported = export(mapping, queue="BY-REQUEST")  # names are case-insensitive
    assert exported.appended == 1
    book = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    ws = book["Labels"]
    col = {c.value: c.column for c in ws[1]}
    assert ws.cell(2, col["request_id"]).value == trace["client_request_id"]
    assert ws.cell(2, col["annotator"]).value == "ann"
    ws.cell(2, col["label"]).value = "incorrect"
    book.save(tmp_path / "labels.xlsx")
    result = run(mapping)
    assert result.exit_code == 0 and result.queue_completed == 1
    item = items(server, queue_id)[trace["trace_id"]]
    assert (item["status"], item["completed_by"]) == ("COMPLETE", "ann")


def test_an_unknown_queue_names_the_queues_there_are(
    server: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    exp = experiment_id(server)
    server.call(
        "POST",
        "/review-queues/create",
        {"experiment_id": exp, "name": "gold-set", "queue_type": "CUSTOM"},
    )
    mapping = load_mapping(write_mapping(tmp_path, server))
    with pytest.raises(ConfigError, match="no review queue 'nope'.*gold-set"):
        export(mapping, queue="nope")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "m.yaml"), "--queue", "nope"])
    assert result.exit_code == 2
    assert "gold-set" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "labels.xlsx").exists()
