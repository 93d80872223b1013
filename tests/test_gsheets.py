"""The Google Sheets source against a local stand-in of the Sheets API (gspread's HTTP client).

Reads are typed and cost one request; write-back re-reads the keys (one request) and writes
only status cells, RAW, by key, so SMEs may sort, insert and delete rows meanwhile; a sync
stays within 3 requests up to 25k rows; retries are bounded and honour Retry-After.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

import pytest
import requests

from bridge.errors import EXIT_UNAVAILABLE, EXIT_USAGE, AuthRefused, SourceError, SourceUnavailable
from bridge.mapping import MappingConfig, parse_mapping
from bridge.pipeline import run
from bridge.records import Annotation, Outcome, Row, StatusColumns, StatusUpdate
from bridge.registry import open_source
from bridge.sources.base import ReadSpec
from bridge.sources.gsheets.api import RetryPolicy
from bridge.sources.gsheets.source import GSheetsSource
from tests.sheets_standin import (
    Date,
    DateTime,
    Formula,
    Percent,
    SheetsStandIn,
    Time,
    serial,
    user_entered,
)

KEY = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
URL = f"https://docs.google.com/spreadsheets/d/{KEY}/edit"
HEADER = ["span_id", "label", "score", "explanation", "annotator"]
STATUS = StatusColumns()
# as the pipeline asks: the score column is where numbers are expected
SPEC = ReadSpec(HEADER, ["span_id", "annotator"], STATUS, number_columns=["score"])


def span(n: int) -> str:
    return f"{n:016x}"


def rows_of(n: int, start: int = 1) -> list[list[Any]]:
    labels = ("correct", "incorrect")
    return [
        [span(i), labels[i % 2], (i % 10) / 10, f"because {i}", "ann@example.com"]
        for i in range(start, start + n)
    ]


@pytest.fixture
def standin() -> Iterator[SheetsStandIn]:
    with SheetsStandIn() as server:
        server.add_spreadsheet(KEY, "SME labels", sheets=[("Labels", 0), ("Notes", 777)])
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The pipeline's run lock and journal live in the test's folder, not the user's."""
    path = tmp_path / "state"
    monkeypatch.setenv("ANNOBRIDGE_STATE_DIR", str(path))
    return path


MakeSource = Callable[..., GSheetsSource]


@pytest.fixture
def make_source(standin: SheetsStandIn, sleeps: list[float]) -> Iterator[MakeSource]:
    made: list[GSheetsSource] = []

    def make(spreadsheet: str = KEY, **kwargs: Any) -> GSheetsSource:
        if "gid" not in kwargs:
            kwargs.setdefault("worksheet", "Labels")
        kwargs.setdefault("retry", RetryPolicy(sleep=sleeps.append, rand=lambda: 0.5))
        src = GSheetsSource(spreadsheet, api_base=standin.url, session=requests.Session(), **kwargs)
        made.append(src)
        return src

    yield make
    for src in made:
        src.close()


def updates_for(rows: Sequence[Row], status: str = "synced", **more: str) -> list[StatusUpdate]:
    return [
        StatusUpdate(
            r.sheet_row,
            r.key,
            r.occurrence,
            {"sync_status": status, "sync_message": f"row {r.values['span_id']}", **more},
        )
        for r in rows
    ]


def statuses(standin: SheetsStandIn, title: str = "Labels") -> dict[Any, Any]:
    """{span id: (sync_status, sync_message)} as the sheet holds them now."""
    ids = standin.column(KEY, title, "span_id")
    st = standin.column(KEY, title, "sync_status")
    msg = standin.column(KEY, title, "sync_message")
    return {i: (s, m) for i, s, m in zip(ids, st, msg, strict=True) if i}


# --- read ------------------------------------------------------------------------------------


def test_read_is_typed_ids_stay_text(standin: SheetsStandIn, make_source: MakeSource) -> None:
    standin.put(
        KEY,
        "Labels",
        [
            [*HEADER, "reviewed", "labelled_on"],
            [
                "8085807e40000000",
                "correct",
                Percent(0.45),
                "ok",
                "a@x",
                True,
                Date(date(2025, 1, 2)),
            ],
            ["00123", "1e5", 1, '=HYPERLINK("http://x")', "@x", False],
            ["1e5", "+1", 0.25, "-2", "a@x"],
        ],
    )
    spec = ReadSpec(
        columns=[*HEADER, "reviewed", "labelled_on"],
        key_columns=["span_id"],
        status=STATUS,
        number_columns=["score"],
    )
    rows = make_source().read(spec)
    first, second, third = (r.values for r in rows)
    assert first["span_id"] == "8085807e40000000"  # gspread's get_all_records makes this inf
    assert first["score"] == 0.45 and first["reviewed"] is True
    assert first["labelled_on"] == date(2025, 1, 2)  # read as its serial number, 45659
    assert second["span_id"] == "00123" and second["label"] == "1e5"
    assert second["explanation"] == '=HYPERLINK("http://x")' and second["annotator"] == "@x"
    assert second["reviewed"] is False and second["labelled_on"] is None
    assert third["span_id"] == "1e5" and third["label"] == "+1" and third["explanation"] == "-2"
    read, formats = standin.log
    assert read.query["valueRenderOption"] == ["UNFORMATTED_VALUE"]
    assert read.query["dateTimeRenderOption"] == ["SERIAL_NUMBER"]
    assert serial(date(2025, 1, 2)) == 45659 and formats.kind == "formats"
    assert formats.query["ranges"] == ["'Labels'!G2"]  # the one number that may be a date


def test_formula_cells_read_as_their_value(standin: SheetsStandIn, make_source: MakeSource) -> None:
    standin.put(KEY, "Labels", [HEADER, [span(1), Formula('=IF(1,"correct")', "correct"), 1]])
    [row] = make_source().read(SPEC)
    assert row.values["label"] == "correct"


def test_blank_rows_and_short_rows(standin: SheetsStandIn, make_source: MakeSource) -> None:
    standin.put(
        KEY,
        "Labels",
        [HEADER, [span(1), "correct"], [], ["", "", ""], [span(2), "incorrect", 0.5, "", "b@x"]],
    )
    rows = make_source().read(SPEC)
    assert [r.sheet_row for r in rows] == [2, 5]
    assert rows[0].values == {
        "span_id": span(1),
        "label": "correct",
        "score": None,
        "explanation": None,
        "annotator": None,
    }
    assert rows[1].key == (span(2), "b@x")


