"""End to end on a real MLflow server: sync a workbook, then read back what the server holds.

One server for the module, with MLflow's basic-auth app on (so auth is real), SQLite in a
temp dir, traces seeded through the MLflow SDK with synchronous export. Each test labels
its own traces or uses its own assessment name, so the order of tests does not matter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import requests
from typer.testing import CliRunner

from bridge.cli import app
from bridge.mapping import load_mapping
from bridge.pipeline import run
from bridge.records import Annotation, Status
from bridge.rules import identifier_for
from bridge.targets.mlflow.config import MlflowConfig
from bridge.targets.mlflow.target import MlflowTarget
from bridge.targets.mlflow.values import assessment_id
from tests.mlflow_server import MlflowServer
from tests.mlflow_server import write_mapping as mlflow_mapping

pytestmark = pytest.mark.mlflow

EXPERIMENT = "annobridge-tests"
runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(
        tmp_path_factory.mktemp("mlflow-server"), workers=1, jobs=False, auth=True
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def traces(server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """24 traces with request ids req-0000.., and two more that share 'req-shared'."""
    out = tmp_path_factory.mktemp("seed") / "traces.json"
    return server.seed(out, experiment=EXPERIMENT, count=24, seed=5, shared_request_id="req-shared")


@pytest.fixture
def admin(server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    for name, value in server.credentials_env().items():
        monkeypatch.setenv(name, value)
    return server


def write_workbook(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = "Labels"
    ws.append(header)
    for row in rows:
        ws.append(row)
    book.save(path)
    return path


def edit_cell(path: Path, row: int, column: str, value: Any) -> None:
    book = openpyxl.load_workbook(path)
    ws = book["Labels"]
    header = [c.value for c in ws[1]]
    ws.cell(row=row, column=header.index(column) + 1, value=value)
    book.save(path)


def statuses(path: Path) -> list[dict[str, Any]]:
    ws = openpyxl.load_workbook(path)["Labels"]
    rows = list(ws.iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]


def write_mapping(
    directory: Path,
    server: MlflowServer,
    target: str,
    annotations: str,
) -> Path:
    return mlflow_mapping(directory / "mapping.yaml", server, EXPERIMENT, annotations, target)


CORRECTNESS = """  - name: {name}
    id_column: {id_column}
    label_column: label
    explanation_column: explanation
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
      require: label
