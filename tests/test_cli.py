"""The CLI through typer's CliRunner: exit codes, messages, --json, --dry-run, init."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from bridge.cli import app
from tests.servers import free_port

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
SPAN = "67f6740bbe1ddc3f"


def make_book(path: Path, rows: list[list[object]], sheet: str = "Labels") -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    ws.append(["span_id", "label", "score", "explanation", "annotator"])
    for r in rows:
        ws.append(r)
    book.save(path)
    return path


def make_mapping(tmp_path: Path, extra_source: str = "", url: str | None = None) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(
        f"""
source:
  type: excel
  path: labels.xlsx
  worksheet: Labels
{extra_source}
target:
  type: phoenix
  url: {url or f"http://127.0.0.1:{free_port()}"}
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
    )
    return path


def test_every_command_has_help_with_an_example_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for command in app.registered_commands:
        name = command.name or command.callback.__name__  # type: ignore[union-attr]
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.stdout, name
        assert f"annobridge {name}" in readme, name


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.startswith("annobridge ")


def test_validate_all_valid_exits_0(tmp_path: Path) -> None:
    make_book(tmp_path / "labels.xlsx", [[SPAN, "correct", 1, "fine", "alice"]])
    result = runner.invoke(app, ["validate", str(make_mapping(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "1 to send" in result.stdout


def test_validate_reports_each_invalid_row_and_exits_1(tmp_path: Path) -> None:
    make_book(
        tmp_path / "labels.xlsx",
        [[SPAN, "correct", 1.4, None, "alice"], ["not-an-id", "correct", 1, None, "bob"]],
    )
    result = runner.invoke(app, ["validate", str(make_mapping(tmp_path))])
    assert result.exit_code == 1
    assert "row 2: invalid: score 1.4 is above the maximum 1" in result.stdout
    assert "row 3: invalid: span_id 'not-an-id' is not a span id" in result.stdout


def test_validate_json_summary(tmp_path: Path) -> None:
    make_book(tmp_path / "labels.xlsx", [[SPAN, "wrong", None, None, "alice"]])
    result = runner.invoke(app, ["validate", str(make_mapping(tmp_path)), "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["counts"]["invalid"] == 1
    assert summary["issues"] == [
        {
            "sheet_row": 2,
            "status": "invalid",
            "message": "label 'wrong' is not one of: correct, incorrect",
        }
    ]
    assert summary["exit_code"] == 1


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("no_mapping", "no such file; create one with 'annobridge init'"),
        ("unknown_key", "unknown key 'wroksheet'; did you mean 'worksheet'?"),
        ("missing_column", "column 'annotator' not found in header row 1; columns found:"),
        ("missing_sheet", "no worksheet 'Labels'. Worksheets: 'Sheet'"),
        ("not_xlsx", "not an .xlsx workbook"),
        ("empty_sheet", "the worksheet is empty; it needs a header row and rows"),
    ],
)
def test_bad_input_exits_2_with_the_fix_and_no_traceback(
    setup: str, expected: str, tmp_path: Path
) -> None:
    mapping = make_mapping(tmp_path)
    book = tmp_path / "labels.xlsx"
    if setup == "no_mapping":
        mapping = tmp_path / "nope.yaml"
    elif setup == "unknown_key":
        make_book(book, [])
        mapping = make_mapping(tmp_path, extra_source="  wroksheet: x")
    elif setup == "missing_column":
        wb = openpyxl.Workbook()
        wb.active.title = "Labels"
        wb.active.append(["span_id", "label", "score", "explanation"])
        wb.save(book)
    elif setup == "missing_sheet":
        wb = openpyxl.Workbook()
        wb.save(book)
    elif setup == "not_xlsx":
        book.write_text("span_id,label\n")
    elif setup == "empty_sheet":
        wb = openpyxl.Workbook()
        wb.active.title = "Labels"
        wb.save(book)
    for command in ("validate", "sync"):
        result = runner.invoke(app, [command, str(mapping)])
        assert result.exit_code == 2, result.output
        assert expected in result.stderr
        assert "Traceback" not in result.output


def test_errors_in_json_mode_are_one_json_object_on_stdout(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sync", str(tmp_path / "nope.yaml"), "--json"])
    assert result.exit_code == 2
    body = json.loads(result.stdout)
    assert body["exit_code"] == 2
    assert body["error"]["type"] == "MappingError"


def test_dry_run_prints_the_payloads_and_touches_nothing(tmp_path: Path) -> None:
    book = make_book(
        tmp_path / "labels.xlsx",
        [[SPAN, " Correct ", 1, "fine", "alice"], ["bad", "correct", 1, None, "bob"]],
    )
    before = book.read_bytes()
    # The URL points at a closed port: a dry run must not even try to connect.
    result = runner.invoke(app, ["sync", str(make_mapping(tmp_path)), "--dry-run"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout.splitlines()[0])
    assert payload["span_id"] == SPAN
    assert payload["result"] == {"label": "correct", "score": 1.0, "explanation": "fine"}
    assert payload["identifier"] == "annobridge:alice"
    assert "would send 1 annotation; nothing sent" in result.stdout
    assert book.read_bytes() == before


def test_an_open_workbook_stops_the_sync_before_anything_is_sent(tmp_path: Path) -> None:
    book = make_book(tmp_path / "labels.xlsx", [[SPAN, "correct", 1, None, "alice"]])
    (tmp_path / "~$labels.xlsx").write_bytes(b"owner")
    before = book.read_bytes()
    result = runner.invoke(app, ["sync", str(make_mapping(tmp_path))])
    assert result.exit_code == 3
    # The lock is reported, not the (closed) Phoenix port: nothing was attempted.
    assert "open in Excel or LibreOffice" in result.stderr
    assert "cannot reach" not in result.stderr
    assert book.read_bytes() == before


def test_unreachable_platform_exits_3(tmp_path: Path) -> None:
    make_book(tmp_path / "labels.xlsx", [[SPAN, "correct", 1, None, "alice"]])
    result = runner.invoke(app, ["sync", str(make_mapping(tmp_path)), "--json"])
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["type"] == "TargetUnreachable"


def test_init_writes_a_mapping_and_a_template_with_dropdowns(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "proj")])
    assert result.exit_code == 0, result.output
    mapping = tmp_path / "proj" / "annobridge.yaml"
    ws = openpyxl.load_workbook(tmp_path / "proj" / "labels.xlsx")["Labels"]
    header = [c.value for c in ws[1]]
    assert header[:3] == ["span_id", "input", "output"]
    assert header[-5:] == ["sync_status", "synced_at", "sync_message", "sync_id", "sync_hash"]
    label_col = "ABCDEFGHIJKL"[header.index("label")]
    lists = [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]
    assert lists and lists[0].formula1 == '"correct,incorrect"'
    assert str(lists[0].sqref).startswith(f"{label_col}2:")
    decimals = [dv for dv in ws.data_validations.dataValidation if dv.type == "decimal"]
    assert decimals and (decimals[0].formula1, decimals[0].formula2) == ("0.0", "1.0")
    # the starter validates as it is: the template has no rows yet
    assert runner.invoke(app, ["validate", str(mapping)]).exit_code == 0
    again = runner.invoke(app, ["init", str(tmp_path / "proj")])
    assert again.exit_code == 2
    assert "already exists; pass --force to overwrite" in again.stderr