def test_header_on_another_row(standin: SheetsStandIn, make_source: MakeSource) -> None:
    standin.put(KEY, "Labels", [["Labels for March"], [], HEADER, [span(1), "correct"]])
    [row] = make_source(header_row=3).read(SPEC)
    assert row.sheet_row == 4


def test_worksheet_by_title_costs_one_request(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, [span(1), "correct"]])
    src = make_source()
    assert len(src.read(SPEC)) == 1
    assert [r.kind for r in standin.log] == ["read"]
    assert src.label == f"Google Sheet {KEY}/Labels"


@pytest.mark.parametrize(
    "how",
    [
        {"gid": 777},
        {"spreadsheet": f"{URL}#gid=777", "worksheet": None},
        {"spreadsheet": f"{URL}?gid=777#gid=777", "worksheet": None},
    ],
)
def test_worksheet_by_gid_costs_one_request(
    standin: SheetsStandIn, make_source: MakeSource, how: dict[str, Any]
) -> None:
    standin.put(KEY, "Notes", [HEADER, [span(7), "correct"]])
    src = make_source(**how)
    [row] = src.read(SPEC)
    assert row.values["span_id"] == span(7)
    assert [r.path.rsplit("/", 1)[-1] for r in standin.log] == ["values:batchGetByDataFilter"]
    assert standin.log[0].json()["dataFilters"] == [{"gridRange": {"sheetId": 777}}]
    assert src.label.endswith("/Notes")


def test_a_named_worksheet_wins_over_the_urls_gid(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, [span(1), "correct"]])
    [row] = make_source(f"{URL}#gid=777", worksheet="Labels").read(SPEC)
    assert row.values["span_id"] == span(1)


def test_first_sheet_when_none_is_named(standin: SheetsStandIn, make_source: MakeSource) -> None:
    standin.put(KEY, "Labels", [HEADER, [span(1), "correct"]])
    [row] = make_source(KEY, worksheet=None).read(SPEC)
    assert row.values["span_id"] == span(1)
    assert [r.kind for r in standin.log] == ["metadata", "read"]


def test_missing_worksheet_lists_the_tabs(standin: SheetsStandIn, make_source: MakeSource) -> None:
    with pytest.raises(SourceError) as err:
        make_source(worksheet="labels").read(SPEC)
    text = str(err.value)
    assert "no worksheet 'labels' (did you mean 'Labels'?)" in text
    assert "'Labels' (gid 0), 'Notes' (gid 777)" in text and "source.worksheet" in text
    assert err.value.exit_code == EXIT_USAGE


def test_missing_gid_lists_the_tabs(standin: SheetsStandIn, make_source: MakeSource) -> None:
    with pytest.raises(
        SourceError, match=r"no worksheet with gid 5\. Worksheets: 'Labels' \(gid 0\)"
    ):
        make_source(gid=5).read(SPEC)


def test_gid_refused_by_google_lists_the_tabs(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.fail(400, kind="read", message="Invalid dataFilter[0]: No grid with id: 5")
    with pytest.raises(SourceError, match="no worksheet with gid 5"):
        make_source(gid=5).read(SPEC)


def test_empty_worksheet_and_missing_columns(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    with pytest.raises(SourceError, match="worksheet 'Labels': the worksheet is empty"):
        make_source().read(SPEC)
    standin.put(KEY, "Labels", [["span_id", "labl"], [span(1), "x"]])
    with pytest.raises(SourceError, match="'label'.*not found in header row 1.*'labl'"):
        make_source().read(SPEC)


def test_wrong_key_is_404_with_the_fix(standin: SheetsStandIn, make_source: MakeSource) -> None:
    other = "1" + KEY[1:-1] + "Z"
    with pytest.raises(SourceError) as err:
        make_source(other, worksheet="Labels").read(SPEC)
    assert f"no spreadsheet with key {other} (404" in str(err.value)
    assert "Fix source.spreadsheet" in str(err.value) and "Nothing was sent" in str(err.value)


def test_not_shared_is_403_with_the_fix(standin: SheetsStandIn, make_source: MakeSource) -> None:
    standin.spreadsheets[KEY].access = "none"
    with pytest.raises(AuthRefused) as err:
        make_source().read(SPEC)
    assert "the sheet is not shared with these credentials (403" in str(err.value)
    assert "as Editor" in str(err.value)
    assert err.value.exit_code == EXIT_UNAVAILABLE


def test_api_not_enabled(standin: SheetsStandIn, make_source: MakeSource) -> None:
    standin.fail(
        403,
        message="Google Sheets API has not been used in project 123 before or it is disabled.",
    )
    with pytest.raises(AuthRefused, match="not enabled.*apis/library/sheets.googleapis.com"):
        make_source().read(SPEC)


def test_bad_spreadsheet_value_is_a_usage_error() -> None:
    with pytest.raises(SourceError, match="address bar.*fix source.spreadsheet"):
        GSheetsSource("my labels")


# --- write-back ------------------------------------------------------------------------------


def test_write_back_writes_only_status_cells_raw(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(3)])
    before = standin.grid(KEY, "Labels")
    src = make_source()
    rows = src.read(SPEC)
    standin.reset_log()
    report = src.write_status(SPEC, updates_for(rows, sync_id="ann-1", sync_hash="abc"))
    assert (report.written, report.vanished, report.moved) == (3, [], 0)
    after = standin.grid(KEY, "Labels")
    assert after[0] == [*HEADER, *STATUS.names()]  # header cells added, after the last column
    assert [r[:5] for r in after] == before  # the SMEs' cells are untouched
    assert after[1][5:] == ["synced", None, f"row {span(1)}", "ann-1", "abc"]
    assert [r.kind for r in standin.log] == ["read", "write"]  # key re-read, one write
    body = standin.log[1].json()
    assert body["valueInputOption"] == "RAW"
    ranges = [
        d["range"] for d in body["data"] if any(v is not None for r in d["values"] for v in r)
    ]
    # exactly the new header cells and the status cells given (no synced_at here: G1 only)
    assert ranges == ["'Labels'!F1:F4", "'Labels'!G1", "'Labels'!H1:J4"]
    # ... and the key cells of the rows written: null (nothing written), read back with it
    probes = [d["range"] for d in body["data"] if d["range"] not in ranges]
    assert probes == ["'Labels'!A2:A4", "'Labels'!E2:E4"] and body["includeValuesInResponse"]


def test_status_text_is_never_a_formula(standin: SheetsStandIn, make_source: MakeSource) -> None:
    risky = ['=HYPERLINK("http://evil.example","click")', "+1", "-1", "@x", "=1+1"]
    standin.put(KEY, "Labels", [HEADER, *rows_of(len(risky))])
    src = make_source()
    rows = src.read(SPEC)
    ups = [
        StatusUpdate(
            r.sheet_row, r.key, r.occurrence, {"sync_status": "rejected", "sync_message": m}
        )
        for r, m in zip(rows, risky, strict=True)
    ]
    src.write_status(SPEC, ups)
    stored = standin.column(KEY, "Labels", "sync_message")
    assert stored == ["'" + m for m in risky]  # text, and no cell starts a formula
    assert not any(isinstance(v, Formula) for v in stored)
    # the stand-in would have made formulas of them had they been sent USER_ENTERED
    assert isinstance(user_entered(risky[0]), Formula) and user_entered("+1") == 1


def test_sort_between_read_and_write(standin: SheetsStandIn, make_source: MakeSource) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(50)])
    src = make_source()
    rows = src.read(SPEC)
    standin.sort_rows(KEY, "Labels", by=lambda r: r[0], header_row=1)  # no-op sort first
    standin.sort_rows(KEY, "Labels", by=lambda r: (r[1], r[0]), header_row=1)  # by label
    report = src.write_status(SPEC, updates_for(rows))
    assert report.written == 50 and report.moved > 0 and not report.vanished
    assert all(msg == f"row {sid}" for sid, (_, msg) in statuses(standin).items())