"""


def sync(mapping: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = runner.invoke(app, ["sync", str(mapping), "--json", *extra])
    assert result.stdout.strip(), result.stderr
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1]), result.output


def named(server: MlflowServer, trace_id: str, name: str) -> list[dict[str, Any]]:
    return [a for a in server.assessments(trace_id) if a["assessment_name"] == name]


def test_create_rerun_and_edit_never_duplicate(
    admin: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    book = write_workbook(
        tmp_path / "labels.xlsx",
        ["trace_id", "label", "explanation", "annotator"],
        [
            [traces[0]["trace_id"], "correct", "matches the reference", "alice@example.com"],
            [traces[1]["trace_id"], "incorrect", "wrong painter", "bob@example.com"],
            [traces[2]["trace_id"], "Correct", None, "alice@example.com"],
        ],
    )
    mapping = write_mapping(
        tmp_path,
        admin,
        "  values: {it_correct: pass_fail}",
        CORRECTNESS.format(name="it_correct", id_column="trace_id"),
    )
    code, summary, _ = sync(mapping)
    assert code == 0, summary
    assert summary["counts"]["synced"] == 3
    [first] = named(admin, traces[0]["trace_id"], "it_correct")
    assert first["feedback"] == {"value": True}
    assert first["source"] == {"source_type": "HUMAN", "source_id": "alice@example.com"}
    assert first["rationale"] == "matches the reference"
    assert first["metadata"]["row"] == "2" and first["metadata"]["source"] == "annobridge"
    assert first["assessment_id"] == statuses(book)[0]["sync_id"]
    assert named(admin, traces[1]["trace_id"], "it_correct")[0]["feedback"] == {"value": False}

    code, summary, _ = sync(mapping)  # a re-run sends nothing
    assert code == 0
    assert summary["counts"]["unchanged"] == 3 and summary["annotations_sent"] == 0
    assert named(admin, traces[0]["trace_id"], "it_correct") == [first]

    edit_cell(book, 2, "label", "incorrect")
    edit_cell(book, 2, "explanation", "on second thought, wrong")
    code, summary, _ = sync(mapping)
    assert code == 0
    assert summary["counts"]["synced"] == 1 and summary["counts"]["unchanged"] == 2
    [edited] = named(admin, traces[0]["trace_id"], "it_correct")  # updated in place
    assert edited["assessment_id"] == first["assessment_id"]
    assert edited["feedback"] == {"value": False}
    assert edited["rationale"] == "on second thought, wrong"
    assert edited["last_update_time"] > first["last_update_time"]


def test_a_blank_annotator_is_refused_and_filling_it_in_lands_one_assessment(
    admin: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    trace = traces[3]["trace_id"]
    book = write_workbook(
        tmp_path / "labels.xlsx",
        ["trace_id", "label", "explanation", "annotator"],
        [[trace, "correct", None, None]],
    )
    mapping = write_mapping(
        tmp_path, admin, "", CORRECTNESS.format(name="it_blank_annotator", id_column="trace_id")
    )
    code, summary, _ = sync(mapping)
    assert code == 1 and summary["counts"]["invalid"] == 1 and summary["annotations_sent"] == 0
    assert summary["issues"][0]["message"].startswith("annotator is empty: type the annotator")
    assert named(admin, trace, "it_blank_annotator") == []  # not sent as "annobridge"

    edit_cell(book, 2, "annotator", "erin@example.com")
    code, summary, _ = sync(mapping)
    assert code == 0 and summary["counts"]["synced"] == 1
    [only] = named(admin, trace, "it_blank_annotator")
    assert only["source"] == {"source_type": "HUMAN", "source_id": "erin@example.com"}


def test_unknown_trace_is_rejected_and_the_rest_land(
    admin: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    unknown = "tr-" + "0" * 32
    book = write_workbook(
        tmp_path / "labels.xlsx",
        ["trace_id", "label", "explanation", "annotator"],
        [
            [traces[3]["trace_id"], "correct", None, "alice"],
            [unknown, "correct", None, "alice"],
            ["not-a-trace-id", "correct", None, "alice"],
        ],
    )
    mapping = write_mapping(
        tmp_path, admin, "", CORRECTNESS.format(name="it_unknown", id_column="trace_id")
    )
    code, summary, _ = sync(mapping)
    assert code == 1
    rows = statuses(book)
    assert [r["sync_status"] for r in rows] == ["synced", "rejected", "invalid"]
    assert rows[1]["sync_message"].startswith(f"MLflow has no trace '{unknown}'")
    assert "is not an MLflow trace id (tr- and 32 lowercase hex" in rows[2]["sync_message"]
    assert len(named(admin, traces[3]["trace_id"], "it_unknown")) == 1


def test_request_ids_resolve_in_bulk_and_unknown_or_ambiguous_ones_are_rejected(
    admin: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    by_request = {t["client_request_id"]: t for t in traces if t["client_request_id"]}
    shared = sorted(t["trace_id"] for t in traces if t["client_request_id"] == "req-shared")
    book = write_workbook(
        tmp_path / "labels.xlsx",
        ["request_id", "label", "explanation", "annotator"],
        [
            ["req-0004", "correct", "fine", "alice"],
            ["req-shared", "correct", None, "alice"],
            ["req-9999", "incorrect", None, "alice"],
            ["req-0005", "incorrect", None, "alice"],
        ],
    )
    mapping = write_mapping(
        tmp_path,
        admin,
        "  id_kind: client_request_id\n  values: {it_by_request: pass_fail}",
        CORRECTNESS.format(name="it_by_request", id_column="request_id"),
    )
    code, summary, _ = sync(mapping)
    assert code == 1
    rows = statuses(book)
    assert [r["sync_status"] for r in rows] == ["synced", "rejected", "rejected", "synced"]
    assert rows[1]["sync_message"] == (
        f"request id 'req-shared' matches 2 traces in experiment '{EXPERIMENT}' "
        f"({shared[0]}, {shared[1]}); label them by trace id instead (id_kind: trace_id)"
    )
    assert rows[2]["sync_message"].startswith(
        f"no trace with request id 'req-9999' in experiment '{EXPERIMENT}'"
    )
    [landed] = named(admin, by_request["req-0004"]["trace_id"], "it_by_request")
    assert landed["feedback"] == {"value": True}
    assert landed["metadata"]["client_request_id"] == "req-0004"
    assert named(admin, by_request["req-0005"]["trace_id"], "it_by_request")[0]["feedback"] == {
        "value": False
    }
    for trace_id in shared:
        assert named(admin, trace_id, "it_by_request") == []


def test_values_by_type_feedback_and_expectation(
    admin: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    trace = traces[6]["trace_id"]
    write_workbook(
        tmp_path / "labels.xlsx",
        ["trace_id", "verdict", "stars", "topic", "gold", "why", "annotator"],
        [[trace, "pass", 4, "Geography", "Paris", "it is Paris", "carol"]],
    )
    mapping = write_mapping(
        tmp_path,
        admin,
        "  values: {it_ok: pass_fail, it_stars: numeric, it_topic: categorical}\n"
        "  pass_fail: {it_ok: [pass, fail]}\n"
        "  expectations: [it_gold]",
        """  - {name: it_ok, id_column: trace_id, label_column: verdict,
     annotator_column: annotator}
  - {name: it_stars, id_column: trace_id, score_column: stars, explanation_column: why,
     annotator_column: annotator}
  - {name: it_topic, id_column: trace_id, label_column: topic, annotator_column: annotator}
  - {name: it_gold, id_column: trace_id, label_column: gold, explanation_column: why,
     annotator_column: annotator}
