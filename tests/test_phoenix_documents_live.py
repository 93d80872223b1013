"""Document annotations and notes on a real Phoenix: sync, read back, edit, rerun.

Retriever spans are seeded through OpenTelemetry with OpenInference ``retrieval.documents``
attributes (``retriever_spans`` in conftest.py); document annotations are read back over
GraphQL (Phoenix has no REST read for them), notes over REST (they are annotations named
``note``).
"""

from __future__ import annotations

import csv
import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from bridge.cli import app
from tests.builders import sheet_records
from tests.servers import PhoenixServer

pytestmark = pytest.mark.phoenix
runner = CliRunner()

HEADER = ["span_id", "position", "label", "score", "annotator", "comment"]


def write_rows(path: Path, rows: list[list[Any]], header: list[str] = HEADER) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_mapping(
    directory: Path, server: PhoenixServer, name: str, *, annotate: str = "document"
) -> Path:
    position = "  document_position_column: position\n" if annotate == "document" else ""
    path = directory / "mapping.yaml"
    path.write_text(
        f"""
source: {{type: csv, path: labels.csv}}
target:
  type: phoenix
  url: {server.url}
  project: rag
  annotate: {annotate}
{position}annotations:
  - name: {name}
    id_column: span_id
    label_column: label
    score_column: score
    annotator_column: annotator
    note_column: comment
    rules: {{labels: [relevant, irrelevant], score_min: 0, score_max: 1}}
state_dir: state
""",
        encoding="utf-8",
    )
    return path