def test_insert_rows_between_read_and_write(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(5)])
    src = make_source()
    rows = src.read(SPEC)
    standin.insert_rows(KEY, "Labels", 2, rows_of(2, start=100))
    standin.insert_rows(KEY, "Labels", 6, rows_of(1, start=200))
    report = src.write_status(SPEC, updates_for(rows))
    assert report.written == 5 and report.moved == 5
    got = statuses(standin)
    assert all(got[span(i)] == ("synced", f"row {span(i)}") for i in range(1, 6))
    assert all(got[span(i)] == (None, None) for i in (100, 101, 200))


def test_deleted_rows_are_reported_not_written_elsewhere(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(5)])
    src = make_source()
    rows = src.read(SPEC)
    standin.delete_rows(KEY, "Labels", [3, 5])  # span 2 and span 4
    report = src.write_status(SPEC, updates_for(rows))
    assert report.written == 3
    assert sorted(u.key[0] for u in report.vanished) == [span(2), span(4)]
    assert statuses(standin) == {span(i): ("synced", f"row {span(i)}") for i in (1, 3, 5)}


def test_rows_sharing_a_key_keep_their_order(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    same = [span(1), "correct", 1, "", "a@x"]
    standin.put(KEY, "Labels", [HEADER, same, same, [span(2), "x"]])
    src = make_source()
    rows = src.read(SPEC)
    standin.insert_rows(KEY, "Labels", 3, [[span(9), "between"]])
    first, second = updates_for(rows[:2])
    src.write_status(
        SPEC, [first, StatusUpdate(**{**second.__dict__, "values": {"sync_status": "invalid"}})]
    )
    assert standin.column(KEY, "Labels", "sync_status") == ["synced", None, "invalid", None]


def test_rows_without_an_id_at_the_bottom_get_their_status(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(2), ["", "correct"], ["", "incorrect"]])
    src = make_source()
    rows = src.read(SPEC)
    assert [r.key for r in rows[2:]] == [("", ""), ("", "")]
    report = src.write_status(SPEC, updates_for(rows, "invalid"))
    assert report.written == 4 and not report.vanished
    assert standin.column(KEY, "Labels", "sync_status") == ["invalid"] * 4


def test_a_row_without_an_id_gets_its_status_after_a_row_is_inserted_above(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(1), ["", "correct"], *rows_of(1, start=2)])
    src = make_source()
    rows = src.read(SPEC)
    assert rows[1].key == ("", "")
    standin.insert_rows(KEY, "Labels", 3, [[]])  # an SME inserts a row above it meanwhile
    standin.reset_log()
    report = src.write_status(SPEC, updates_for(rows, "invalid"))
    assert (report.written, report.vanished, report.moved) == (3, [], 2)
    assert [r.kind for r in standin.log] == ["read", "write"]  # content read with the keys
    assert standin.column(KEY, "Labels", "label") == ["incorrect", None, "correct", "correct"]
    assert standin.column(KEY, "Labels", "sync_message") == [
        f"row {span(1)}",
        None,
        "row ",
        f"row {span(2)}",
    ]


def test_a_row_without_an_id_that_was_deleted_is_reported_not_put_on_another(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, ["", "correct"], ["", "incorrect"]])
    src = make_source()
    rows = src.read(SPEC)
    standin.delete_rows(KEY, "Labels", [2])
    updates = updates_for(rows, "invalid")
    report = src.write_status(SPEC, updates)
    assert (report.written, report.vanished) == (1, [updates[0]])
    assert standin.column(KEY, "Labels", "sync_status") == ["invalid"]


# --- SMEs editing between the re-read of the keys and the write ---------------------------


def with_old_statuses(n: int) -> list[list[Any]]:
    """A sheet synced before: each row's status says which row it belongs to."""
    header = [*HEADER, "sync_status", "sync_message"]
    return [header, *([*r, "synced", f"old {r[0]}"] for r in rows_of(n))]


def messages(standin: SheetsStandIn) -> list[tuple[Any, Any]]:
    """(span id or label, sync_message) of every row below the header, top to bottom."""
    grid = standin.grid(KEY, "Labels")
    at = grid[0].index("sync_message")
    return [
        ((r[0] if r else None) or (r[1] if len(r) > 1 else None), r[at] if len(r) > at else None)
        for r in grid[1:]
    ]