""",
    )
    code, summary, _ = sync(mapping)
    assert code == 0, summary
    stored = {a["assessment_name"]: a for a in admin.assessments(trace)}
    assert stored["it_ok"]["feedback"] == {"value": True}
    assert stored["it_stars"]["feedback"] == {"value": 4.0}
    assert stored["it_stars"]["rationale"] == "it is Paris"
    assert stored["it_topic"]["feedback"] == {"value": "Geography"}
    assert stored["it_gold"]["expectation"] == {"value": "Paris"}
    assert stored["it_gold"]["metadata"]["rationale"] == "it is Paris"
    assert all(a["source"]["source_id"] == "carol" for a in stored.values())


def test_label_schemas_are_read_and_enforced(
    admin: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    experiment_id = traces[0]["experiment_id"]
    for name, given in (
        ("it_schema_topic", {"categorical": {"options": ["Geography", "Math"]}}),
        ("it_schema_stars", {"numeric": {"min_value": 1, "max_value": 5}}),
    ):
        admin.call(
            "POST",
            "/label-schemas/create",
            {"experiment_id": experiment_id, "name": name, "type": "FEEDBACK", "input": given},
        )
    ids = [traces[i]["trace_id"] for i in (7, 8, 9)]
    book = write_workbook(
        tmp_path / "labels.xlsx",
        ["trace_id", "topic", "stars", "annotator"],
        [
            [ids[0], "geography", 5, "dan"],
            [ids[1], "History", 3, "dan"],
            [ids[2], "Math", 9, "dan"],
        ],
    )
    mapping = write_mapping(
        tmp_path,
        admin,
        "  label_schemas: true",
        """  - {name: it_schema_topic, id_column: trace_id, label_column: topic,
     annotator_column: annotator}
  - {name: it_schema_stars, id_column: trace_id, score_column: stars,
     annotator_column: annotator}
