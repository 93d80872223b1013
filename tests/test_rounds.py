"""Labelling rounds on a workbook: agreement from the sheet, the judge, the owned tabs, and
export with assignment. The figures here are worked out by hand in the comments."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openpyxl
import pytest
import requests

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


# --- links to the disputed records ------------------------------------------------------------

EXPORTED = "http://127.0.0.1:6006/projects/UHJvamVjdDox/traces/t2?selectedSpanNodeId=U3Bhbjoy"


def disputed_ids(result: Any) -> list[str]:
    return list(dict.fromkeys(d.record_id for r in result.results for d in r.disagreements))


def link_cells(book: Path) -> dict[str, Any]:
    """The Disagreements tab's link column, by record id (the record's last row wins)."""
    rows = list(openpyxl.load_workbook(book)["Disagreements"].iter_rows(values_only=True))
    header = list(rows[0])
    at, link = header.index("record_id"), header.index("link")
    return {r[at]: r[link] for r in rows[1:]}


def test_the_sheets_link_column_fills_the_disagreements_tab(tmp_path: Path) -> None:
    # export's link column: the first row of a record holding a web address gives its link
    links = {span(2): EXPORTED}
    rows = [[*r, "http://127.0.0.1:6006/other"] for r in ROWS]
    rows[3][5], rows[4][5] = "  ", EXPORTED  # s2's first row has none: its second's is taken
    make_book(tmp_path / "labels.xlsx", rows, header=["span_id", "label", "score",
              "explanation", "annotator", "link"])  # fmt: skip
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    result = measure(load_mapping(tmp_path / "m.yaml"), report=tmp_path / "r.html")
    assert result.exit_code == 0 and result.messages == []
    assert disputed_ids(result) == [span(2)]
    assert link_cells(tmp_path / "labels.xlsx") == links
    book = openpyxl.load_workbook(tmp_path / "labels.xlsx")
    ws = book["Disagreements"]
    link_col = [c.value for c in ws[1]].index("link") + 1
    cell = next(ws.cell(r, link_col) for r in range(2, ws.max_row + 1))
    assert cell.hyperlink is not None and cell.hyperlink.target == cell.value  # clickable
    assert cell.data_type == "s"
    data = result.to_json()["results"][0]["disagreements"]
    assert {d["record_id"]: d["link"] for d in data} == links
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert f"<a href='{html.escape(EXPORTED)}' target='_blank' rel='noopener'>" in page


def test_without_a_link_column_phoenix_links_are_its_redirects(project: Path) -> None:
    result = measure(load_mapping(project / "m.yaml"))  # offline: nothing is asked of Phoenix
    assert result.messages == [] and result.exit_code == 0
    disputed = disputed_ids(result)
    expected = {rid: f"http://127.0.0.1:9/redirects/spans/{rid}" for rid in disputed}
    assert disputed and link_cells(project / "labels.xlsx") == expected
    data = result.to_json()["results"][0]["disagreements"]
    assert [d["link"] for d in data] == [expected[d["record_id"]] for d in data]


def test_phoenix_redirect_links_by_record_kind() -> None:
    from bridge.targets.phoenix.links import record_links

    base = "https://phoenix.example.org/root/"  # a root path is kept; ids are quoted
    assert record_links(base, "trace", ["t 1", ""]) == {
        "t 1": "https://phoenix.example.org/root/redirects/traces/t%201"
    }
    assert record_links(base, "session", ["a/b"]) == {
        "a/b": "https://phoenix.example.org/root/redirects/sessions/a%2Fb"
    }
    spans = {"s": "https://phoenix.example.org/root/redirects/spans/s"}
    assert record_links(base, "span", ["s"]) == record_links(base, "document", ["s"]) == spans


def test_a_link_cell_that_is_no_web_address_is_never_copied(tmp_path: Path) -> None:
    formula = '=HYPERLINK("http://127.0.0.1:1/x","x")'
    lines = ["span_id,label,score,explanation,annotator,link"]
    for r in ROWS[:6]:
        cell = {span(1): "not a link", span(2): formula}[r[0]]
        lines.append(",".join([*(str(c) for c in r), f'"{cell.replace(chr(34), 2 * chr(34))}"']))
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = MAPPING.replace(
        "  type: excel\n  path: labels.xlsx\n  worksheet: Labels\n",
        "  type: csv\n  path: labels.csv\n",
    )
    (tmp_path / "m.yaml").write_text(text, encoding="utf-8")
    result = measure(load_mapping(tmp_path / "m.yaml"), write_tabs=False)
    assert span(2) in disputed_ids(result)
    assert result.links == {
        rid: f"http://127.0.0.1:9/redirects/spans/{rid}" for rid in disputed_ids(result)
    }


class MlflowStandIn(requests.Session):
    """MLflow's answers to the lookups a link needs: the experiment by name, trace search by
    request id; ``down`` refuses every connection."""

    def __init__(self, traces: dict[str, str], down: bool = False) -> None:
        super().__init__()
        self.traces = traces  # client_request_id -> trace id
        self.down = down
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kw: Any) -> Any:
        path = urlsplit(str(url)).path
        self.sent.append((str(method), path))
        if self.down:
            raise requests.exceptions.ConnectionError("Caused by NewConnectionError(refused)")
        body: Any = {"error_code": "NOT_FOUND", "message": "no"}
        status = 404
        if path.endswith("/experiments/get-by-name"):
            status, body = 200, {"experiment": {"experiment_id": "417"}}
        elif path.endswith("/traces/search"):
            asked = re.findall(r"'([^']*)'", kw["json"]["filter"])
            found = [
                {"trace_id": self.traces[a], "client_request_id": a}
                for a in asked
                if a in self.traces
            ]
            status, body = 200, {"traces": found}
        response = requests.Response()
        response.status_code, response._content = status, json.dumps(body).encode()
        return response


MLFLOW = """
source: {type: excel, path: labels.xlsx, worksheet: Labels}
target: {type: mlflow, url: "http://127.0.0.1:5000", experiment: rounds%s}
annotations:
  - {name: correctness, id_column: rid, label_column: label, annotator_column: annotator}
