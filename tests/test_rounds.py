"""Labelling rounds on a workbook: agreement from the sheet, the judge, the owned tabs, and
export with assignment. The figures here are worked out by hand in the comments."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bridge.errors import ConfigError, SourceError
from bridge.exporting import export
from bridge.mapping import load_mapping
from bridge.records import ExportQuery, ExportRecord, JudgeLabel
from bridge.rounds import measure
from tests.builders import make_book, span

MAPPING = """
source:
  type: excel
  path: labels.xlsx
  worksheet: Labels
target:
  type: phoenix
  url: http://127.0.0.1:9
  project: p
annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    score_column: score
    explanation_column: explanation
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
      score_min: 0
      score_max: 1
"""

# Four records, three SMEs. s1: all say correct; s2: alice and bob correct, carol incorrect;
# s3: alice incorrect, bob incorrect; s4: only alice. One row with a label outside the rules.
ROWS = [
    [span(1), "correct", 1, "", "alice"],
    [span(1), "correct", 1, "", "bob"],
    [span(1), "correct", 1, "", "carol"],
    [span(2), "correct", 1, "", "alice"],
    [span(2), "correct", 0.5, "", "bob"],
    [span(2), "incorrect", 0, "", "carol"],
    [span(3), "incorrect", 0, "", "alice"],
    [span(3), "incorrect", 0, "", "bob"],
    [span(4), "correct", 1, "", "alice"],
    [span(5), "maybe", None, "", "bob"],
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    make_book(tmp_path / "labels.xlsx", ROWS)
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    return tmp_path


def sme_cells(path: Path) -> list[tuple[Any, ...]]:
    book = openpyxl.load_workbook(path)
    return [tuple(r) for r in book["Labels"].iter_rows(values_only=True)]


def test_agreement_from_the_sheet_with_the_tabs_written(project: Path) -> None:
    before = sme_cells(project / "labels.xlsx")
    result = measure(load_mapping(project / "m.yaml"))
    assert result.exit_code == 0
    assert result.rows == 10 and result.left_out == Counter({"invalid": 1})
    (figures,) = result.results
    assert figures.records == 4 and figures.records_with_overlap == 3
    assert figures.annotators == ("alice", "bob", "carol")
    # percent agreement: s1 3/3 pairs agree, s2 1/3 (alice-bob), s3 1/1 -> (1 + 1/3 + 1) / 3
    assert figures.labels is not None
    assert figures.labels.percent.value == pytest.approx((1 + 1 / 3 + 1) / 3)
    assert figures.labels.percent.records == 3
    # only s2 is disputed, with carol's label against the majority
    (disputed,) = [d for d in figures.disagreements if d.labels.count(d.labels[0]) != 3]
    assert disputed.record_id == span(2)
    assert sorted(zip(disputed.annotators, disputed.labels, strict=True)) == [
        ("alice", "correct"),
        ("bob", "correct"),
        ("carol", "incorrect"),
    ]
    assert result.tabs_written == ["Agreement", "Disagreements"]
    book = openpyxl.load_workbook(project / "labels.xlsx")
    assert book.sheetnames == ["Labels", "Agreement", "Disagreements"]
    assert sme_cells(project / "labels.xlsx") == before  # the SMEs' tab is untouched
    agreement_tab = [r for r in book["Agreement"].iter_rows(values_only=True)]
    assert agreement_tab[0][0] is not None and len(agreement_tab) > 1
    disputes = [r for r in book["Disagreements"].iter_rows(values_only=True)]
    assert any(span(2) in [str(c) for c in row] for row in disputes[1:])
    assert not any(span(1) in [str(c) for c in row] for row in disputes[1:])
    for ws in (book["Agreement"], book["Disagreements"]):
        for row in ws.iter_rows():
            for cell in row:
                assert not (isinstance(cell.value, str) and cell.value.startswith("="))

    again = measure(load_mapping(project / "m.yaml"))  # the tabs are replaced, not added
    assert again.tabs_written == ["Agreement", "Disagreements"]
    book2 = openpyxl.load_workbook(project / "labels.xlsx")
    assert book2.sheetnames == ["Labels", "Agreement", "Disagreements"]
    assert [r for r in book2["Agreement"].iter_rows(values_only=True)] == agreement_tab


def test_no_write_leaves_the_workbook_alone(project: Path) -> None:
    before = (project / "labels.xlsx").read_bytes()
    result = measure(load_mapping(project / "m.yaml"), write_tabs=False)
    assert result.tabs_written == []
    assert (project / "labels.xlsx").read_bytes() == before


def test_no_annotator_column_names_the_key_to_add(project: Path) -> None:
    (project / "m.yaml").write_text(
        MAPPING.replace("    annotator_column: annotator\n", ""), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"annotations\[0\].*add annotator_column"):
        measure(load_mapping(project / "m.yaml"))


def test_one_annotator_only_gives_figures_not_defined_with_why(tmp_path: Path) -> None:
    make_book(tmp_path / "labels.xlsx", [r for r in ROWS if r[4] == "alice"])
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    result = measure(load_mapping(tmp_path / "m.yaml"), write_tabs=False)
    assert result.exit_code == 0
    (figures,) = result.results
    assert figures.labels is not None
    assert figures.labels.alpha.value is None and figures.labels.alpha.reason


def test_a_tab_of_that_name_made_by_the_smes_is_not_overwritten(project: Path) -> None:
    book = openpyxl.load_workbook(project / "labels.xlsx")
    book.create_sheet("Agreement")["A1"] = "our own notes"
    book.save(project / "labels.xlsx")
    with pytest.raises(SourceError, match="tab 'Agreement' that annobridge did not write"):
        measure(load_mapping(project / "m.yaml"))
    assert openpyxl.load_workbook(project / "labels.xlsx")["Agreement"]["A1"].value == (
        "our own notes"
    )


def test_a_csv_cannot_hold_the_tabs_unless_no_write(tmp_path: Path) -> None:
    rows = "\n".join(",".join(str(c) for c in r) for r in ROWS[:6])
    (tmp_path / "labels.csv").write_text(
        "span_id,label,score,explanation,annotator\n" + rows + "\n", encoding="utf-8"
    )
    text = MAPPING.replace(
        "  type: excel\n  path: labels.xlsx\n  worksheet: Labels\n",
        "  type: csv\n  path: labels.csv\n",
    )
    (tmp_path / "m.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="--no-write"):
        measure(load_mapping(tmp_path / "m.yaml"))
    assert measure(load_mapping(tmp_path / "m.yaml"), write_tabs=False).results


def test_a_report_of_another_kind_is_refused_before_reading(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.html or a \.png"):
        measure(load_mapping(project / "m.yaml"), report=project / "r.pdf")


def test_an_html_report(project: Path) -> None:
    result = measure(load_mapping(project / "m.yaml"), report=project / "r.html")
    text = (project / "r.html").read_text(encoding="utf-8")
    assert result.report == str(project / "r.html")
    assert "correctness" in text and "data:image/png;base64," in text


class Judge:
    """A platform that holds an LLM judge's labels."""

    name = "judge-platform"
    kind = "span"

    def __init__(self, labels: dict[str, JudgeLabel]) -> None:
        self.labels = labels
        self.asked: list[tuple[str, list[str]]] = []

    def judge_annotations(self, name: str, record_ids: Sequence[str]) -> dict[str, JudgeLabel]:
        self.asked.append((name, list(record_ids)))
        return {r: self.labels[r] for r in record_ids if r in self.labels}

    def close(self) -> None:
        pass