def sort_descending() -> Callable[[SheetsStandIn], None]:
    def sort(standin: SheetsStandIn) -> None:
        standin.sort_rows(KEY, "Labels", by=lambda r: str(r[0] if r else ""), header_row=1)
        sheet = standin.spreadsheets[KEY].sheets[0]
        sheet.cells[1:] = sheet.cells[1:][::-1]

    return sort


def test_a_sort_between_the_key_reread_and_the_write_is_put_right(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [*with_old_statuses(5), ["", "correct"]])
    src = make_source()
    rows = src.read(SPEC)
    ups = [u for u in updates_for(rows) if u.key[0] != span(2)]  # span 2: unchanged, no update
    standin.before_next("write", lambda: sort_descending()(standin))  # the SME sorts meanwhile
    standin.reset_log()
    report = src.write_status(SPEC, ups)
    assert (report.written, report.vanished) == (5, [])
    assert sorted(messages(standin), key=str) == sorted(
        [*((span(n), f"row {span(n)}") for n in (1, 3, 4, 5)), (span(2), f"old {span(2)}")]
        + [("correct", "row ")],
        key=str,
    )
    # the write read the keys back as it landed: one read and one write more, only now
    assert [r.kind for r in standin.log] == ["read", "write", "read", "write"]


def test_a_row_deleted_between_the_key_reread_and_the_write_is_reported(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", with_old_statuses(4))
    src = make_source()
    rows = src.read(SPEC)
    ups = updates_for(rows)
    standin.before_next("write", lambda: standin.delete_rows(KEY, "Labels", [3]))  # span 2
    report = src.write_status(SPEC, ups)
    assert (report.written, report.vanished) == (3, [ups[1]])
    assert messages(standin) == [(span(n), f"row {span(n)}") for n in (1, 3, 4)]


def test_rows_moving_again_while_being_put_right_are_put_right_again(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", with_old_statuses(4))
    src = make_source()
    rows = src.read(SPEC)
    standin.before_next("write", lambda: sort_descending()(standin))
    standin.before_next("write", lambda: standin.insert_rows(KEY, "Labels", 2, [["", ""]]))
    standin.reset_log()
    report = src.write_status(SPEC, updates_for(rows))
    assert (report.written, report.vanished) == (4, [])
    assert messages(standin)[0] == (None, None)  # the blank row inserted gets no status
    assert sorted(messages(standin)[1:]) == [(span(n), f"row {span(n)}") for n in range(1, 5)]
    assert [r.kind for r in standin.log] == ["read", "write", "read", "write", "read", "write"]


def test_rows_that_never_stop_moving_are_reported_and_put_right_by_the_next_run(
    standin: SheetsStandIn, make_source: MakeSource, caplog: pytest.LogCaptureFixture
) -> None:
    standin.put(KEY, "Labels", with_old_statuses(3))
    src = make_source()
    rows = src.read(SPEC)
    ups = updates_for(rows)

    def rotate() -> None:
        sheet = standin.spreadsheets[KEY].sheets[0]
        sheet.cells[1:] = [*sheet.cells[2:4], sheet.cells[1]]

    for _ in range(4):  # before the write and before each of the 3 repairs
        standin.before_next("write", rotate)
    report = src.write_status(SPEC, ups)
    assert report.vanished and report.written + len(report.vanished) == 3
    assert "rows kept moving" in caplog.text
    again = make_source()  # the next run: every row gets its own status
    again.write_status(SPEC, updates_for(again.read(SPEC)))
    assert sorted(messages(standin)) == [(span(n), f"row {span(n)}") for n in range(1, 4)]


def test_an_answer_without_the_values_read_back_costs_one_read_never_a_wrong_row(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", with_old_statuses(3))
    standin.echo_values = False
    src = make_source()
    rows = src.read(SPEC)
    standin.reset_log()
    report = src.write_status(SPEC, updates_for(rows))
    assert (report.written, report.vanished) == (3, [])
    assert messages(standin) == [(span(n), f"row {span(n)}") for n in range(1, 4)]
    assert [r.kind for r in standin.log] == ["read", "write", "read"]  # nothing to put right


def test_protected_status_columns(standin: SheetsStandIn, make_source: MakeSource) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(1)])
    src = make_source()
    rows = src.read(SPEC)
    standin.fail(
        403,
        kind="write",
        message="You are trying to edit a protected cell or object. Please contact the "
        "spreadsheet owner to remove protection if you need to edit.",
    )
    with pytest.raises(AuthRefused, match="which are protected.*Protect sheets and ranges"):
        src.write_status(SPEC, updates_for(rows))


def test_columns_inserted_between_read_and_write(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [[*HEADER, "sync_status"], *rows_of(3)])
    src = make_source()
    rows = src.read(SPEC)
    standin.insert_column(KEY, "Labels", 0, ["notes"])  # everything moves one right
    standin.sort_rows(KEY, "Labels", by=lambda r: (str(r[2]), str(r[1])), header_row=1)  # label
    standin.reset_log()
    report = src.write_status(SPEC, updates_for(rows))
    assert report.written == 3 and report.moved == 2
    assert [r.kind for r in standin.log] == ["read", "read", "write"]  # keys read again
    assert all(v == ("synced", f"row {k}") for k, v in statuses(standin).items())
    assert standin.grid(KEY, "Labels")[0][:7] == ["notes", *HEADER, "sync_status"]


def test_a_header_changed_while_syncing_stops_the_write(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(2)])
    src = make_source()
    rows = src.read(SPEC)
    standin.put(KEY, "Labels", [["id", *HEADER[1:]]])  # an SME renamed span_id
    with pytest.raises(SourceError) as err:
        src.write_status(SPEC, updates_for(rows))
    assert "'span_id' not found in header row 1" in str(err.value)
    assert "the header changed while syncing" in str(err.value)
    assert "annotations were sent" in str(err.value)
    assert standin.count("write") == 0


