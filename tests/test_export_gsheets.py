"""Export into a Google Sheet, against the local stand-in of the Sheets API: rows appended
below the last used row (RAW, nothing else touched), the grid grown when needed, and
setDataValidation dropdowns and number ranges from the rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from bridge.errors import AuthRefused
from bridge.exporting import ExportQuery, ExportRecord, Validation, export, header_for
from bridge.mapping import MappingConfig, parse_mapping
from bridge.sources.gsheets.api import RetryPolicy
from bridge.sources.gsheets.source import GSheetsSource
from tests.builders import span
from tests.sheets_standin import SheetsStandIn

KEY = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class FakeTarget:
    name = "fake"

    def __init__(self, records: list[ExportRecord]) -> None:
        self.records = records

    def fingerprint(self) -> str:
        return "phoenix|x"

    def export_records(self, query: ExportQuery) -> Iterator[ExportRecord]:
        yield from self.records

    def close(self) -> None:
        pass


def records(n: int, start: int = 1, **kw: Any) -> list[ExportRecord]:
    return [
        ExportRecord(span(i), f"q{i}", f"a{i}", T0, f"https://phoenix/{i}", **kw)
        for i in range(start, start + n)
    ]


@pytest.fixture
def standin() -> Iterator[SheetsStandIn]:
    with SheetsStandIn() as server:
        server.add_spreadsheet(KEY, "SME labels", sheets=[("Labels", 0), ("Notes", 777)])
        yield server


@pytest.fixture
def sheet(standin: SheetsStandIn) -> Iterator[GSheetsSource]:
    src = GSheetsSource(
        KEY,
        "Labels",
        api_base=standin.url,
        session=requests.Session(),
        retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5),
    )
    yield src
    src.close()


@pytest.fixture
def mapping(tmp_path: Path) -> MappingConfig:
    return parse_mapping(
        {
            "source": {"type": "gsheet", "spreadsheet": KEY, "worksheet": "Labels"},
            "target": {"type": "phoenix", "url": "http://127.0.0.1:9"},
            "annotations": [
                {
                    "name": "correctness",
                    "id_column": "span_id",
                    "label_column": "label",
                    "score_column": "score",
                    "annotator_column": "annotator",
                    "rules": {"labels": ["correct", "incorrect"], "score_min": 0, "score_max": 1},
                }
            ],
        },
        tmp_path / "m.yaml",
    )


def structure_requests(standin: SheetsStandIn) -> list[dict[str, Any]]:
    return [
        r
        for rec in standin.log
        if rec.kind == "structure"
        for r in (rec.json() or {}).get("requests", [])
    ]


def test_export_into_an_empty_tab_writes_the_header_rows_and_dropdowns(
    standin: SheetsStandIn, sheet: GSheetsSource, mapping: MappingConfig
) -> None:
    result = export(mapping, sink=sheet, target=FakeTarget(records(3)))
    assert (result.appended, result.first_row, result.last_row) == (3, 2, 4)
    grid = standin.grid(KEY, "Labels")
    assert grid[0] == header_for(mapping)
    assert grid[1][:3] == [span(1), "q1", "a1"]
    at = grid[0].index("link")
    assert grid[1][at] == "https://phoenix/1"
    assert grid[1][grid[0].index("start_time")] == "2025-03-01T12:00:00Z"
    rules = [
        r["setDataValidation"] for r in structure_requests(standin) if "setDataValidation" in r
    ]
    assert rules == [
        {
            "range": {"sheetId": 0, "startRowIndex": 1, "startColumnIndex": 3, "endColumnIndex": 4},
            "rule": {
                "condition": {
                    "type": "ONE_OF_LIST",
                    "values": [{"userEnteredValue": "correct"}, {"userEnteredValue": "incorrect"}],
                },
                "strict": True,
                "showCustomUi": True,
                "inputMessage": "label: one of correct, incorrect",
            },
        },
        {
            "range": {"sheetId": 0, "startRowIndex": 1, "startColumnIndex": 4, "endColumnIndex": 5},
            "rule": {
                "condition": {
                    "type": "NUMBER_BETWEEN",
                    "values": [{"userEnteredValue": "0.0"}, {"userEnteredValue": "1.0"}],
                },
                "strict": True,
                "showCustomUi": False,
                "inputMessage": "score: a number from 0 to 1",
            },
        },
    ]
    writes = [r for r in standin.log if r.kind == "write"]
    assert writes and all(w.json()["valueInputOption"] == "RAW" for w in writes)


def test_append_below_existing_rows_changes_no_cell_and_skips_ids_there(
    standin: SheetsStandIn, sheet: GSheetsSource, mapping: MappingConfig
) -> None:
    existing = [
        ["span_id", "input", "output", "label", "score", "annotator", "notes"],
        [span(2), "typed", "", "correct", 1, "ann", "keep me"],
        ["", "", "", "", "", "", "a row with a note only"],
    ]
    standin.put(KEY, "Labels", existing)
    before = standin.grid(KEY, "Labels")
    target = FakeTarget(records(4) + [ExportRecord(span(9), "=SUM(A1)", "o" * 60_000, T0, None)])

    result = export(mapping, sink=sheet, target=target)

    assert result.in_sheet == 1
    assert (result.appended, result.first_row, result.last_row) == (4, 4, 7)
    assert result.added_columns == ["start_time", "link"]
    grid = standin.grid(KEY, "Labels")
    assert [row[: len(r)] for row, r in zip(grid, before, strict=False)] == before
    assert grid[0][7:] == ["start_time", "link"]
    assert [r[0] for r in grid[3:]] == [span(1), span(3), span(4), span(9)]
    last = grid[6]
    assert last[1] == "'=SUM(A1)"  # RAW text, never a formula
    assert len(last[2]) == 50_000 and "cut by annobridge: 60,000 characters" in last[2]
    assert [(t.record_id, t.column) for t in result.truncated] == [(span(9), "output")]


def test_the_grid_grows_when_the_rows_do_not_fit(
    standin: SheetsStandIn, mapping: MappingConfig
) -> None:
    standin.add_spreadsheet("k" * 44, sheets=[("Labels", 5)], rows=3, cols=10)
    small = GSheetsSource(
        "k" * 44, "Labels", api_base=standin.url, session=requests.Session(), retry=RetryPolicy()
    )
    result = export(mapping, sink=small, target=FakeTarget(records(6)))
    small.close()
    assert result.appended == 6
    grown = [r for r in structure_requests(standin) if "appendDimension" in r]
    assert {"appendDimension": {"sheetId": 5, "dimension": "ROWS", "length": 4}} in grown
    assert {"appendDimension": {"sheetId": 5, "dimension": "COLUMNS", "length": 3}} in grown
    assert [r[0] for r in standin.grid("k" * 44, "Labels")[1:]] == [span(i) for i in range(1, 7)]


def test_second_export_appends_nothing_and_costs_no_write(
    standin: SheetsStandIn, sheet: GSheetsSource, mapping: MappingConfig
) -> None:
    export(mapping, sink=sheet, target=FakeTarget(records(3)))
    standin.reset_log()
    again = export(mapping, sink=sheet, target=FakeTarget(records(3)))
    assert again.appended == 0 and again.in_sheet == 3
    assert standin.count("write") == 0
    assert standin.count("structure") == 1  # the validations, which replace themselves


def test_validation_edge_cases(standin: SheetsStandIn, sheet: GSheetsSource) -> None:
    standin.put(KEY, "Labels", [["span_id", "label", "score"]])
    said = sheet.add_validations(
        [
            Validation("label", "list", ("=x", "y")),
            Validation("score", "number", maximum=5),
            Validation("nope", "list", ("a",)),
        ]
    )
    assert said == [
        "label: no dropdown (a label starts with = + - or @, which a spreadsheet reads as a "
        "formula)",
        "score: a number from -inf to 5",
        "nope: no such column in the header; no rule added",
    ]
    (rule,) = [r["setDataValidation"] for r in structure_requests(standin)]
    assert rule["rule"]["condition"] == {
        "type": "NUMBER_LESS_THAN_EQ",
        "values": [{"userEnteredValue": "5.0"}],
    }
    assert sheet.add_validations([]) == []


def test_a_sheet_shared_as_viewer_says_nothing_was_appended(
    standin: SheetsStandIn, sheet: GSheetsSource, mapping: MappingConfig
) -> None:
    standin.spreadsheets[KEY].access = "read"
    with pytest.raises(AuthRefused) as err:
        export(mapping, sink=sheet, target=FakeTarget(records(2)))
    assert "can read the sheet but not edit it" in str(err.value)
    assert "No row was appended; run again." in str(err.value)
    assert "annotations were sent" not in str(err.value)
    assert standin.grid(KEY, "Labels") == []


def test_an_append_stopped_after_its_first_request_says_which_rows_landed(
    standin: SheetsStandIn, mapping: MappingConfig
) -> None:
    """A >25k-row append is several values:batchUpdate requests (here 2 rows each): when
    the second fails, the rows of the first are in the sheet, and the message says so."""
    standin.put(KEY, "Labels", [header_for(mapping)])
    sheet = GSheetsSource(
        KEY,
        "Labels",
        api_base=standin.url,
        session=requests.Session(),
        retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5),
        max_write_rows=2,
    )
    # the first write lands; the one after it is refused
    standin.before_next("write", lambda: standin.fail(403, kind="write"))
    with sheet, pytest.raises(AuthRefused) as err:
        export(mapping, sink=sheet, target=FakeTarget(records(5)))
    message = str(err.value)
    assert standin.column(KEY, "Labels", "span_id") == [span(1), span(2)]
    assert "No row was appended" not in message
    assert (
        "2 of the 5 new rows were appended before it stopped: sheet rows 2–3; sheet rows 4–6 "
        "were not. Run again to append the rest (export skips the ids already in the sheet)."
    ) in message
    again = GSheetsSource(KEY, "Labels", api_base=standin.url, session=requests.Session())
    with again:
        result = export(mapping, sink=again, target=FakeTarget(records(5)))
    assert (result.appended, result.first_row, result.last_row) == (3, 4, 6)
    assert standin.column(KEY, "Labels", "span_id") == [span(i) for i in range(1, 6)]


def test_export_with_assignment_into_a_google_sheet(
    standin: SheetsStandIn, sheet: GSheetsSource, mapping: MappingConfig
) -> None:
    result = export(
        mapping, sink=sheet, target=FakeTarget(records(3)), assign=["ann", "bob"], per_record=2
    )
    assert result.appended == 6 and result.assigned == {"ann": 3, "bob": 3}
    spans = standin.column(KEY, "Labels", "span_id")
    who = standin.column(KEY, "Labels", "annotator")
    assert sorted(zip(spans, who, strict=True)) == sorted(
        (span(i), name) for i in range(1, 4) for name in ("ann", "bob")
    )
    again = export(
        mapping, sink=sheet, target=FakeTarget(records(4)), assign=["ann", "bob"], per_record=1
    )
    assert again.appended == 1 and again.in_sheet == 3  # only the new record; none moved
    assert standin.column(KEY, "Labels", "annotator")[:6] == who