def test_the_judge_against_the_human_majority(project: Path) -> None:
    judge = Judge(
        {
            span(1): JudgeLabel(span(1), "correct", None, "fine"),
            span(2): JudgeLabel(span(2), "incorrect", None, "wrong number"),
            span(3): JudgeLabel(span(3), "incorrect", None, ""),
        }
    )
    result = measure(
        load_mapping(project / "m.yaml"), judge="correctness", write_tabs=False, target=judge
    )  # type: ignore[arg-type]
    assert judge.asked == [("correctness", [span(1), span(2), span(3), span(4)])]
    human, versus = result.results
    # majorities: s1 correct, s2 correct (2 of 3), s3 incorrect, s4 correct (alice alone);
    # the judge agrees on s1 and s3, disagrees on s2, has no verdict on s4: accuracy 2/3
    assert versus.compared == 3 and versus.without_verdict == 1
    assert versus.accuracy.value == pytest.approx(2 / 3)
    (wrong,) = versus.disagreements
    assert (wrong.record_id, wrong.human_label, wrong.judge_label) == (
        span(2),
        "correct",
        "incorrect",
    )
    assert wrong.explanation == "wrong number"
    assert result.exit_code == 0


def test_a_judge_with_no_annotations_says_so_and_exits_1(project: Path) -> None:
    result = measure(
        load_mapping(project / "m.yaml"), judge="correctness", write_tabs=False, target=Judge({})
    )  # type: ignore[arg-type]
    assert result.exit_code == 1
    assert "no LLM annotation named 'correctness'" in result.messages[0]