""",
    )
    checked = runner.invoke(app, ["validate", str(mapping), "--json"])
    assert checked.exit_code == 1
    assert json.loads(checked.stdout)["counts"]["invalid"] == 2
    code, summary, _ = sync(mapping)
    assert code == 1
    rows = statuses(book)
    assert [r["sync_status"] for r in rows] == ["synced", "invalid", "invalid"]
    assert (
        "label 'History' is not one of the options of 'it_schema_topic' (MLflow label "
        "schema 'it_schema_topic'): Geography, Math" == rows[1]["sync_message"]
    )
    assert "score 9 is above the maximum 5 of 'it_schema_stars'" in rows[2]["sync_message"]
    first = {a["assessment_name"]: a for a in admin.assessments(ids[0])}
    assert first["it_schema_topic"]["feedback"] == {"value": "Geography"}  # the schema's spelling
    assert first["it_schema_stars"]["feedback"] == {"value": 5.0}
    # the server would accept what the schema forbids: invalid rows are not sent at all
    assert admin.assessments(ids[1]) == []
    assert admin.assessments(ids[2]) == []


class _LostResponse(requests.adapters.HTTPAdapter):
    """Sends every assessment create twice and returns the second answer: what a retry
    after a read timeout does when the first attempt had landed."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        if request.method == "POST" and (request.url or "").endswith("/assessments"):
            super().send(request, *args, **kwargs)
        return super().send(request, *args, **kwargs)


def test_a_retried_create_after_a_lost_response_does_not_duplicate(
    admin: MlflowServer, traces: list[dict[str, Any]]
) -> None:
    target = MlflowTarget(
        MlflowConfig(type="mlflow", url=admin.url, experiment=EXPERIMENT, concurrency=2),
        env=admin.credentials_env(),
    )
    target.session.mount("http://", _LostResponse())
    batch = [
        Annotation(
            row_index=i,
            name="it_retry",
            kind="MLflow trace",
            target_id=traces[i]["trace_id"],
            label="good",
            score=None,
            explanation=None,
            annotator="erin",
            annotator_kind="HUMAN",
            identifier=identifier_for("erin"),
            metadata={"row": i + 2},
        )
        for i in (10, 11)
    ]
    outcomes = target.send(batch)
    target.close()
    assert [o.status for o in outcomes] == [Status.SYNCED, Status.SYNCED]
    for a, outcome in zip(batch, outcomes, strict=True):
        [stored] = named(admin, a.target_id, "it_retry")
        assert stored["assessment_id"] == outcome.remote_id
        assert outcome.remote_id == assessment_id(a.target_id, "it_retry", a.identifier)


def test_auth_refused_is_exit_3_and_names_the_variables(
    server: MlflowServer,
    traces: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_workbook(
        tmp_path / "labels.xlsx",
        ["trace_id", "label", "explanation", "annotator"],
        [[traces[12]["trace_id"], "correct", None, "frank"]],
    )
    mapping = write_mapping(
        tmp_path, server, "", CORRECTNESS.format(name="it_auth", id_column="trace_id")
    )
    code, body, output = sync(mapping)  # no credentials at all
    assert code == 3
    assert body["error"]["type"] == "AuthRefused"
    assert "401" in body["error"]["message"]
    assert "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in body["error"]["message"]

    password = "wrong-password-never-shown-4f2c"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    code, body, output = sync(mapping)
    assert code == 3
    assert "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in body["error"]["message"]
    assert password not in output

    # a user who may read but not write: refused at the first write, 403
    reader_password = "reader-password-0123"
    server.create_user("reader", reader_password)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reader")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", reader_password)
    code, body, output = sync(mapping)
    assert code == 3
    assert "403" in body["error"]["message"]
    assert "EDIT permission on the experiment" in body["error"]["message"]
    assert reader_password not in output
    assert named(server, traces[12]["trace_id"], "it_auth") == []


