"""Pure helpers of the Google Sheets source: references, ranges, dates, write plans, retry
timing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime

import pytest

from bridge.sources.gsheets.data import (
    MAX_WRITE_ROWS,
    Block,
    a1,
    backoff_delay,
    column_index,
    date_candidates,
    format_ranges,
    from_serial,
    number_formats,
    parse_range,
    parse_retry_after,
    parse_spreadsheet,
    plan_blocks,
    probe_ranges,
    probed_cells,
    quote_title,
    request_body,
    serial_datetime,
    write_chunks,
)

KEY = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"


@pytest.mark.parametrize(
    ("text", "gid"),
    [
        (KEY, None),
        (f"  {KEY}\n", None),
        (f"https://docs.google.com/spreadsheets/d/{KEY}/edit#gid=0", 0),
        (
            f"https://docs.google.com/spreadsheets/d/{KEY}/edit?gid=1290448245#gid=1290448245",
            1290448245,
        ),
        (f"https://docs.google.com/spreadsheets/u/1/d/{KEY}/edit", None),
        (f"https://docs.google.com/a/example.com/spreadsheets/d/{KEY}/htmlview", None),
        (f"docs.google.com/spreadsheets/d/{KEY}", None),
        (f"https://docs.google.com/spreadsheet/ccc?key={KEY}#gid=3", 3),
        (f"https://drive.google.com/open?id={KEY}", None),
    ],
)
def test_spreadsheet_by_key_or_url(text: str, gid: int | None) -> None:
    ref = parse_spreadsheet(text)
    assert (ref.key, ref.gid) == (KEY, gid)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("<paste the sheet's URL here>", "not a Google Sheets URL or key"),
        ("labels", "not a Google Sheets URL or key"),
        (f"https://drive.google.com/file/d/{KEY}/view", "Save as Google Sheets"),
        ("https://docs.google.com/spreadsheets/d/e/2PACX-1vQ/pubhtml", "Publish to the web"),
        (f"https://example.com/spreadsheets/d/{KEY}/edit", "not a Google Sheets URL"),
        ("https://docs.google.com/spreadsheets/create", "no spreadsheet key"),
    ],
)
def test_a_wrong_spreadsheet_says_what_and_how_to_fix(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="address bar|Save as") as err:
        parse_spreadsheet(text)
    assert says in str(err.value)


def test_titles_are_quoted_for_a1() -> None:
    assert quote_title("Labels") == "'Labels'"
    assert quote_title("Bob's labels") == "'Bob''s labels'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sheet1!A1:Z1000", ("Sheet1", 1, 0, 1000, 25)),
        ("'🌵 test_values_batch_get 1'!A1:A10", ("🌵 test_values_batch_get 1", 1, 0, 10, 0)),
        ("'Bob''s!tab'!B2:AB9", ("Bob's!tab", 2, 1, 9, 27)),
        ("odd!name!C3", ("odd!name", 3, 2, 3, 2)),
    ],
)
def test_answer_ranges_give_title_and_grid(text: str, expected: tuple[object, ...]) -> None:
    r = parse_range(text)
    assert (r.title, r.first_row, r.first_col, r.last_row, r.last_col) == expected


def test_unreadable_ranges_are_refused() -> None:
    for text in ("A1:B2", "'open!A1", "Sheet1!12"):
        with pytest.raises(ValueError):
            parse_range(text)


def test_a1_and_columns() -> None:
    assert column_index("A") == 0 and column_index("Z") == 25 and column_index("AA") == 26
    assert a1(2, 3) == "D2"
    assert a1(2, 3, rows=8, cols=3) == "D2:F9"


def test_blocks_cover_exactly_the_cells_given() -> None:
    # rows 2-4 get status+time+message (F:H); rows 2 and 4 (synced) also id+hash (I:J);
    # row 6 is alone; nothing else may be written
    cells = {}
    for r in (2, 3, 4, 6):
        for c in (5, 6, 7):
            cells[(r, c)] = f"{r}{c}"
    for r in (2, 4):
        for c in (8, 9):
            cells[(r, c)] = f"{r}{c}"
    blocks = plan_blocks(cells)
    covered = {
        (b.first_row + i, b.first_col + j): v
        for b in blocks
        for i, row in enumerate(b.values)
        for j, v in enumerate(row)
    }
    assert covered == cells
    assert Block(2, 5, [["25", "26", "27"], ["35", "36", "37"], ["45", "46", "47"]]) in blocks
    assert len(blocks) == 4  # F2:H4, F6:H6, I2:J2, I4:J4


def test_contiguous_rows_are_one_range() -> None:
    cells = {(r, c): "x" for r in range(2, 10_002) for c in (3, 4, 5)}
    [chunk] = write_chunks(cells, "Labels")
    assert chunk == [{"range": "'Labels'!D2:F10001", "values": [["x", "x", "x"]] * 10_000}]


def test_writes_are_split_every_25k_rows_into_even_chunks() -> None:
    cells = {(r, 7): "synced" for r in range(2, 2 + 30_000)}
    chunks = write_chunks(cells, "T")
    assert [len(c[0]["values"]) for c in chunks] == [15_000, 15_000]
    assert [c[0]["range"] for c in chunks] == ["'T'!H2:H15001", "'T'!H15002:H30001"]
    assert len(write_chunks({(r, 7): "x" for r in range(2, 2 + MAX_WRITE_ROWS)}, "T")) == 1


def test_a_row_split_across_bands_counts_once_toward_the_row_limit() -> None:
    # 25k rows, each written in two bands (F:H and J): still one request
    cells = {(r, c): "v" for r in range(2, 2 + 25_000) for c in (5, 6, 7, 9)}
    [chunk] = write_chunks(cells, "T")
    assert [e["range"] for e in chunk] == ["'T'!F2:H25001", "'T'!J2:J25001"]


def test_long_messages_split_a_write_by_size() -> None:
    cells = {(r, 3): "m" * 1000 for r in range(2, 2 + 3000)}
    chunks = write_chunks(cells, "T", max_bytes=1_000_000)
    assert len(chunks) == 4
    assert all(len(request_body(c)) <= 1_000_000 for c in chunks)
    assert sum(len(e["values"]) for c in chunks for e in c) == 3000


def test_twenty_five_thousand_default_statuses_fit_one_request_near_two_megabytes() -> None:
    row = ["synced", "2026-01-01T00:00:00Z", "", "U3BhbkFubm90YXRpb246MTIzNDU2", "0123456789abcdef"]
    cells = {(r, 5 + j): v for r in range(2, 25_002) for j, v in enumerate(row)}
    [chunk] = write_chunks(cells, "Labels")
    size = len(request_body(chunk))
    assert 2_000_000 < size < 2_300_000, size


def test_request_body_is_raw_and_compact() -> None:
    body = request_body([{"range": "'T'!A1", "values": [['=HYPERLINK("x")', "é"]]}])
    assert json.loads(body)["valueInputOption"] == "RAW"
    assert b", " not in body and "é".encode() in body


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    assert parse_retry_after("-3") == 0
    for junk in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(junk) is None


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    assert [backoff_delay(n, 1.0, 32.0, 0.0) for n in range(7)] == [1, 2, 4, 8, 16, 32, 32]
    assert backoff_delay(2, 1.0, 32.0, 0.999) == pytest.approx(4.999)
    assert backoff_delay(10, 0.5, 30.0, 0.5) == 30.0


# --- dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "kind", "expected"),
    [
        (43831, "DATE", date(2020, 1, 1)),  # recorded: 2020-01-01 -> 43831
        (36162, "DATE", date(1999, 1, 2)),  # recorded: 1999-01-02 -> 36162
        (43831.0, "DATE", date(2020, 1, 1)),
        (43831.75, "DATE", date(2020, 1, 1)),  # a date-time formatted as a date shows the day
        (61, "DATE", date(1900, 3, 1)),
        (0, "DATE", date(1899, 12, 30)),
        (-1, "DATE", date(1899, 12, 29)),
        (43831.604166666664, "DATE_TIME", datetime(2020, 1, 1, 14, 30)),
        (45000.5, "DATE_TIME", datetime(2023, 3, 15, 12, 0)),
        (43831, "DATE_TIME", datetime(2020, 1, 1)),
        (0.5, "TIME", time(12, 0)),
        (0.604166666666667, "TIME", time(14, 30)),
        (0.999988425925926, "TIME", time(23, 59, 59)),
        (43831.25, "TIME", time(6, 0)),  # a time of day, whatever the day
    ],
)
def test_serial_numbers_become_dates_datetimes_and_times(
    serial: float, kind: str, expected: object
) -> None:
    got = from_serial(serial, kind)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    "serial", [1e12, -1e12, 3_000_000, -700_000, float("inf"), float("-inf"), float("nan")]
)
def test_a_serial_no_date_can_hold_stays_a_number(serial: float) -> None:
    assert serial_datetime(serial) is None
    got = from_serial(serial, "DATE")
    assert got is serial  # the rules then say what is wrong with it


def test_only_date_formats_make_dates() -> None:
    assert from_serial(43831, "NUMBER") == 43831
    assert from_serial(0.45, "PERCENT") == 0.45
    assert from_serial(43831, None) == 43831
    assert from_serial(True, "DATE") is True  # a checkbox is not a number
    assert from_serial("2020-01-01", "DATE") == "2020-01-01"  # text stays text
    assert serial_datetime(2_958_465.5) == datetime(9999, 12, 31, 12)  # the last day there is
    assert serial_datetime(2_958_466) is None and serial_datetime(-693_593) == datetime(1, 1, 1)


def test_date_candidates_are_numbers_where_dates_may_hide() -> None:
    grid = [
        ["Labels for March"],
        ["id", "label", "score", "note"],
        [43831, "ok", 0.5, 7],
        ["a", 3, 43831.5, True],
        [],
        ["b", "x", 18_263, 0.25],  # the day before 1950-01-01
        ["c", False, 73_051],  # 2100-01-01
        ["d", "y", 73_052, "text"],
    ]
    found = date_candidates(grid, 3, {0: False, 1: False, 2: True, 3: False})
    # 3 and 7 are ratings, not dates of 1900; 0.25 may be 06:00
    assert found == {0: [3], 2: [4, 7], 3: [6]}
    assert date_candidates([["n"], [0], [1], [0.0], [-0.5], [18_264]], 2, {0: False}) == {0: [6]}
    assert date_candidates(grid, 3, {2: True, 9: False}) == {2: [4, 7]}
    assert date_candidates(grid[:2], 3, {0: False}) == {}
    assert date_candidates([["id"], ["a"], [0.75]], 2, {0: False}) == {0: [3]}


def test_format_ranges_bound_each_columns_candidates() -> None:
    ranges = format_ranges("It's mine", {3: [5, 9, 12], 0: [2]})
    assert ranges == ["'It''s mine'!A2", "'It''s mine'!D5:D12"]
    assert format_ranges("Labels", {27: [2, 3]}) == ["'Labels'!AB2:AB3"]
    assert format_ranges("Labels", {}) == []


def test_number_formats_read_googles_sparse_grid_data() -> None:
    def typed(kind: str) -> dict[str, object]:
        return {"effectiveFormat": {"numberFormat": {"type": kind}}}

    answer = {
        "sheets": [
            {
                "data": [
                    {  # startRow and startColumn 0: left out
                        "rowData": [{"values": [typed("TEXT"), {}, typed("DATE")]}, {}]
                    },
                    {
                        "startRow": 4,
                        "startColumn": 3,
                        "rowData": [
                            {"values": [{}]},
                            {},
                            {"values": [typed("DATE_TIME"), typed("TIME")]},
                            {"values": [{"effectiveFormat": {}}]},
                        ],
                    },
                    {"startRow": 9, "startColumn": 1},  # nothing in it: no rowData at all
                ]
            },
            {},  # a sheet with no data
        ]
    }
    assert number_formats(answer) == {
        (1, 0): "TEXT",
        (1, 2): "DATE",
        (7, 3): "DATE_TIME",
        (7, 4): "TIME",
    }
    assert number_formats({}) == {} and number_formats({"sheets": [{"data": []}]}) == {}


def test_probes_are_nulls_over_runs_of_rows_and_read_back_by_cell() -> None:
    probes = probe_ranges("My tab", [5, 2, 3, 9], [0, 4, 0])
    assert [p["range"] for p in probes] == [
        "'My tab'!A2:A3",
        "'My tab'!E2:E3",
        "'My tab'!A5",
        "'My tab'!E5",
        "'My tab'!A9",
        "'My tab'!E9",
    ]
    assert all(v is None for p in probes for r in p["values"] for v in r)
    answers = [{"updatedData": {"values": [["k2"]]}}, {}, {"updatedData": {"values": [[7]]}}]
    cells = probed_cells(probes[:3], answers)
    assert cells == {(2, 0): "k2", (3, 0): None, (2, 4): None, (3, 4): None, (5, 0): 7}


def test_an_echoed_write_asks_for_values_typed_as_the_reads() -> None:
    body = json.loads(request_body([], echo=True))
    assert body["includeValuesInResponse"] is True
    assert body["responseValueRenderOption"] == "UNFORMATTED_VALUE"
    assert "includeValuesInResponse" not in json.loads(request_body([]))