def sync(mapping: Path) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["sync", str(mapping), "--json"])
    assert result.stdout.strip(), result.stderr
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def documents(server: PhoenixServer, span_id: str, name: str) -> dict[tuple[int, str], Any]:
    """The document annotations named ``name`` on one span: (position, identifier) -> row."""
    query = (
        "query($s:String!){ getSpanByOtelId(spanId:$s){ documentEvaluations{ id name label "
        "score documentPosition identifier } } }"
    )
    body = json.dumps({"query": query, "variables": {"s": span_id}}).encode()
    request = urllib.request.Request(
        f"{server.url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        data = json.load(r)["data"]["getSpanByOtelId"]
    return {
        (row["documentPosition"], row["identifier"]): row
        for row in data["documentEvaluations"]
        if row["name"] == name
    }


def notes(server: PhoenixServer, kind: str, ids: list[str]) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode([(f"{kind}_ids", i) for i in ids] + [("limit", "1000")])
    body = server.get(f"/v1/projects/rag/{kind}_annotations?{query}")
    return [a for a in body["data"] if a["name"] == "note"]


def test_two_annotators_on_one_document_edit_one_and_rerun(
    phoenix: PhoenixServer, retriever_spans: list[dict[str, Any]], tmp_path: Path
) -> None:
    span = retriever_spans[0]["retriever_span_id"]
    other = retriever_spans[1]["retriever_span_id"]
    book = tmp_path / "labels.csv"
    write_rows(
        book,
        [
            [span, 0, "relevant", 1, "alice", ""],
            [span, 0, "irrelevant", 0, "bob", ""],
            [span, 2, "irrelevant", 0, "alice", ""],
            [other, 3, "relevant", 1, "alice", ""],  # the span has 3 documents: 0, 1, 2
            ["deadbeefdeadbeef", 0, "relevant", 1, "alice", ""],
            [other, "first", "relevant", 1, "alice", ""],
        ],
    )
    mapping = write_mapping(tmp_path, phoenix, "doc_relevance")

    code, summary = sync(mapping)

    assert code == 1
    assert summary["counts"]["synced"] == 3
    assert summary["counts"]["rejected"] == 2
    assert summary["counts"]["invalid"] == 1
    messages = {i["sheet_row"]: i["message"] for i in summary["issues"]}
    assert messages[5] == (
        f"Phoenix: Document position 3 is out of bounds for span {other} (num_documents: 3); "
        "positions start at 0: fix position"
    )
    assert messages[6].startswith("Phoenix has no span 'deadbeefdeadbeef' in project 'rag'")
    assert messages[7].startswith("position 'first' is not a document position")
    held = documents(phoenix, span, "doc_relevance")
    assert {k: (v["label"], v["score"]) for k, v in held.items()} == {
        (0, "annobridge:alice"): ("relevant", 1.0),
        (0, "annobridge:bob"): ("irrelevant", 0.0),
        (2, "annobridge:alice"): ("irrelevant", 0.0),
    }
    assert documents(phoenix, other, "doc_relevance") == {}
    rows = read_rows(book)
    assert [r["sync_status"] for r in rows[:3]] == ["synced"] * 3
    assert rows[0]["sync_id"] == held[(0, "annobridge:alice")]["id"]

    # alice changes her mind about document 0; bob's annotation of it stays as it is
    rows[0]["label"], rows[0]["score"] = "irrelevant", "0"
    write_rows(book, [[r[h] for h in rows[0]] for r in rows], header=list(rows[0]))
    code, summary = sync(mapping)
    assert summary["annotations_sent"] == 3  # alice's edit and the two rejected rows again
    after = documents(phoenix, span, "doc_relevance")
    assert after[(0, "annobridge:alice")]["label"] == "irrelevant"
    assert after[(0, "annobridge:alice")]["id"] == held[(0, "annobridge:alice")]["id"]
    assert after[(0, "annobridge:bob")] == held[(0, "annobridge:bob")]
    assert len(after) == 3

    # the rows Phoenix refused are dropped: a rerun sends nothing
    rows = read_rows(book)
    write_rows(book, [[r[h] for h in rows[0]] for r in rows[:3]], header=list(rows[0]))
    code, summary = sync(mapping)
    assert code == 0
    assert summary["annotations_sent"] == 0
    assert summary["counts"]["unchanged"] == 3
    assert documents(phoenix, span, "doc_relevance") == after


def test_a_note_is_sent_once_upserted_when_edited_and_deleted_when_emptied(
    phoenix: PhoenixServer, retriever_spans: list[dict[str, Any]], tmp_path: Path
) -> None:
    spans = [r["span_id"] for r in retriever_spans[:2]]
    book = tmp_path / "labels.csv"
    header = ["span_id", "label", "score", "annotator", "comment"]
    write_rows(
        book,
        [
            [spans[0], "relevant", 1, "alice", "the answer cites the wrong year"],
            [spans[0], "irrelevant", 0, "bob", "agree with alice"],
            [spans[1], "relevant", 1, "alice", ""],
        ],
        header=header,
    )
    mapping = write_mapping(tmp_path, phoenix, "span_quality", annotate="span")
    # a note somebody else wrote in Phoenix's UI: never touched
    request = urllib.request.Request(
        f"{phoenix.url}/v1/span_notes",
        data=json.dumps({"data": {"span_id": spans[0], "note": "from the app"}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=30).close()

    code, summary = sync(mapping)
    assert code == 0, summary
    ours = f"annobridge:alice:span_quality:{spans[0]}"
    held = {n["identifier"]: n for n in notes(phoenix, "span", spans)}
    assert {k: v["result"]["explanation"] for k, v in held.items() if k.startswith("annob")} == {
        ours: "the answer cites the wrong year",
        f"annobridge:bob:span_quality:{spans[0]}": "agree with alice",
    }
    assert len(held) == 3  # and the app's own note

    code, summary = sync(mapping)  # a rerun adds no note
    assert summary["annotations_sent"] == 0
    assert len(notes(phoenix, "span", spans)) == 3

    rows = read_rows(book)
    rows[0]["comment"] = "the answer cites the wrong year (1812, not 1813)"
    rows[1]["comment"] = ""
    write_rows(book, [list(r.values()) for r in rows], header=list(rows[0]))
    code, summary = sync(mapping)
    assert code == 0, summary
    assert summary["annotations_sent"] == 2
    after = {n["identifier"]: n for n in notes(phoenix, "span", spans)}
    assert after[ours]["id"] == held[ours]["id"]  # upserted in place
    assert (
        after[ours]["result"]["explanation"] == "the answer cites the wrong year (1812, not 1813)"
    )
    assert f"annobridge:bob:span_quality:{spans[0]}" not in after  # bob emptied his
    assert len(after) == 2


def test_a_note_on_a_document_annotation_goes_on_its_span(
    phoenix: PhoenixServer, retriever_spans: list[dict[str, Any]], tmp_path: Path
) -> None:
    span = retriever_spans[2]["retriever_span_id"]
    write_rows(tmp_path / "labels.csv", [[span, 1, "irrelevant", 0, "carol", "off topic"]])
    mapping = write_mapping(tmp_path, phoenix, "doc_note")
    code, summary = sync(mapping)
    assert code == 0, summary
    held = notes(phoenix, "span", [span])
    assert [(n["identifier"], n["result"]["explanation"]) for n in held] == [
        (f"annobridge:carol:doc_note:{span}:1", "off topic")
    ]


def test_export_of_retriever_spans_one_row_per_document_then_label_sync_read_back(
    phoenix: PhoenixServer, retriever_spans: list[dict[str, Any]], tmp_path: Path
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target:
  type: phoenix
  url: {phoenix.url}
  project: rag
  annotate: document
  document_position_column: position
annotations:
  - name: doc_export
    id_column: span_id
    label_column: label
    annotator_column: annotator
    rules: {{labels: [relevant, irrelevant]}}
state_dir: state
""",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["export", str(mapping), "--json"])
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.exit_code == 0, summary
    rows = sheet_records(tmp_path / "labels.xlsx")
    seeded = {r["retriever_span_id"]: r for r in retriever_spans}
    assert summary["appended"] == len(rows) == 3 * len(seeded)
    assert list(rows[0])[:6] == [
        "span_id", "position", "input", "document", "document_id", "retriever_score",
    ]  # fmt: skip
    got = {(r["span_id"], r["position"]): r for r in rows}
    for span, record in seeded.items():
        for n, doc in enumerate(record["documents"]):
            row = got[(span, str(n))]
            assert row["input"] == record["question"]
            assert row["document"] == doc["content"]
            assert row["document_id"] == doc["id"]
            assert float(row["retriever_score"]) == doc["score"]
            assert f"/traces/{record['trace_id']}" in row["link"]
    assert not {r["span_id"] for r in retriever_spans} & {r["span_id"] for r in rows}

    # the SME marks the document that holds the answer relevant, the others irrelevant
    wb = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    ws = wb["Labels"]
    col = {c.value: c.column for c in ws[1]}
    for r in range(2, ws.max_row + 1):
        first = ws.cell(r, col["position"]).value == "0"
        ws.cell(r, col["label"]).value = "relevant" if first else "irrelevant"
        ws.cell(r, col["annotator"]).value = "dana"
    wb.save(tmp_path / "labels.xlsx")
    code, synced = sync(mapping)
    assert code == 0, synced
    assert synced["counts"]["synced"] == len(rows)
    span = next(iter(seeded))
    held = documents(phoenix, span, "doc_export")
    assert {k: v["label"] for k, v in held.items()} == {
        (0, "annobridge:dana"): "relevant",
        (1, "annobridge:dana"): "irrelevant",
        (2, "annobridge:dana"): "irrelevant",
    }
    # exported again: every document is in the sheet (and labelled): nothing is added
    result = runner.invoke(app, ["export", str(mapping), "--json"])
    again = json.loads(result.stdout.strip().splitlines()[-1])
    assert again["appended"] == 0
    assert again["skipped"]["in_sheet"] == len(rows)
    # into a fresh sheet: every document already holds a human's doc_export: none is added
    (tmp_path / "labels.xlsx").unlink()
    result = runner.invoke(app, ["export", str(mapping), "--json"])
    fresh = json.loads(result.stdout.strip().splitlines()[-1])
    assert fresh["appended"] == 0
    assert fresh["skipped"]["annotated"] == len(rows)


def test_trace_notes_upsert_and_go_when_emptied(
    phoenix: PhoenixServer, retriever_spans: list[dict[str, Any]], tmp_path: Path
) -> None:
    trace = retriever_spans[3]["trace_id"]
    header = ["span_id", "label", "score", "annotator", "comment"]  # span_id holds trace ids
    book = tmp_path / "labels.csv"
    write_rows(book, [[trace, "relevant", 1, "erin", "v1"]], header=header)
    mapping = write_mapping(tmp_path, phoenix, "trace_quality", annotate="trace")
    assert sync(mapping)[0] == 0
    first = notes(phoenix, "trace", [trace])
    assert [(n["identifier"], n["result"]["explanation"]) for n in first] == [
        (f"annobridge:erin:trace_quality:{trace}", "v1")
    ]
    rows = read_rows(book)
    rows[0]["comment"] = "v2"
    write_rows(book, [list(r.values()) for r in rows], header=list(rows[0]))
    assert sync(mapping)[0] == 0
    second = notes(phoenix, "trace", [trace])
    assert [(n["id"], n["result"]["explanation"]) for n in second] == [(first[0]["id"], "v2")]
    rows = read_rows(book)
    rows[0]["comment"] = ""
    write_rows(book, [list(r.values()) for r in rows], header=list(rows[0]))
    code, summary = sync(mapping)
    assert code == 0 and summary["annotations_sent"] == 1
    assert notes(phoenix, "trace", [trace]) == []
