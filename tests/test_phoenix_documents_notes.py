"""Document annotations and notes, without a server: the mapping, the rules, the payloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import MappingError
from bridge.mapping import load_mapping
from bridge.pipeline import run
from bridge.records import NOTE_EXTRA
from bridge.registry import open_target
from bridge.targets.phoenix.documents import position

SPAN = "595a6fe30fceb53c"
OTHER = "6d03a33694413224"


def document_mapping(tmp_path: Path, rows: list[str], *, note: bool = False) -> Path:
    (tmp_path / "labels.csv").write_text(
        "span_id,position,label,annotator,comment\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    path = tmp_path / "mapping.yaml"
    path.write_text(
        f"""
source: {{type: csv, path: labels.csv}}
target:
  type: phoenix
  url: http://127.0.0.1:9
  project: rag
  annotate: document
  document_position_column: position
annotations:
  - name: relevance
    id_column: span_id
    label_column: label
    annotator_column: annotator
    {"note_column: comment" if note else ""}
    rules: {{labels: [relevant, irrelevant]}}
""",
        encoding="utf-8",
    )
    return path


def issues(path: Path) -> dict[int, str]:
    result = run(load_mapping(path), send=False)
    return {i.sheet_row: i.message for i in result.issues}


def test_a_position_that_is_not_a_whole_number_from_0_is_an_invalid_row_naming_the_column(
    tmp_path: Path,
) -> None:
    path = document_mapping(
        tmp_path,
        [
            f"{SPAN},0,relevant,alice,",
            f"{SPAN},two,relevant,alice,",
            f"{SPAN},-1,relevant,alice,",
            f"{SPAN},1.5,relevant,alice,",
            f"{SPAN},,relevant,alice,",
            f"{SPAN},2,irrelevant,alice,",
        ],
    )
    found = issues(path)
    assert set(found) == {3, 4, 5, 6}
    assert found[3] == (
        "position 'two' is not a document position; give a whole number from 0 (the "
        "retriever's first document) up"
    )
    assert found[4].startswith("position '-1' is not a document position")
    assert found[5].startswith("position '1.5' is not a document position")
    assert found[6] == (
        "position is empty; give the document's position in the retriever span (0 first)"
    )


def test_one_annotator_on_two_documents_of_a_span_is_no_duplicate_but_twice_one_is(
    tmp_path: Path,
) -> None:
    path = document_mapping(
        tmp_path,
        [
            f"{SPAN},0,relevant,alice,",
            f"{SPAN},1,irrelevant,alice,",
            f"{SPAN},1,relevant,bob,",
            f"{OTHER},2,relevant,alice,",
            f"{OTHER},2,irrelevant,alice,",
        ],
    )
    found = issues(path)
    assert set(found) == {5, 6}
    assert found[5] == (
        f"row 6 labels the same span {OTHER}, position 2 for 'relevance' by the same "
        "annotator (alice); keep one of these rows"
    )


def test_the_position_is_part_of_the_row_key_and_the_payload(tmp_path: Path) -> None:
    mapping = load_mapping(document_mapping(tmp_path, [f"{SPAN},2.0,relevant,alice,x"], note=True))
    assert mapping.key_columns() == ["span_id", "annotator", "position"]
    result = run(mapping, dry_run=True)
    assert result.planned == [
        {
            "spanId": SPAN,
            "documentPosition": 2,
            "name": "relevance",
            "annotatorKind": "HUMAN",
            "label": "relevant",
            "score": None,
            "explanation": None,
            "metadata": {
                "source": "annobridge",
                "sheet": "labels.csv",
                "row": 2,
                "annotator": "alice",
            },
            "source": "API",
            "identifier": "annobridge:alice",
            "note": {
                "span_id": SPAN,
                "note": "x",
                "identifier": f"annobridge:alice:relevance:{SPAN}:2",
            },
        }
    ]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [(0, 0), (3, 3), (3.0, 3), ("4", 4), (" 5 ", 5), ("6.0", 6), (-1, None), (1.5, None),
     ("1e2", None), (True, None), (None, None), ("", None), ("x", None)],
)  # fmt: skip
def test_position_cells(cell: object, expected: int | None) -> None:
    assert position(cell) == expected


def test_document_mode_needs_the_position_column_and_the_column_needs_document_mode(
    tmp_path: Path,
) -> None:
    path = document_mapping(tmp_path, [])
    text = path.read_text()
    path.write_text(text.replace("  document_position_column: position\n", ""))
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert "annotate is document, but there is no document_position_column" in str(info.value)
    path.write_text(text.replace("annotate: document", "annotate: span"))
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert "document_position_column is set but annotate is span" in str(info.value)


def mlflow_mapping(tmp_path: Path, note: str) -> Path:
    (tmp_path / "labels.csv").write_text("trace_id,label,comment\n", encoding="utf-8")
    path = tmp_path / "mapping.yaml"
    path.write_text(
        f"""
