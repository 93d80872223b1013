"""End to end on a real Phoenix: sync a workbook, then read back through Phoenix's REST API."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from bridge.cli import app
from tests.servers import PhoenixServer

pytestmark = pytest.mark.phoenix

HEADER = ["span_id", "question", "label", "score", "explanation", "annotator"]
runner = CliRunner()


def write_workbook(path: Path, rows: list[list[Any]], header: list[str] = HEADER) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Labels"
    ws.append(header)
    for row in rows:
        ws.append(row)
    book.save(path)
    return path


def write_mapping(
    directory: Path,
    server: PhoenixServer,
    name: str,
    *,
    annotate: str = "span",
    id_column: str = "span_id",
    workbook: str = "labels.xlsx",
    url: str | None = None,
    labels: tuple[str, ...] = ("correct", "incorrect"),
) -> Path:
    path = directory / "mapping.yaml"
    path.write_text(
        f"""
source:
  type: excel
  path: {workbook}
  worksheet: Labels
target:
  type: phoenix
  url: {url or server.url}
  annotate: {annotate}
  project: tests
annotations:
  - name: {name}
    id_column: {id_column}
    label_column: label
    score_column: score
    explanation_column: explanation
    annotator_column: annotator
    rules:
      labels: [{", ".join(labels)}]
      score_min: 0
      score_max: 1