def test_existing_status_column_in_the_middle(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(
        KEY,
        "Labels",
        [["span_id", "sync_status", "label", "", "annotator"], [span(1), "", "ok", "", "a"]],
    )
    spec = ReadSpec(
        columns=["span_id", "label", "annotator"], key_columns=["span_id"], status=STATUS
    )
    src = make_source()
    rows = src.read(spec)
    src.write_status(spec, updates_for(rows))
    grid = standin.grid(KEY, "Labels")
    assert grid[0] == ["span_id", "sync_status", "label", "", "annotator", *STATUS.names()[1:]]
    assert grid[1][1] == "synced" and grid[1][6] == f"row {span(1)}"


def test_data_right_of_the_header_is_never_overwritten(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, [*rows_of(1)[0], None, "an SME's note"]])
    src = make_source()
    src.write_status(SPEC, updates_for(src.read(SPEC)))
    grid = standin.grid(KEY, "Labels")
    assert grid[1][6] == "an SME's note" and grid[0][7] == "sync_status"


def test_status_columns_past_the_grid_widen_it(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.spreadsheets[KEY].sheets[0].cols = 5  # a sheet trimmed to its 5 columns
    standin.put(KEY, "Labels", [HEADER, *rows_of(2)])
    src = make_source()
    rows = src.read(SPEC)
    standin.reset_log()
    src.write_status(SPEC, updates_for(rows))
    # widened before the keys are read again: nothing between that re-read and the write
    assert [r.kind for r in standin.log] == ["metadata", "structure", "read", "write"]
    assert standin.spreadsheets[KEY].sheets[0].cols == 10
    assert standin.column(KEY, "Labels", "sync_status") == ["synced", "synced"]


def test_a_tab_renamed_while_syncing_is_found_by_gid(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Notes", [HEADER, *rows_of(2)])
    src = make_source(gid=777)
    rows = src.read(SPEC)
    standin.rename(KEY, "Notes", "Notes (old)")
    assert src.write_status(SPEC, updates_for(rows)).written == 2
    assert standin.column(KEY, "Notes (old)", "sync_status") == ["synced", "synced"]


def test_a_tab_renamed_while_syncing_by_title_is_an_error(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(1)])
    src = make_source()
    rows = src.read(SPEC)
    standin.rename(KEY, "Labels", "Done")
    with pytest.raises(SourceError, match="renamed or deleted while syncing.*run again"):
        src.write_status(SPEC, updates_for(rows))


def test_read_only_share_fails_the_write_with_the_fix(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(1)])
    standin.spreadsheets[KEY].access = "read"
    src = make_source()
    rows = src.read(SPEC)
    src.check_writable()  # costs no request; the write says what is wrong
    with pytest.raises(AuthRefused) as err:
        src.write_status(SPEC, updates_for(rows))
    assert "can read the sheet but not edit it (403" in str(err.value)
    assert "annotations were sent" in str(err.value) and "nothing is lost" in str(err.value)


def test_no_updates_costs_nothing(standin: SheetsStandIn, make_source: MakeSource) -> None:
    assert make_source().write_status(SPEC, []).written == 0
    assert standin.count() == 0


# --- whole syncs: budget, retries, nothing lost ------------------------------------------------


class FakeTarget:
    """A platform that accepts everything; records what it got."""

    name = "fake"
    kind = "span"

    def __init__(self, on_send: Callable[[], None] | None = None) -> None:
        self.sent: list[Annotation] = []
        self.on_send = on_send

    def fingerprint(self) -> str:
        return "fake|test"

    def payload(self, annotation: Annotation) -> dict[str, Any]:
        return {"id": annotation.target_id, "label": annotation.label}

    def check(self) -> None:
        pass

    def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
        if self.on_send:
            self.on_send()
        self.sent.extend(annotations)
        if progress:
            progress(len(annotations))
        return [Outcome.ok(f"ann-{a.target_id}") for a in annotations]

    def close(self) -> None:
        pass


def mapping(tmp_path: Path, **source: Any) -> MappingConfig:
    doc = {
        "source": {"type": "gsheet", "spreadsheet": URL, "worksheet": "Labels", **source},
        "target": {"type": "phoenix", "url": "http://127.0.0.1:9"},
        "annotations": [
            {
                "name": "correctness",
                "id_column": "span_id",
                "label_column": "label",
                "score_column": "score",
                "explanation_column": "explanation",
                "annotator_column": "annotator",
                "rules": {"labels": ["correct", "incorrect"], "score_min": 0, "score_max": 1},
            }
        ],
    }
    return parse_mapping(doc, tmp_path / "labels.yaml")


def test_open_source_builds_the_gsheet_source(tmp_path: Path) -> None:
    src = open_source(mapping(tmp_path, worksheet=None, spreadsheet=f"{URL}#gid=42", timeout=5))
    assert isinstance(src, GSheetsSource)
    assert (src.key, src.gid, src.worksheet, src.timeout) == (KEY, 42, None, 5)


@pytest.mark.parametrize(
    ("how", "title", "requests_made"),
    [
        ({"worksheet": "Labels"}, "Labels", 3),
        ({"gid": 777}, "Notes", 3),
        ({"worksheet": None}, "Labels", 4),  # unnamed: one metadata request finds the first tab
    ],
    ids=["by-title", "by-gid", "first-sheet"],
)
def test_a_sync_makes_at_most_3_requests(
    standin: SheetsStandIn,
    make_source: MakeSource,
    tmp_path: Path,
    how: dict[str, Any],
    title: str,
    requests_made: int,
) -> None:
    standin.put(KEY, title, [HEADER, *rows_of(300)])
    target = FakeTarget()
    src = make_source(**how)
    result = run(mapping(tmp_path), source=src, target=target)
    assert result.counts["synced"] == 300 and result.statuses_written == 300
    assert standin.count() == requests_made, [r.kind for r in standin.log]
    assert [r.kind for r in standin.log][-2:] == ["read", "write"]
    # the second run finds everything synced: one read, nothing sent, nothing written
    standin.reset_log()
    again = run(mapping(tmp_path), source=src, target=target)
    assert again.counts["unchanged"] == 300 and len(target.sent) == 300
    assert standin.count() == requests_made - 2