def test_a_platform_that_cannot_read_judges_is_refused(project: Path) -> None:
    class Blind:
        name = "blind"

        def close(self) -> None:
            pass

    with pytest.raises(ConfigError, match="cannot read LLM annotations back from blind"):
        measure(load_mapping(project / "m.yaml"), judge="x", write_tabs=False, target=Blind())  # type: ignore[arg-type]


class Records:
    name = "records"

    def __init__(self, n: int) -> None:
        self.n = n

    def fingerprint(self) -> str:
        return "records|x"

    def export_records(self, query: ExportQuery) -> Iterator[ExportRecord]:
        for i in range(1, self.n + 1):
            yield ExportRecord(span(i), input=f"q{i}", output=f"a{i}")

    def close(self) -> None:
        pass


def test_export_assigns_each_record_to_two_smes_balanced_and_keeps_old_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    mapping = load_mapping(tmp_path / "m.yaml")
    smes = ["alice", "bob", "carol"]
    first = export(mapping, target=Records(5), assign=smes, per_record=2)  # type: ignore[arg-type]
    assert first.appended == 10
    assert sorted(first.assigned.values()) in ([3, 3, 4], [3, 4, 3], [4, 3, 3])
    assert max(first.assigned.values()) - min(first.assigned.values()) <= 1
    ws = openpyxl.load_workbook(tmp_path / "labels.xlsx")["Labels"]
    header = [c.value for c in ws[1]]
    id_col, who_col = header.index("span_id"), header.index("annotator")
    rows = [(r[id_col], r[who_col]) for r in ws.iter_rows(min_row=2, values_only=True)]
    by_record: dict[str, set[str]] = {}
    for rid, who in rows:
        by_record.setdefault(rid, set()).add(who)
    assert all(len(v) == 2 for v in by_record.values()) and len(by_record) == 5
    # the same inputs give the same assignment
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "m.yaml").write_text(MAPPING, encoding="utf-8")
    twin = export(
        load_mapping(tmp_path / "other" / "m.yaml"), target=Records(5), assign=smes, per_record=2
    )  # type: ignore[arg-type]
    assert twin.assigned == first.assigned
    # a later export assigns only the new records and moves none of the old ones
    later = export(mapping, target=Records(7), assign=smes, per_record=2)  # type: ignore[arg-type]
    assert later.appended == 4 and later.in_sheet == 5
    ws = openpyxl.load_workbook(tmp_path / "labels.xlsx")["Labels"]
    again = [(r[id_col], r[who_col]) for r in ws.iter_rows(min_row=2, values_only=True)]
    assert again[:10] == rows


def test_export_assignment_refusals(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    mapping = load_mapping(tmp_path / "m.yaml")
    with pytest.raises(ConfigError):
        export(mapping, target=Records(2), assign=["alice"], per_record=2)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        export(mapping, target=Records(2), assign=["alice", "alice"], per_record=1)  # type: ignore[arg-type]
    assert not (tmp_path / "labels.xlsx").exists()  # refused before anything was written
    (tmp_path / "m.yaml").write_text(
        MAPPING.replace("    annotator_column: annotator\n", ""), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="add annotator_column"):
        export(load_mapping(tmp_path / "m.yaml"), target=Records(2), assign=["a", "b"])  # type: ignore[arg-type]


GKEY = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"


@pytest.fixture
def gsheet() -> Iterator[Any]:
    from tests.sheets_standin import SheetsStandIn

    with SheetsStandIn() as server:
        server.add_spreadsheet(GKEY, "SME labels", sheets=[("Labels", 0)], rows=5, cols=3)
        server.put(GKEY, "Labels", [["span_id", "label", "score", "explanation", "annotator"]])
        server.put(GKEY, "Labels", ROWS, start_row=2)
        yield server


def gsheet_source(server: Any) -> Any:
    import requests

    from bridge.sources.gsheets.api import RetryPolicy
    from bridge.sources.gsheets.source import GSheetsSource

    return GSheetsSource(
        GKEY,
        "Labels",
        api_base=server.url,
        session=requests.Session(),
        retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5),
    )