"""
T1, T2 = "tr-" + "1" * 32, "tr-" + "2" * 32


def mlflow_round(tmp_path: Path, ids: list[str], extra: str = "") -> Any:
    rows = [[rid, lab, who] for rid in ids for lab, who in (("a", "alice"), ("b", "bob"))]
    make_book(tmp_path / "labels.xlsx", rows, header=["rid", "label", "annotator"])
    (tmp_path / "m.yaml").write_text(MLFLOW % extra, encoding="utf-8")
    return load_mapping(tmp_path / "m.yaml")


def test_mlflow_links_open_the_trace_in_its_experiment(tmp_path: Path) -> None:
    from bridge.targets.mlflow.target import MlflowTarget

    mapping = mlflow_round(tmp_path, [T1, T2])
    session = MlflowStandIn({})
    target = MlflowTarget(mapping.target, specs=mapping.annotations, session=session)  # type: ignore[arg-type]
    result = measure(mapping, target=target)
    url = "http://127.0.0.1:5000/#/experiments/417/traces?selectedEvaluationId="
    assert link_cells(tmp_path / "labels.xlsx") == {T1: url + T1, T2: url + T2}
    assert session.sent == [("GET", "/api/2.0/mlflow/experiments/get-by-name")]  # once
    assert result.messages == []


def test_mlflow_request_ids_are_resolved_to_their_traces_in_bulk(tmp_path: Path) -> None:
    from bridge.targets.mlflow.target import MlflowTarget

    mapping = mlflow_round(tmp_path, ["req-1", "req-2", "req-gone"], ", id_kind: client_request_id")
    session = MlflowStandIn({"req-1": T1, "req-2": T2})
    target = MlflowTarget(mapping.target, specs=mapping.annotations, session=session)  # type: ignore[arg-type]
    result = measure(mapping, target=target, write_tabs=False)
    url = "http://127.0.0.1:5000/#/experiments/417/traces?selectedEvaluationId="
    assert result.links == {"req-1": url + T1, "req-2": url + T2}  # unresolved: no link
    assert session.sent.count(("POST", "/api/3.0/mlflow/traces/search")) == 1


def test_a_platform_that_cannot_give_links_leaves_them_empty_and_says_so(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bridge.cli import app
    from bridge.targets.mlflow.target import MlflowTarget

    mapping = mlflow_round(tmp_path, [T1, T2])
    down = MlflowTarget(mapping.target, specs=mapping.annotations, session=MlflowStandIn({}, True))  # type: ignore[arg-type]
    result = measure(mapping, target=down)
    assert result.exit_code == 0 and result.links == {}
    (message,) = result.messages
    assert message.startswith("no links to 2 disputed records on the platform (cannot reach")
    assert set(link_cells(tmp_path / "labels.xlsx").values()) == {None}  # the tab is written
    # a target that cannot even be opened (request ids need an experiment): the same
    (tmp_path / "m.yaml").write_text(
        (MLFLOW % ", id_kind: client_request_id").replace("experiment: rounds, ", ""),
        encoding="utf-8",
    )
    out = CliRunner().invoke(app, ["agreement", str(tmp_path / "m.yaml"), "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    assert body["results"][0]["disagreements"][0]["link"] is None
    assert "no links to 2 disputed records" in body["messages"][0]
    assert "need the experiment" in body["messages"][0]


def test_a_record_disputed_under_two_names_takes_the_link_of_any_of_its_rows() -> None:
    from bridge.agreement import Rating, agreement
    from bridge.records import Row
    from bridge.rounds import RoundResult, _link

    # r1 is disputed on "a" (rows 2, 3) and on "b" (rows 4, 5); only row 2 holds a link
    by_a = agreement("a", [Rating("r1", "ann", "x", None, 2), Rating("r1", "bea", "y", None, 3)])
    by_b = agreement("b", [Rating("r1", "ann", "x", None, 4), Rating("r1", "bea", "y", None, 5)])
    result = RoundResult(mapping="", source="", results=[by_a, by_b])
    rows = [Row(n, {"link": "http://127.0.0.1:6006/r1" if n == 2 else None}) for n in (2, 3, 4, 5)]

    class NoPlatform:
        def target(self) -> Any:
            raise ConfigError("not to be asked: the sheet has the link")

    _link(result, rows, NoPlatform())  # type: ignore[arg-type]
    assert result.links == {"r1": "http://127.0.0.1:6006/r1"} and result.messages == []


class LinkingJudge(Judge):
    def __init__(self, labels: dict[str, JudgeLabel]) -> None:
        super().__init__(labels)
        self.closed = 0

    def record_links(self, record_ids: Sequence[str]) -> dict[str, str]:
        return {r: f"http://127.0.0.1:7/{r}" for r in record_ids}

    def close(self) -> None:
        self.closed += 1


def test_the_judges_target_gives_the_links_opened_once(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bridge.rounds

    judge = LinkingJudge({span(2): JudgeLabel(span(2), "incorrect", None, "no")})
    opened: list[Any] = []
    monkeypatch.setattr(bridge.rounds, "open_target", lambda m: opened.append(m) or judge)
    result = measure(load_mapping(project / "m.yaml"), judge="correctness")
    assert len(opened) == 1 and judge.closed == 1
    human, versus = result.results
    assert [d.record_id for d in versus.disagreements] == [span(2)]
    assert result.links[span(2)] == f"http://127.0.0.1:7/{span(2)}"
    assert set(result.links) == set(disputed_ids(result))
    rows = list(openpyxl.load_workbook(project / "labels.xlsx")["Disagreements"].values)
    assert all(r[-1] == f"http://127.0.0.1:7/{r[1]}" for r in rows[1:])


@pytest.mark.parametrize("medium", ["excel", "csv", "gsheet"])
@pytest.mark.parametrize("with_link", [True, False])
def test_the_link_column_is_optional_in_every_medium(
    medium: str, with_link: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from bridge.records import StatusColumns
    from bridge.sources.base import ReadSpec
    from bridge.sources.csv.source import CsvSource
    from bridge.sources.excel.source import ExcelSource

    header = ["span_id", "label", "annotator"] + (["link"] if with_link else [])
    rows = [[span(1), "correct", "alice"] + (["http://127.0.0.1:6006/a"] if with_link else [])]
    rows.append(["", "", ""] + (["http://127.0.0.1:6006/b"] if with_link else []))  # blank
    spec = ReadSpec(
        columns=["span_id", "label", "annotator"],
        key_columns=["span_id", "annotator"],
        status=StatusColumns(),
        optional_columns=["link"],
    )
    source: Any
    if medium == "excel":
        source = ExcelSource(make_book(tmp_path / "l.xlsx", rows, header=header), "Labels")
    elif medium == "csv":
        text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
        (tmp_path / "l.csv").write_text(text, encoding="utf-8")
        source = CsvSource(tmp_path / "l.csv")
    else:
        server = request.getfixturevalue("gsheet")
        grid = [[*r, *[""] * (5 - len(r))] for r in [header, *rows]]
        server.put(GKEY, "Labels", grid + [[""] * 5] * len(ROWS))  # the fixture's rows gone
        source = gsheet_source(server)
    (row,) = source.read(spec)  # the row with only a link is blank
    expected = {"span_id": span(1), "label": "correct", "annotator": "alice"}
    if with_link:
        expected["link"] = "http://127.0.0.1:6006/a"
    assert row.values == expected
    source.close()