def test_25k_rows_take_one_read_one_key_read_one_write(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    """What a sync asks of the sheet (read; write_status of every row), at 25k rows."""
    standin.put(KEY, "Labels", [HEADER, *rows_of(25_000)])
    src = make_source()
    rows = src.read(SPEC)
    ids = {"sync_id": "U3BhbkFubm90YXRpb246MTIzNDU2", "sync_hash": "0123456789abcdef"}
    report = src.write_status(SPEC, updates_for(rows, **ids))
    assert report.written == 25_000
    assert [r.kind for r in standin.log] == ["read", "read", "write"]
    assert len(standin.log[-1].body) < 4 * 1024 * 1024
    assert standin.column(KEY, "Labels", "sync_id")[-1] == ids["sync_id"]


def test_more_rows_cost_one_more_write_per_chunk(
    standin: SheetsStandIn, make_source: MakeSource, tmp_path: Path
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(250)])
    src = make_source(max_write_rows=100)
    result = run(mapping(tmp_path), source=src, target=FakeTarget())
    assert result.statuses_written == 250
    assert [r.kind for r in standin.log] == ["read", "read", "write", "write", "write"]
    assert statuses(standin)[span(250)] == ("synced", "")


def test_ten_thousand_rows_read_and_written_back_in_three_requests(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    # Speed is measured in benchmarks/gsheets_requests.py; here: what it costs in requests.
    standin.put(KEY, "Labels", [HEADER, *rows_of(10_000)])
    src = make_source()
    rows = src.read(SPEC)
    assert len(rows) == 10_000
    report = src.write_status(
        SPEC, updates_for(rows, sync_id="U3BhbkFubm90YXRpb246MQ==", sync_hash="0123456789abcdef")
    )
    assert report.written == 10_000 and standin.count() == 3
    assert [r.kind for r in standin.log] == ["read", "read", "write"]
    assert standin.column(KEY, "Labels", "sync_id")[-1] == "U3BhbkFubm90YXRpb246MQ=="


def test_429_storm_is_retried_honouring_retry_after(
    standin: SheetsStandIn,
    make_source: MakeSource,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(2)])
    standin.fail(429, times=3, kind="read", retry_after="7")
    assert len(make_source().read(SPEC)) == 2
    assert sleeps == [7, 7, 7]  # backoff would wait 1.5, 2.5, 4.5: Retry-After is longer
    assert [r.status for r in standin.log] == [429, 429, 429, 200]
    assert "HTTP 429 Quota exceeded" in caplog.text and "retry 3 of 6" in caplog.text


def test_backoff_grows_and_jitters_without_retry_after(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(1)])
    standin.fail(503, times=4, kind="read")
    waits: list[float] = []
    jitter = iter([0.0, 0.9, 0.1, 0.5])
    src = make_source(retry=RetryPolicy(sleep=waits.append, rand=lambda: next(jitter)))
    src.read(SPEC)
    assert waits == pytest.approx([1.0, 2.9, 4.1, 8.5])


def test_429_forever_ends_with_exit_3_and_nothing_sent(
    standin: SheetsStandIn, make_source: MakeSource, tmp_path: Path, sleeps: list[float]
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(3)])
    standin.fail(429, times=1000)
    target = FakeTarget()
    with pytest.raises(SourceUnavailable) as err:
        run(mapping(tmp_path), source=make_source(), target=target)
    assert err.value.exit_code == EXIT_UNAVAILABLE
    assert "HTTP 429 Quota exceeded" in str(err.value) and "on 7 tries" in str(err.value)
    assert "Nothing was sent" in str(err.value)
    assert target.sent == [] and standin.count() == 7
    assert len(sleeps) == 6 and sum(sleeps) <= RetryPolicy().max_wait


def test_total_wait_is_bounded_even_with_long_retry_after(
    standin: SheetsStandIn, make_source: MakeSource, sleeps: list[float]
) -> None:
    standin.fail(429, times=1000, retry_after="3600")
    with pytest.raises(SourceUnavailable, match="on 4 tries over 180 s"):
        make_source().read(SPEC)
    assert sleeps == [60, 60, 60]  # Retry-After is capped at a minute; 180 s in all


def test_write_phase_storm_loses_nothing(
    standin: SheetsStandIn, make_source: MakeSource, tmp_path: Path
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(20)])
    target = FakeTarget(on_send=lambda: standin.fail(429, times=1000, kind="write"))
    with pytest.raises(SourceUnavailable) as err:
        run(mapping(tmp_path), source=make_source(), target=target)
    assert err.value.exit_code == EXIT_UNAVAILABLE
    assert "annotations were sent" in str(err.value) and "run again" in str(err.value)
    assert len(target.sent) == 20
    assert standin.grid(KEY, "Labels")[0] == HEADER  # nothing half-written
    first = {(a.target_id, a.identifier) for a in target.sent}
    standin.faults.clear()  # the quota refills; the next run writes every status
    target.on_send = None
    result = run(mapping(tmp_path), source=make_source(), target=target)
    assert result.statuses_written == 20
    assert set(statuses(standin).values()) == {("synced", "")}
    # whatever was sent again went to the same annotations: nothing lost, nothing duplicated
    assert {(a.target_id, a.identifier) for a in target.sent} == first


def test_every_request_has_a_timeout_and_stalls_are_retried(
    standin: SheetsStandIn, make_source: MakeSource, sleeps: list[float]
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(1)])
    standin.hang(times=1)  # answered only once the client gave up: no race with the clock
    seen: list[Any] = []
    session = requests.Session()
    original = session.request

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("timeout"))
        return original(*args, **kwargs)

    session.request = spy  # type: ignore[method-assign]
    src = GSheetsSource(
        KEY,
        "Labels",
        api_base=standin.url,
        session=session,
        timeout=2,
        retry=RetryPolicy(sleep=sleeps.append),
    )
    try:
        assert len(src.read(SPEC)) == 1
    finally:
        src.close()
    assert seen == [(2, 2), (2, 2)] and len(sleeps) == 1
    assert standin.abandoned == 1  # the first try timed out, the retry was answered


