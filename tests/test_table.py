"""Helpers shared by the sources: header matching, rows from a grid, keys, placement, files."""

from __future__ import annotations

import math
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import SourceError
from bridge.records import StatusColumns, StatusUpdate
from bridge.sources._table import (
    CellError,
    column_letter,
    header_index,
    is_read_only,
    key_part,
    lock_files,
    place_updates,
    rows_from_grid,
    status_positions,
)

STATUS = StatusColumns()


@pytest.mark.parametrize(
    ("index", "letters"),
    [(0, "A"), (1, "B"), (25, "Z"), (26, "AA"), (51, "AZ"), (701, "ZZ"), (702, "AAA")],
)
def test_column_letter(index: int, letters: str) -> None:
    assert column_letter(index) == letters


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("  abc ", "abc"),
        (True, "TRUE"),
        (False, "FALSE"),
        (3, "3"),
        (3.0, "3"),  # calamine reads whole numbers as floats, openpyxl as ints: same key
        (0.1, "0.1"),
        (math.nan, "nan"),
        (datetime(2024, 5, 1), "2024-05-01"),  # openpyxl datetime == calamine date at midnight
        (date(2024, 5, 1), "2024-05-01"),
        (datetime(2024, 5, 1, 13, 30), "2024-05-01T13:30:00"),
    ],
)
def test_key_part_is_stable_across_readers(value: Any, expected: str) -> None:
    assert key_part(value) == expected


# --- header_index ---------------------------------------------------------------------------


def test_header_names_match_after_trimming() -> None:
    header = [" span_id ", "label\t", None, "score"]
    assert header_index(header, ["span_id", " label", "score"], "x.xlsx", 1) == {
        "span_id": 0,
        " label": 1,
        "score": 3,
    }


def test_missing_column_lists_the_columns_found() -> None:
    with pytest.raises(SourceError) as info:
        header_index(["id", "verdict", None, "notes"], ["span_id"], "labels.xlsx, worksheet 'L'", 2)
    assert str(info.value) == (
        "labels.xlsx, worksheet 'L': column 'span_id' not found in header row 2; columns found: "
        "'id', 'verdict', 'notes'. Fix the column names in the mapping, or set header_row if the "
        "header is on another row"
    )


def test_several_missing_columns_with_near_names() -> None:
    with pytest.raises(SourceError) as info:
        header_index(["Span ID", "labels", "score"], ["span_id", "label", "annotator"], "f.csv", 1)
    assert str(info.value) == (
        "f.csv: columns 'span_id', 'label', 'annotator' not found in header row 1; columns found: "
        "'Span ID', 'labels', 'score'. Did you mean 'span_id' -> 'Span ID', 'label' -> 'labels'? "
        "Fix the column names in the mapping, or set header_row if the header is on another row"
    )


def test_empty_header_says_none_found() -> None:
    with pytest.raises(SourceError, match="columns found: none"):
        header_index([None, ""], ["span_id"], "f.csv", 1)


def test_duplicated_header_of_a_used_column() -> None:
    with pytest.raises(SourceError) as info:
        header_index(["span_id", "label", "span_id "], ["span_id", "label"], "f.csv", 1)
    assert str(info.value) == (
        "f.csv: column 'span_id' appears twice in header row 1 (columns A and C); rename one of "
        "them"
    )


def test_duplicated_header_of_an_unused_column_is_fine() -> None:
    assert header_index(["span_id", "notes", "notes"], ["span_id"], "f.csv", 1) == {"span_id": 0}


def test_status_positions_first_occurrence_only_existing() -> None:
    header = ["span_id", " sync_status", "label", "sync_status", "sync_hash", "other"]
    assert status_positions(header, STATUS) == {"sync_status": 1, "sync_hash": 4}
    custom = StatusColumns(status="State")
    assert status_positions(["State", "sync_status"], custom) == {"State": 0}


# --- rows_from_grid -------------------------------------------------------------------------


GRID: list[list[Any]] = [
    ["Labels for week 12"],
    [],
    ["span_id", "label", "notes", "sync_status", "sync_hash"],
    ["a1", "good", "n1", "synced", "h1"],
    [None, None, "only notes", "", ""],  # nothing wanted: blank
    ["", "  "],  # short and blank
    ["a2", "bad"],  # short row: missing cells are None
    ["a1", "good again", None, None, None],  # same key again
    [None, "no id"],
]