def test_server_down_mid_run_keeps_what_landed_and_the_next_run_sends_the_rest(
    admin: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    chosen = traces[13:24]
    book = write_workbook(
        tmp_path / "labels.xlsx",
        ["trace_id", "label", "explanation", "annotator"],
        [[t["trace_id"], "correct", None, "gina"] for t in chosen],
    )
    mapping_path = write_mapping(
        tmp_path,
        admin,
        "  concurrency: 2",
        CORRECTNESS.format(name="it_down", id_column="trace_id"),
    )
    crashed: list[int] = []

    def crash_after_three(settled: int, total: int) -> None:
        if settled >= 3 and not crashed:
            crashed.append(settled)
            admin.kill()

    try:
        result = run(load_mapping(mapping_path), on_progress=crash_after_three)
        assert crashed
        assert result.exit_code == 1
        rows = statuses(book)
        landed = [r for r in rows if r["sync_status"] == "synced"]
        failed = [r for r in rows if r["sync_status"] == "failed"]
        assert len(landed) >= 3 and failed and len(landed) + len(failed) == len(chosen)
        assert all(
            r["sync_message"].startswith("MLflow stopped answering during the sync")
            and r["sync_message"].endswith("will retry on the next run")
            for r in failed
        )
        code, body, _ = sync(mapping_path)  # still down: nothing can be sent at all
        assert code == 3 and body["error"]["type"] == "TargetUnreachable"
        assert "cannot reach MLflow" in body["error"]["message"]
    finally:
        admin.restart()
    for r in landed:
        assert len(named(admin, r["trace_id"], "it_down")) == 1

    code, summary, _ = sync(mapping_path)
    assert code == 0, summary
    assert summary["counts"] == {
        **summary["counts"],
        "synced": len(failed),
        "unchanged": len(landed),
    }
    for t in chosen:
        assert len(named(admin, t["trace_id"], "it_down")) == 1


def test_edits_that_patch_cannot_express_replace_the_assessment_under_the_same_id(
    admin: MlflowServer, traces: list[dict[str, Any]], tmp_path: Path
) -> None:
    trace = traces[4]["trace_id"]
    write_workbook(
        tmp_path / "labels.xlsx",
        ["trace_id", "label", "explanation", "annotator"],
        [[trace, "Paris", "the capital", "judge-1"]],
    )
    spec = """  - name: it_switch
    id_column: trace_id
    label_column: label
    explanation_column: explanation
    annotator_column: annotator
    annotator_kind: {kind}
"""
    mapping = write_mapping(tmp_path, admin, "", spec.format(kind="HUMAN"))
    assert sync(mapping)[0] == 0
    [first] = named(admin, trace, "it_switch")
    assert first["source"]["source_type"] == "HUMAN"

    # the source cannot be PATCHed: MLflow would answer 200 and keep HUMAN
    write_mapping(tmp_path, admin, "", spec.format(kind="LLM"))
    code, summary, _ = sync(mapping)
    assert code == 0 and summary["counts"]["synced"] == 1
    [judged] = named(admin, trace, "it_switch")
    assert judged["source"] == {"source_type": "LLM_JUDGE", "source_id": "judge-1"}
    assert judged["assessment_id"] == first["assessment_id"]

    # feedback -> expectation: PATCH refuses (400), so it is replaced too
    write_mapping(tmp_path, admin, "  expectations: [it_switch]", spec.format(kind="LLM"))
    code, summary, _ = sync(mapping)
    assert code == 0 and summary["counts"]["synced"] == 1
    [expected] = named(admin, trace, "it_switch")
    assert expected["expectation"] == {"value": "Paris"}
    assert "feedback" not in expected
    assert expected["metadata"]["rationale"] == "the capital"
    assert expected["assessment_id"] == first["assessment_id"]