def test_a_sheet_that_never_answers_is_exit_3(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    standin.hang(times=3)
    src = make_source(timeout=0.2, retry=RetryPolicy(retries=2, sleep=lambda s: None))
    with pytest.raises(SourceUnavailable, match="no answer within the timeout.*on 3 tries"):
        src.read(SPEC)
    assert len(standin.log) == 3


def test_unreachable_google_is_exit_3() -> None:
    src = GSheetsSource(
        KEY,
        "Labels",
        api_base="http://127.0.0.1:9",
        session=requests.Session(),
        retry=RetryPolicy(retries=1, sleep=lambda s: None),
    )
    with src, pytest.raises(SourceUnavailable, match="the connection failed.*on 2 tries"):
        src.read(SPEC)


def test_summary_reports_rows_deleted_during_the_sync(
    standin: SheetsStandIn, make_source: MakeSource, tmp_path: Path
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(4)])
    target = FakeTarget(on_send=lambda: standin.delete_rows(KEY, "Labels", [3]))
    result = run(mapping(tmp_path), source=make_source(), target=target)
    assert result.vanished_rows == [3] and result.statuses_written == 3
    assert json.loads(json.dumps(result.to_json()))["vanished_rows"] == [3]


# --- dates are dates ---------------------------------------------------------------------------


def test_dates_typed_in_the_sheet_are_dates_in_a_sync(
    standin: SheetsStandIn, make_source: MakeSource, tmp_path: Path
) -> None:
    """The values read gives a date as its serial number; one more request tells them apart."""
    standin.put(
        KEY,
        "Labels",
        [
            HEADER,
            [Date(date(2020, 1, 1)), "correct", 0.5, "", "a@x"],  # a date pasted as the id
            [span(2), "correct", Date(date(2020, 1, 1)), "", "a@x"],  # a date as the score
            [span(3), "correct", 1, Date(date(1999, 1, 2)), "a@x"],
            [span(4), "incorrect", 0.5, DateTime(datetime(2020, 1, 1, 14, 30)), "a@x"],
            [span(5), "correct", 0, Time(time_of_day(14, 30)), "a@x"],
            [span(6), "correct", 0.5, "plain", "a@x"],
            [Time(time_of_day(9, 15)), "correct", 0.5, "", "a@x"],  # a time as the id
        ],
    )
    target = FakeTarget()
    result = run(mapping(tmp_path), source=make_source(), target=target)
    assert result.counts["synced"] == 4 and result.counts["invalid"] == 3
    sent = {a.target_id: a.explanation for a in target.sent}
    assert sent == {
        span(3): "1999-01-02",  # not "36162"
        span(4): "2020-01-01T14:30:00",
        span(5): "14:30:00",
        span(6): "plain",
    }
    # invalid rows get their status although their key holds a serial number: the key
    # re-read before writing gets serial numbers too, so each row is found again
    status = standin.column(KEY, "Labels", "sync_status")
    message = standin.column(KEY, "Labels", "sync_message")
    assert status[:2] == ["invalid", "invalid"]
    assert "span_id is a date (2020-01-01), not a span id" in message[0]
    assert "score is a date (2020-01-01), not a number" in message[1]
    assert status[2:] == ["synced"] * 4 + ["invalid"]
    assert "span_id is a time (09:15:00), not a span id" in message[6]
    # the sheet has dates: one request more than the 3 of a sync, for those cells only
    assert [r.kind for r in standin.log] == ["read", "formats", "read", "write"]
    assert standin.ranges_asked() == [["'Labels'!A2:A8", "'Labels'!C3", "'Labels'!D4:D6"]]
    assert standin.log[1].query["fields"] == [
        "sheets(data(startRow,startColumn,rowData(values(effectiveFormat(numberFormat(type))))))"
    ]
    # nothing new: the read and its format request, nothing sent, nothing written
    standin.reset_log()
    again = run(mapping(tmp_path), source=make_source(), target=target)
    assert again.counts["unchanged"] == 4 and len(target.sent) == 4
    assert [r.kind for r in standin.log] == ["read", "formats"]


def test_a_date_time_and_a_time_read_as_datetime_and_time(
    standin: SheetsStandIn, make_source: MakeSource
) -> None:
    when = datetime(2024, 5, 2, 13, 30, 15)
    standin.put(
        KEY,
        "Labels",
        [
            HEADER,
            [span(1), DateTime(when), 0.5, Time(time_of_day(9, 5)), Time(time_of_day(23, 59, 59))],
            [span(2), Date(datetime(2024, 5, 2, 18, 0)), 45000.25, "", ""],  # =NOW() as a date
        ],
    )
    spec = ReadSpec(HEADER, ["span_id"], STATUS, number_columns=["score"])
    first, second = (r.values for r in make_source().read(spec))
    assert first["label"] == when and type(first["label"]) is datetime
    assert first["explanation"] == time_of_day(9, 5) and first["annotator"] == time_of_day(
        23, 59, 59
    )
    assert second["label"] == date(2024, 5, 2) and type(second["label"]) is date
    assert second["score"] == 45000.25  # a plausible serial, but the cell is a plain number
    assert first["score"] == 0.5
    # keys stay as read (the serial numbers the key re-read gets too)
    assert standin.ranges_asked() == [
        ["'Labels'!B2:B3", "'Labels'!C3", "'Labels'!D2", "'Labels'!E2"]
    ]


@pytest.mark.parametrize(
    ("row", "asked"),
    [
        ([span(1), "correct", 0.5, "", "a@x"], None),  # a score is not a date
        ([span(1), "correct", 3, "", "a@x"], None),
        ([span(1), "correct", 0, "", "a@x"], None),
        ([span(1), "correct", 250_000, "", "a@x"], None),  # past 2100 as a serial
        ([span(1), True, 1, "TRUE", "a@x"], None),  # checkboxes are not numbers
        ([span(1), 3, 0.5, "", "a@x"], None),  # a rating label: 1900-01-02 is no one's date
        ([span(1), 0, 1, 1, "a@x"], None),  # 0/1 labels and comments
        ([span(1), 45_000, 0.5, "", "a@x"], ["'Labels'!B2"]),  # a date-like number as a label
        ([span(1), "correct", 1, 0.625, "a@x"], ["'Labels'!D2"]),  # 15:00 as a fraction
        ([span(1), "correct", 45_000, "", "a@x"], ["'Labels'!C2"]),  # 2023-03-15 as a serial
    ],
    ids=[
        "0.5",
        "3",
        "0",
        "past-2100",
        "checkbox",
        "rating-label",
        "0-1-label",
        "serial-label",
        "time-comment",
        "serial-score",
    ],
)
def test_only_numbers_that_may_be_dates_are_asked_about(
    standin: SheetsStandIn, make_source: MakeSource, row: list[Any], asked: list[str] | None
) -> None:
    standin.put(KEY, "Labels", [HEADER, row])
    spec = ReadSpec(HEADER, ["span_id"], STATUS, number_columns=["score"])
    [read] = make_source().read(spec)
    assert read.values == dict(zip(HEADER, row, strict=True))  # numbers stay numbers
    assert standin.ranges_asked() == ([asked] if asked else [])
    assert standin.count() == (2 if asked else 1)