def test_rows_from_grid() -> None:
    rows = rows_from_grid(GRID, 3, ["span_id", "label"], ["span_id"], STATUS, "f")
    assert [(r.sheet_row, r.values, r.key, r.occurrence, r.status) for r in rows] == [
        (
            4,
            {"span_id": "a1", "label": "good"},
            ("a1",),
            0,
            {"sync_status": "synced", "sync_hash": "h1"},
        ),
        (7, {"span_id": "a2", "label": "bad"}, ("a2",), 0, {"sync_status": "", "sync_hash": ""}),
        (
            8,
            {"span_id": "a1", "label": "good again"},
            ("a1",),
            1,
            {"sync_status": "", "sync_hash": ""},
        ),
        (9, {"span_id": None, "label": "no id"}, ("",), 0, {"sync_status": "", "sync_hash": ""}),
    ]


def test_rows_from_grid_keeps_values_typed() -> None:
    grid: list[list[Any]] = [["span_id", "score", "ok"], ["00123", 0.5, True]]
    (row,) = rows_from_grid(grid, 1, ["span_id", "score", "ok"], ["span_id"], STATUS, "f")
    assert row.values == {"span_id": "00123", "score": 0.5, "ok": True}
    assert row.key == ("00123",)


def test_optional_columns_are_read_when_present_and_no_error_when_absent() -> None:
    rows = rows_from_grid(GRID, 3, ["span_id", "label"], ["span_id"], STATUS, "f", ["notes"])
    # the row with only notes (row 5) is still blank: by the wanted columns alone
    assert [(r.sheet_row, r.values) for r in rows] == [
        (4, {"span_id": "a1", "label": "good", "notes": "n1"}),
        (7, {"span_id": "a2", "label": "bad", "notes": None}),  # a short row: None
        (8, {"span_id": "a1", "label": "good again", "notes": None}),
        (9, {"span_id": None, "label": "no id", "notes": None}),
    ]
    absent = rows_from_grid(GRID, 3, ["span_id", "label"], ["span_id"], STATUS, "f", ["link"])
    assert [r.values for r in absent] == [
        r.values for r in rows_from_grid(GRID, 3, ["span_id", "label"], ["span_id"], STATUS, "f")
    ]
    # an optional column that is also wanted is read once, as wanted; a repeated one: the first
    grid = [["id", "link", "link"], ["a", "http://127.0.0.1/1", "http://127.0.0.1/2"]]
    (row,) = rows_from_grid(grid, 1, ["id"], ["id"], STATUS, "f", ["link", "id"])
    assert row.values == {"id": "a", "link": "http://127.0.0.1/1"}
    # the optional column rightmost, and rows cut short before it (trailing cells left out)
    short = [["id", "label", "link"], ["a", "x"], ["b", "y", "http://127.0.0.1/b"]]
    got = rows_from_grid(short, 1, ["id", "label"], ["id"], StatusColumns(), "f", ["link"])
    assert [r.values["link"] for r in got] == [None, "http://127.0.0.1/b"]


def test_keys_of_several_columns() -> None:
    grid = [["span_id", "who", "label"], ["s", "ann", "x"], ["s", "bob", "y"], ["s", "ann", "z"]]
    rows = rows_from_grid(grid, 1, ["span_id", "who", "label"], ["span_id", "who"], STATUS, "f")
    assert [(r.key, r.occurrence) for r in rows] == [
        (("s", "ann"), 0),
        (("s", "bob"), 0),
        (("s", "ann"), 1),
    ]


@pytest.mark.parametrize("header_row", [2, 10])
def test_empty_or_missing_header_row(header_row: int) -> None:
    with pytest.raises(SourceError) as info:
        rows_from_grid(GRID, header_row, ["span_id"], ["span_id"], STATUS, "labels.xlsx")
    assert str(info.value) == (
        f"labels.xlsx: header row {header_row} is empty; the sheet needs a header row with the "
        "column names of the mapping (or set header_row)"
    )


# --- place_updates --------------------------------------------------------------------------


def upd(row: int, key: str, occurrence: int = 0) -> StatusUpdate:
    return StatusUpdate(row, (key,) if key else ("",), occurrence, {"sync_status": key or "?"})


def test_updates_follow_their_key_after_a_sort() -> None:
    updates = [upd(2, "a"), upd(3, "b"), upd(4, "c")]
    placed, vanished = place_updates([(2, ("c",)), (3, ("a",)), (4, ("b",))], updates)
    assert [(row, u.key) for row, u in placed] == [(3, ("a",)), (4, ("b",)), (2, ("c",))]
    assert vanished == []