"""
    )
    return path


def sync(mapping: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["sync", str(mapping), "--json", *extra])
    assert result.stdout.strip(), result.stderr
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def statuses(path: Path) -> list[dict[str, Any]]:
    ws = openpyxl.load_workbook(path)["Labels"]
    rows = list(ws.iter_rows(values_only=True))
    header = [str(h) for h in rows[0]]
    return [dict(zip(header, r, strict=False)) for r in rows[1:]]


def landed(server: PhoenixServer, span_ids: list[str], name: str) -> list[dict[str, Any]]:
    return [a for a in server.span_annotations(span_ids, project="tests") if a["name"] == name]


def test_sync_lands_every_valid_row_and_reports_the_rest(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    spans = [s["span_id"] for s in seeded_spans[:6]]
    book = write_workbook(
        tmp_path / "labels.xlsx",
        [
            [spans[0], "q0", "correct", 1, "right answer", "alice"],
            [spans[1], "q1", " Incorrect ", 0, "wrong planet", "alice"],
            [spans[2], "q2", "incorrect", None, None, "bob"],
            ["deadbeefdeadbeef", "q?", "correct", 1, None, "bob"],  # no such span
            [spans[3], "q3", "maybe", 0.5, None, "bob"],  # label not allowed
            [spans[4], "q4", None, None, None, "bob"],  # not labelled yet
        ],
    )
    mapping = write_mapping(tmp_path, phoenix, "e2e_correctness")

    code, summary = sync(mapping)

    assert code == 1
    assert summary["counts"]["synced"] == 3
    assert summary["counts"]["rejected"] == 1
    assert summary["counts"]["invalid"] == 1
    assert summary["counts"]["skipped"] == 1
    got = {a["span_id"]: a for a in landed(phoenix, spans, "e2e_correctness")}
    assert set(got) == {spans[0], spans[1], spans[2]}
    assert got[spans[0]]["result"] == {
        "label": "correct",
        "score": 1.0,
        "explanation": "right answer",
    }
    assert got[spans[1]]["result"]["label"] == "incorrect"  # trimmed and case-folded
    assert got[spans[2]]["result"] == {"label": "incorrect", "score": None, "explanation": None}
    assert got[spans[0]]["annotator_kind"] == "HUMAN"
    assert got[spans[0]]["identifier"] == "annobridge:alice"
    assert got[spans[0]]["metadata"] == {
        "source": "annobridge",
        "sheet": "labels.xlsx/Labels",
        "row": 2,
        "annotator": "alice",
    }
    rows = statuses(book)
    assert [r["sync_status"] for r in rows] == [
        "synced",
        "synced",
        "synced",
        "rejected",
        "invalid",
        "skipped",
    ]
    assert rows[0]["sync_id"] == got[spans[0]]["id"]
    assert "no span 'deadbeefdeadbeef'" in rows[3]["sync_message"]
    assert rows[4]["sync_message"] == "label 'maybe' is not one of: correct, incorrect"


def test_rerun_sends_nothing_and_an_edit_updates_in_place(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    spans = [s["span_id"] for s in seeded_spans[6:10]]
    book = write_workbook(
        tmp_path / "labels.xlsx",
        [[s, "q", "correct", 1, f"ok {i}", "carol"] for i, s in enumerate(spans)],
    )
    mapping = write_mapping(tmp_path, phoenix, "e2e_rerun")
    assert sync(mapping)[0] == 0
    first = {a["span_id"]: a for a in landed(phoenix, spans, "e2e_rerun")}
    assert len(first) == 4

    code, summary = sync(mapping)
    assert code == 0
    assert summary["annotations_sent"] == 0
    assert summary["counts"]["unchanged"] == 4
    assert summary["statuses_written"] == 0

    ws_book = openpyxl.load_workbook(book)
    ws_book["Labels"]["C3"] = "incorrect"  # the SME changes their mind on the second row
    ws_book.save(book)
    code, summary = sync(mapping)
    assert code == 0
    assert summary["annotations_sent"] == 1
    after = {a["span_id"]: a for a in landed(phoenix, spans, "e2e_rerun")}
    assert len(after) == 4  # updated, not added
    assert after[spans[1]]["id"] == first[spans[1]]["id"]
    assert after[spans[1]]["result"]["label"] == "incorrect"
    assert after[spans[0]]["updated_at"] == first[spans[0]]["updated_at"]


def test_two_annotators_of_one_span_keep_two_annotations(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    span = seeded_spans[10]["span_id"]
    write_workbook(
        tmp_path / "labels.xlsx",
        [[span, "q", "correct", 1, None, "alice"], [span, "q", "incorrect", 0, None, "bob"]],
    )
    assert sync(write_mapping(tmp_path, phoenix, "e2e_two_annotators"))[0] == 0
    got = landed(phoenix, [span], "e2e_two_annotators")
    assert sorted((a["identifier"], a["result"]["label"]) for a in got) == [
        ("annobridge:alice", "correct"),
        ("annobridge:bob", "incorrect"),
    ]


def test_a_blank_annotator_is_refused_and_filling_it_in_lands_one_annotation(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    span = seeded_spans[11]["span_id"]
    book = write_workbook(tmp_path / "labels.xlsx", [[span, "q", "correct", 1, None, None]])
    mapping = write_mapping(tmp_path, phoenix, "e2e_blank_annotator")
    code, summary = sync(mapping)
    assert code == 1 and summary["counts"]["invalid"] == 1 and summary["annotations_sent"] == 0
    assert summary["issues"][0]["message"].startswith("annotator is empty: type the annotator")
    assert landed(phoenix, [span], "e2e_blank_annotator") == []  # not sent as "annobridge"

    ws_book = openpyxl.load_workbook(book)
    ws_book["Labels"]["F2"] = "dana"  # the SME types their name
    ws_book.save(book)
    code, summary = sync(mapping)
    assert code == 0 and summary["counts"]["synced"] == 1
    got = landed(phoenix, [span], "e2e_blank_annotator")
    assert [(a["identifier"], a["result"]["label"]) for a in got] == [
        ("annobridge:dana", "correct")
    ]


@pytest.mark.parametrize("annotate", ["trace", "session"])
def test_trace_and_session_annotations(
    annotate: str, phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    column = f"{annotate}_id"
    known = seeded_spans[12][column]
    unknown = "f" * 32 if annotate == "trace" else "no-such-session"
    book = write_workbook(
        tmp_path / "labels.xlsx",
        [[known, "q", "correct", 1, "fine", "dave"], [unknown, "q", "correct", 1, None, "dave"]],
        header=[column, *HEADER[1:]],
    )
    mapping = write_mapping(
        tmp_path, phoenix, f"e2e_{annotate}", annotate=annotate, id_column=column
    )
    code, summary = sync(mapping)
    assert code == 1
    assert summary["counts"]["synced"] == 1 and summary["counts"]["rejected"] == 1
    rows = statuses(book)
    assert rows[1]["sync_message"].startswith(f"Phoenix has no {annotate} '{unknown}'")
    plural = f"{annotate}_annotations"
    body = phoenix.get(f"/v1/projects/tests/{plural}?{annotate}_ids={known}&limit=100")
    mine = [a for a in body["data"] if a["name"] == f"e2e_{annotate}"]
    assert len(mine) == 1 and mine[0]["result"]["label"] == "correct"
    assert rows[0]["sync_id"] == mine[0]["id"]


def test_unreachable_server_exits_3_and_changes_nothing(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    from tests.servers import free_port

    book = write_workbook(
        tmp_path / "labels.xlsx", [[seeded_spans[13]["span_id"], "q", "correct", 1, None, "e"]]
    )
    before = book.read_bytes()
    mapping = write_mapping(tmp_path, phoenix, "e2e_down", url=f"http://127.0.0.1:{free_port()}")
    result = runner.invoke(app, ["sync", str(mapping)])
    assert result.exit_code == 3
    assert "cannot reach Phoenix at http://127.0.0.1:" in result.stderr
    assert "Traceback" not in result.output
    assert book.read_bytes() == before


def test_a_large_sheet_goes_through_the_confirmed_fast_path(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    """All 80 seeded spans (roots and LLM children) in one sync, read back one by one."""
    spans = [s["span_id"] for s in seeded_spans] + [s["llm_span_id"] for s in seeded_spans]
    rows = [
        [s, "q", ("correct", "incorrect")[i % 2], (i % 10) / 10, None, "fast"]
        for i, s in enumerate(spans)
    ]
    book = write_workbook(tmp_path / "labels.xlsx", rows)
    code, summary = sync(write_mapping(tmp_path, phoenix, "e2e_bulk"))
    assert code == 0, summary
    assert summary["counts"]["synced"] == len(spans)
    got = {a["span_id"]: a for a in landed(phoenix, spans, "e2e_bulk")}
    assert len(got) == len(spans)
    for i, s in enumerate(spans):
        assert got[s]["result"]["label"] == ("correct", "incorrect")[i % 2]
        assert got[s]["result"]["score"] == pytest.approx((i % 10) / 10)
    assert {r["sync_id"] for r in statuses(book)} == {a["id"] for a in got.values()}


ADMIN_SECRET = "integration-admin-secret-0123456789abc"


@pytest.fixture(scope="module")
def phoenix_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    server = PhoenixServer(
        tmp_path_factory.mktemp("phoenix-auth"),
        env={
            "PHOENIX_ENABLE_AUTH": "true",
            "PHOENIX_SECRET": "integration-secret-0123456789abcdefgh",
            "PHOENIX_ADMIN_SECRET": ADMIN_SECRET,
        },
    ).start()
    try:
        yield server
    finally:
        server.stop()


def test_auth_uses_phoenix_api_key_and_never_prints_it(
    phoenix_with_auth: PhoenixServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = phoenix_with_auth
    request = urllib.request.Request(
        f"{server.url}/v1/system/api_keys",
        data=json.dumps({"data": {"name": "annobridge-test"}}).encode(),
        headers={"Authorization": f"Bearer {ADMIN_SECRET}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        key = json.load(r)["data"]["key"]
    spans = server.seed(tmp_path / "spans.json", project="tests", count=2, seed=5, api_key=key)
    book = write_workbook(
        tmp_path / "labels.xlsx", [[spans[0]["span_id"], "q", "correct", 1, None, "alice"]]
    )
    mapping = write_mapping(tmp_path, server, "e2e_auth")
    before = book.read_bytes()

    refused = runner.invoke(app, ["sync", str(mapping)])
    assert refused.exit_code == 3
    assert "Phoenix refused the request (401" in refused.stderr
    assert "set PHOENIX_API_KEY" in refused.stderr
    assert book.read_bytes() == before

    monkeypatch.setenv("PHOENIX_API_KEY", "wrong-" + key[:8])
    assert runner.invoke(app, ["sync", str(mapping)]).exit_code == 3

    monkeypatch.setenv("PHOENIX_API_KEY", key)
    code, summary = sync(mapping)
    assert code == 0 and summary["counts"]["synced"] == 1
    assert key not in json.dumps(summary)
    got = server.span_annotations([spans[0]["span_id"]], project="tests", token=key)
    assert [a["result"]["label"] for a in got if a["name"] == "e2e_auth"] == ["correct"]
    for cell in openpyxl.load_workbook(book)["Labels"].iter_rows(values_only=True):
        assert all(key not in str(v) for v in cell)