def gsheet_mapping(tmp_path: Path) -> Any:
    text = MAPPING.replace(
        "  type: excel\n  path: labels.xlsx\n  worksheet: Labels\n",
        f"  type: gsheet\n  spreadsheet: {GKEY}\n  worksheet: Labels\n",
    )
    (tmp_path / "g.yaml").write_text(text, encoding="utf-8")
    return load_mapping(tmp_path / "g.yaml")


def test_agreement_tabs_in_a_google_sheet_never_touch_the_smes_tab(
    gsheet: Any, tmp_path: Path
) -> None:
    before = gsheet.grid(GKEY, "Labels")
    source = gsheet_source(gsheet)
    result = measure(gsheet_mapping(tmp_path), source=source)
    assert result.tabs_written == ["Agreement", "Disagreements"]
    assert gsheet.grid(GKEY, "Labels") == before
    agreement_tab = gsheet.grid(GKEY, "Agreement")
    disputes = gsheet.grid(GKEY, "Disagreements")
    assert len(agreement_tab) > 1 and any(span(2) in map(str, r) for r in disputes[1:])
    assert not any(str(c).startswith("=") for r in agreement_tab + disputes for c in r)
    # a rerun clears and rewrites the tabs: same content, no duplicated rows
    again = measure(gsheet_mapping(tmp_path), source=gsheet_source(gsheet))
    assert again.tabs_written and gsheet.grid(GKEY, "Agreement") == agreement_tab
    assert gsheet.grid(GKEY, "Disagreements") == disputes


def test_a_google_tab_of_that_name_made_by_the_smes_is_refused(gsheet: Any, tmp_path: Path) -> None:
    gsheet.spreadsheets[GKEY].sheets.append(
        type(gsheet.spreadsheets[GKEY].sheets[0])(99, "Agreement", 1, 10, 5)
    )
    gsheet.put(GKEY, "Agreement", [["our notes"]])
    with pytest.raises(SourceError, match="tab 'Agreement' that annobridge did not write"):
        measure(gsheet_mapping(tmp_path), source=gsheet_source(gsheet))
    assert gsheet.grid(GKEY, "Agreement") == [["our notes"]]


def test_the_cli_prints_json_and_exits_with_the_code(project: Path) -> None:
    from typer.testing import CliRunner

    from bridge.cli import app

    out = CliRunner().invoke(app, ["agreement", str(project / "m.yaml"), "--json", "--no-write"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    assert body["exit_code"] == 0 and body["left_out"] == {"invalid": 1}
    assert body["results"][0]["name"] == "correctness"
    assert body["tabs_written"] == []
    text = CliRunner().invoke(app, ["agreement", str(project / "m.yaml")])
    assert text.exit_code == 0, text.output
    assert "correctness: 4 records, 3 labelled by two or more of alice, bob, carol" in text.stdout
    assert "written: tabs Agreement, Disagreements" in text.stdout
    bad = CliRunner().invoke(app, ["agreement", str(project / "m.yaml"), "--report", "x.pdf"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert ".html or a .png" in bad.stderr


def test_export_assign_from_the_cli_refuses_bad_names_before_writing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bridge.cli import app

    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    out = CliRunner().invoke(
        app, ["export", str(tmp_path / "m.yaml"), "--assign", "alice,alice", "--per-record", "1"]
    )
    assert out.exit_code == 2 and "annotator names are repeated: alice" in out.stderr
    assert not (tmp_path / "labels.xlsx").exists()