def test_inserted_and_deleted_rows() -> None:
    updates = [upd(2, "a"), upd(3, "b"), upd(4, "c")]
    # a new row at 2, "b" deleted
    now = [(2, ("new",)), (3, ("a",)), (4, ("c",))]
    placed, vanished = place_updates(now, updates)
    assert [(row, u.key) for row, u in placed] == [(3, ("a",)), (4, ("c",))]
    assert vanished == [updates[1]]


def test_rows_sharing_a_key_are_told_apart_by_occurrence() -> None:
    updates = [upd(2, "a", 0), upd(5, "a", 1), upd(6, "a", 2)]
    placed, vanished = place_updates([(3, ("a",)), (4, ("x",)), (7, ("a",))], updates)
    assert [(row, u.sheet_row) for row, u in placed] == [(3, 2), (7, 5)]
    assert vanished == [updates[2]]


def test_a_row_without_key_is_found_by_its_content_never_by_its_old_row() -> None:
    updates = [upd(4, ""), upd(6, "")]
    then = {4: ("", "correct"), 6: ("", "wrong")}
    # a row was inserted above: row 4 is blank now, "correct" is on row 5, "wrong" is gone
    now = [(3, ("a",)), (4, ("",)), (5, ("",)), (6, ("b",))]
    contents = {4: ("", ""), 5: ("", "correct")}
    placed, vanished = place_updates(now, updates, then, contents)
    assert [(row, u.sheet_row) for row, u in placed] == [(5, 4)]
    assert vanished == [updates[1]]  # never on the blank row 4, nor on row 6 (another row)


def test_rows_without_key_of_the_same_content_keep_their_order() -> None:
    updates = [upd(2, ""), upd(3, ""), upd(5, "")]
    then = {2: ("", "x"), 3: ("", "y"), 5: ("", "x")}
    now = [(2, ("",)), (3, ("",)), (4, ("",)), (5, ("a",))]
    contents = {2: ("", "y"), 3: ("", "x"), 4: ("", "x")}
    placed, vanished = place_updates(now, updates, then, contents)
    assert [(row, u.sheet_row) for row, u in placed] == [(3, 2), (2, 3), (4, 5)]
    assert vanished == []


def test_a_row_without_key_the_read_did_not_see_is_never_placed() -> None:
    placed, vanished = place_updates([(4, ("",))], [upd(4, "")], {}, {4: ("", "x")})
    assert placed == [] and vanished == [upd(4, "")]


def test_partly_empty_key_is_still_a_key() -> None:
    update = StatusUpdate(5, ("", "ann"), 0, {"sync_status": "invalid"})
    placed, vanished = place_updates([(2, ("", "ann")), (5, ("", ""))], [update])
    assert placed == [(2, update)] and vanished == []


# --- files ----------------------------------------------------------------------------------


def test_lock_files_of_excel_and_libreoffice(tmp_path: Path) -> None:
    book = tmp_path / "labels.xlsx"
    book.touch()
    assert lock_files(book) == []
    (tmp_path / "~$other.xlsx").touch()
    assert lock_files(book) == []
    (tmp_path / ".~lock.labels.xlsx#").touch()
    assert lock_files(book) == [tmp_path / ".~lock.labels.xlsx#"]
    (tmp_path / "~$labels.xlsx").touch()
    assert lock_files(book) == [tmp_path / "~$labels.xlsx", tmp_path / ".~lock.labels.xlsx#"]