source: {{type: csv, path: labels.csv}}
target: {{type: mlflow, url: "http://127.0.0.1:9", experiment: "1"}}
annotations:
  - name: quality
    id_column: trace_id
    label_column: label
    {note}
""",
        encoding="utf-8",
    )
    return path


def test_a_note_column_on_mlflow_is_refused_at_load_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as info:
        load_mapping(mlflow_mapping(tmp_path, "note_column: comment"))
    assert str(info.value) == (
        f"{tmp_path / 'mapping.yaml'}: annotations[0].note_column: MLflow has no "
        "notes: an assessment has one rationale (map the column as explanation_column to send "
        "it there) and a trace tag holds one value per trace, not one per annotator; remove "
        "note_column"
    )
    load_mapping(mlflow_mapping(tmp_path, ""))  # the same mapping without it loads


def test_a_note_rides_on_its_annotation_and_changes_the_row_hash(tmp_path: Path) -> None:
    path = document_mapping(tmp_path, [f"{SPAN},0,relevant,alice,see page 3"], note=True)
    mapping = load_mapping(path)
    target = open_target(mapping)
    try:
        result = run(mapping, dry_run=True, target=target)
    finally:
        target.close()
    assert result.planned[0]["note"]["note"] == "see page 3"
    from bridge.pipeline import plan
    from bridge.registry import open_source

    source = open_source(mapping)
    try:
        first = plan(mapping, source, "span", "fp")
    finally:
        source.close()
    assert first[0].annotations[0].extra[NOTE_EXTRA] == "see page 3"
    (tmp_path / "labels.csv").write_text(
        f"span_id,position,label,annotator,comment\n{SPAN},0,relevant,alice,\n", encoding="utf-8"
    )
    source = open_source(mapping)
    try:
        emptied = plan(mapping, source, "span", "fp")
    finally:
        source.close()
    assert emptied[0].annotations[0].extra[NOTE_EXTRA] == ""
    assert emptied[0].row_hash != first[0].row_hash


def test_retrieved_documents_from_flattened_or_nested_attributes() -> None:
    from bridge.records import ExportDocument
    from bridge.targets.phoenix.export import retrieved_documents

    flat = {
        "input.value": "q",
        "retrieval.documents.1.document.content": "Lyon",
        "retrieval.documents.1.document.id": "doc-lyon",
        "retrieval.documents.0.document.content": "Paris",
        "retrieval.documents.0.document.score": 0.92,
        "retrieval.documents.0.document.metadata.page": 3,
    }
    assert retrieved_documents(flat) == [
        ExportDocument(0, None, "Paris", 0.92),
        ExportDocument(1, "doc-lyon", "Lyon", None),
    ]
    nested = {"retrieval.documents": [{"document": {"id": 7, "content": "x", "score": "0.5"}}]}
    assert retrieved_documents(nested) == [ExportDocument(0, "7", "x", 0.5)]
    assert retrieved_documents({"input.value": "q"}) == []


def test_export_plans_one_row_per_document_and_cuts_long_content() -> None:
    from bridge.exporting import plan_export
    from bridge.records import ExportDocument, ExportRecord

    records = [
        ExportRecord(SPAN, input="q", document=ExportDocument(n, f"d{n}", text, 0.5))
        for n, text in enumerate(["short", "y" * 500, "=1+1"])
    ]
    records.append(records[0])  # the same document twice: one row
    plan = plan_export(
        records,
        {OTHER},
        id_column="span_id",
        names=["relevance"],
        limit=None,
        cell_limit=200,
        position_column="position",
    )
    assert [(r["span_id"], r["position"], r["document_id"]) for r in plan.rows] == [
        (SPAN, "0", "d0"),
        (SPAN, "1", "d1"),
        (SPAN, "2", "d2"),
    ]
    assert plan.rows[0]["input"] == "q" and plan.rows[0]["retriever_score"] == "0.5"
    assert "output" not in plan.rows[0]
    assert len(plan.rows[1]["document"]) == 200
    assert plan.rows[1]["document"].endswith("the full text is on the platform]")
    assert [(t.record_id, t.column, t.length) for t in plan.truncated] == [(SPAN, "document", 500)]
    assert plan.rows[2]["document"] == "'=1+1"  # never a formula


def test_dry_run_shows_the_note_an_emptied_cell_deletes(tmp_path: Path) -> None:
    path = document_mapping(tmp_path, [], note=True)
    (tmp_path / "labels.csv").write_text(
        "span_id,position,label,annotator,comment,sync_status,sync_hash\n"
        f"{SPAN},1,relevant,alice,,synced,0123456789abcdef\n"
        f"{OTHER},0,relevant,alice,,,\n",
        encoding="utf-8",
    )
    planned = run(load_mapping(path), dry_run=True).planned
    assert planned[0]["note"] == {"delete": f"annobridge:alice:relevance:{SPAN}:1"}
    assert "note" not in planned[1]  # never synced: no note to delete