def test_a_sync_without_dates_still_makes_3_requests(
    standin: SheetsStandIn, make_source: MakeSource, tmp_path: Path
) -> None:
    scores = [0, 0.25, 0.5, 1, True, False]
    standin.put(
        KEY,
        "Labels",
        [HEADER, *[[span(i), "correct", s, f"n{i}", "a@x"] for i, s in enumerate(scores, 1)]],
    )
    result = run(mapping(tmp_path), source=make_source(), target=FakeTarget())
    assert result.statuses_written == len(scores)
    assert [r.kind for r in standin.log] == ["read", "read", "write"]


def test_the_format_request_is_retried_like_the_others(
    standin: SheetsStandIn, make_source: MakeSource, sleeps: list[float]
) -> None:
    standin.put(KEY, "Labels", [HEADER, [span(1), "correct", 1, Date(date(2020, 1, 1))]])
    standin.fail(429, times=2, kind="formats", retry_after="5")
    [row] = make_source().read(SPEC)
    assert row.values["explanation"] == date(2020, 1, 1)
    assert [(r.kind, r.status) for r in standin.log] == [
        ("read", 200),
        ("formats", 429),
        ("formats", 429),
        ("formats", 200),
    ]
    assert sleeps == [5, 5]


def test_the_format_request_refused_is_the_same_clear_error(
    standin: SheetsStandIn, make_source: MakeSource, sleeps: list[float]
) -> None:
    standin.put(KEY, "Labels", [HEADER, [span(1), "correct", 1, Date(date(2020, 1, 1))]])
    standin.fail(403, kind="formats", message="The caller does not have permission")
    with pytest.raises(AuthRefused) as err:
        make_source().read(SPEC)
    assert "the sheet is not shared with these credentials (403" in str(err.value)
    assert "Nothing was sent" in str(err.value) and err.value.exit_code == EXIT_UNAVAILABLE
    standin.fail(429, times=1000, kind="formats")
    with pytest.raises(SourceUnavailable, match="HTTP 429 Quota exceeded.*Nothing was sent"):
        make_source().read(SPEC)


def test_the_standin_answers_format_requests_in_googles_shape(standin: SheetsStandIn) -> None:
    """spreadsheets.get with ranges and a fields mask: only the fields asked for, positions
    kept with {}, zero starts and trailing empties left out."""
    standin.put(
        KEY,
        "Labels",
        [
            ["when", "n"],
            [Date(date(2020, 1, 1)), 1],
            [5, Percent(0.5)],
            [],
            [DateTime(datetime(2020, 1, 1, 6)), "x"],
            [None, Time(time_of_day(1))],
        ],
    )
    fields = (
        "sheets(data(startRow,startColumn,rowData(values(effectiveFormat(numberFormat(type))))))"
    )
    answer = requests.get(
        f"{standin.url}/v4/spreadsheets/{KEY}",
        params={"ranges": ["'Labels'!A1:A9", "Labels!B3:C6"], "fields": fields},
        timeout=5,
    ).json()

    def typed(kind: str) -> dict[str, Any]:
        return {"effectiveFormat": {"numberFormat": {"type": kind}}}

    assert answer == {
        "sheets": [
            {
                "data": [
                    {
                        "rowData": [
                            {"values": [{}]},
                            {"values": [typed("DATE")]},
                            {"values": [{}]},
                            {},
                            {"values": [typed("DATE_TIME")]},
                        ]
                    },
                    {
                        "startRow": 2,
                        "startColumn": 1,
                        "rowData": [
                            {"values": [typed("PERCENT")]},
                            {},
                            {"values": [{}]},
                            {"values": [typed("TIME")]},
                        ],
                    },
                ]
            }
        ]
    }
    # the tab list, as the metadata request asks for it: nothing else
    tabs = requests.get(
        f"{standin.url}/v4/spreadsheets/{KEY}",
        params={"fields": "sheets.properties(sheetId,title)"},
        timeout=5,
    ).json()
    assert tabs == {
        "sheets": [
            {"properties": {"sheetId": 0, "title": "Labels"}},
            {"properties": {"sheetId": 777, "title": "Notes"}},
        ]
    }
    assert [r.kind for r in standin.log] == ["formats", "metadata"]


def test_a_sync_reports_a_row_deleted_while_its_status_was_written(
    standin: SheetsStandIn, make_source: MakeSource, tmp_path: Path
) -> None:
    standin.put(KEY, "Labels", [HEADER, *rows_of(3), ["", "correct"], *rows_of(1, start=4)])
    src = make_source()

    def sme() -> None:  # between the key re-read and the write: delete span 2, sort the rest
        standin.delete_rows(KEY, "Labels", [3])
        sort_descending()(standin)

    standin.before_next("write", sme)
    result = run(mapping(tmp_path), source=src, target=FakeTarget())
    assert result.vanished_rows == [3] and result.statuses_written == 4
    grid = standin.grid(KEY, "Labels")
    at = grid[0].index("sync_status")
    got = sorted((r[0], r[1], r[at], r[at + 2] or "") for r in grid[1:])
    assert [g[:3] for g in got] == [
        ("", "correct", "invalid"),  # the row without an id: its own status, wherever it went
        (span(1), "incorrect", "synced"),
        (span(3), "incorrect", "synced"),
        (span(4), "correct", "synced"),
    ]
    assert "span_id" in got[0][3] and all(g[3] == "" for g in got[1:])