def test_is_read_only(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.touch()
    assert not is_read_only(path)
    os.chmod(path, 0o444)  # read-only for everyone, even for root
    assert is_read_only(path)
    os.chmod(path, 0o644)
    assert not is_read_only(path)
    assert is_read_only(tmp_path / "missing.csv")


def test_an_error_cell_is_text_for_the_rules_but_no_key() -> None:
    error = CellError("#N/A")
    assert error == "#N/A" and key_part(error) == ""
    grid = [["span_id", "label"], [error, "a"], [None, error], [None, None]]
    rows = rows_from_grid(grid, 1, ["span_id", "label"], ["span_id"], STATUS, "sheet")
    # a row whose only value is an error is not a blank row: its status says what is wrong
    assert [(r.sheet_row, r.key, r.values["label"]) for r in rows] == [
        (2, ("",), "a"),
        (3, ("",), "#N/A"),
    ]


# --- rows_from_grid's loop against a plain one -----------------------------------------------


def _plain_rows(
    grid: list[list[Any]], header_row: int, wanted: list[str], key_columns: list[str]
) -> list[tuple[int, dict[str, Any], tuple[str, ...], int, dict[str, str]]]:
    """What rows_from_grid promises, written the plain way: a cell past the row's end is
    None; a row whose wanted cells are all empty or spaces is left out; keys and statuses are
    key_part of their cells; occurrence counts the rows above with the same key."""
    header = grid[header_row - 1]
    index = header_index(header, wanted, "f", header_row)
    status_at = status_positions(header, STATUS)
    seen: dict[tuple[str, ...], int] = {}
    out = []
    for sheet_row, cells in enumerate(grid[header_row:], start=header_row + 1):

        def cell(i: int, cells: list[Any] = cells) -> Any:
            return cells[i] if i < len(cells) else None

        values = {name: cell(i) for name, i in index.items()}
        if all(v is None or (type(v) is str and v.strip() == "") for v in values.values()):
            continue
        key = tuple(key_part(cell(index[c])) for c in key_columns)
        status = {name: key_part(cell(i)) for name, i in status_at.items()}
        out.append((sheet_row, values, key, seen.get(key, 0), status))
        seen[key] = seen.get(key, 0) + 1
    return out


TRICKY_GRID: list[list[Any]] = [
    ["span_id", "label", "score", "who", "sync_status", "notes", "sync_hash"],
    ["a1", "good", 0.5, "ann", "synced", "n", "h1"],
    [" a1 ", " good ", 0.5, " ann ", " synced ", "", " h1 "],  # the same key, trimmed
    ["a1", "bad", 0.25, "bob"],  # short: no statuses
    ["", " ", "", "\t", "synced", "notes only", "h"],  # blank where it matters
    [None, None, None, None],
    [],
    [CellError("#N/A"), "x", None, "ann"],  # an error is no key, but a value
    [None, CellError("#REF!"), None, None],
    [12345.0, "num id", 1.0, "ann"],
    [12345, "int id", 1, "ann"],
    [True, False, 0.0, "ann", True, None, 1.5],
    [datetime(2026, 5, 1), "when", None, date(2026, 5, 2)],
    [datetime(2026, 5, 1, 9, 30), None, math.nan, None],
    ["a1", "good", 0.5, "ann", CellError("#N/A"), None, CellError("#DIV/0!")],
    ["\u3000", "\u00a0", None, None],  # only (Unicode) spaces: blank
    ["x\x00y", "ctl", None, "ann"],
]


@pytest.mark.parametrize(
    ("wanted", "key_columns"),
    [
        (["span_id", "label", "score", "who"], ["span_id", "who"]),
        (["span_id", "label"], ["span_id"]),
        (["label", "score"], ["score", "label"]),
        (["who"], []),
    ],
)
def test_rows_from_grid_is_the_plain_loop(wanted: list[str], key_columns: list[str]) -> None:
    for header_row, grid in ((1, TRICKY_GRID), (3, [["title"], [], *TRICKY_GRID])):
        got = rows_from_grid(grid, header_row, wanted, key_columns, STATUS, "f")
        expected = _plain_rows(grid, header_row, wanted, key_columns)
        assert [(r.sheet_row, r.values, r.key, r.occurrence, r.status) for r in got] == expected
        assert all(
            type(v) is type(e[1][k])
            for r, e in zip(got, expected, strict=True)
            for k, v in r.values.items()
        )
    assert len(expected) >= 5


# --- gc_paused ------------------------------------------------------------------------------


def test_gc_paused_turns_the_collector_back_on_and_leaves_frozen_objects_frozen() -> None:
    import gc

    from bridge._gc import gc_paused

    def generation_of(obj: object) -> int:
        return next(g for g in range(3) if any(o is obj for o in gc.get_objects(g)))

    assert gc.isenabled() and gc.get_freeze_count() == 0
    with gc_paused():
        assert not gc.isenabled()
        made = [[i] for i in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() == 0
    # what was made went to the oldest generation, without a collection walking it first
    assert generation_of(made[-1]) == 2
    # a process that froze objects of its own: they stay frozen, and nothing else is
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            young = [[i] for i in range(1000)]
        assert gc.isenabled()
        gc.disable()  # no collection of our own while we look
        try:
            assert gc.get_freeze_count() == frozen and generation_of(young[-1]) in (0, 1)
        finally:
            gc.enable()
    finally:
        gc.unfreeze()
    # the collector off before: off after, and nothing moved
    gc.disable()
    try:
        with gc_paused():
            kept = [[i] for i in range(1000)]
        assert not gc.isenabled() and generation_of(kept[-1]) == 0
    finally:
        gc.enable()
    # an error inside: the collector is on again all the same
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
