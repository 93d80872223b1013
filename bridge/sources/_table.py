"""Helpers shared by the sources: header matching, rows from a grid, keys, placement, and
whether a file can be written back."""

from __future__ import annotations

import difflib
import math
import os
import stat
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bridge.errors import SourceError
from bridge.records import CellError, Row, StatusColumns, StatusUpdate


def column_letter(index: int) -> str:
    """0-based column index -> spreadsheet letters (0 -> A, 26 -> AA)."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def key_part(value: Any) -> str:
    """A cell value as a stable string, the same whichever reader produced it."""
    if value is None or isinstance(value, CellError):
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        if value.hour == value.minute == value.second == value.microsecond == 0:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def header_index(
    header: Sequence[Any], wanted: Iterable[str], where: str, header_row: int
) -> dict[str, int]:
    """Map each wanted column name to its 0-based index, matching names after trimming spaces.

    :raises SourceError: a wanted column is missing (listing the columns found) or appears twice.
    """
    positions: dict[str, list[int]] = defaultdict(list)
    for i, cell in enumerate(header):
        name = key_part(cell)
        if name:
            positions[name].append(i)
    found: dict[str, int] = {}
    missing: list[str] = []
    for name in wanted:
        hits = positions.get(name.strip(), [])
        if not hits:
            missing.append(name)
        elif len(hits) > 1:
            cols = " and ".join(column_letter(i) for i in hits)
            raise SourceError(
                f"{where}: column '{name}' appears twice in header row {header_row} "
                f"(columns {cols}); rename one of them"
            )
        else:
            found[name] = hits[0]
    if missing:
        seen = ", ".join(f"'{n}'" for n in positions) or "none"
        hints = [f"'{m}' -> '{near}'" for m in missing if (near := _near(m, positions))]
        hint = f" Did you mean {', '.join(hints)}?" if hints else ""
        raise SourceError(
            f"{where}: {'column' if len(missing) == 1 else 'columns'} "
            f"{', '.join(repr(m) for m in missing)} not found in header row "
            f"{header_row}; columns found: {seen}.{hint} Fix the column names in the mapping, "
            "or set header_row if the header is on another row"
        )
    return found


def _near(name: str, found: Iterable[str]) -> str | None:
    """The header most like ``name``: same letters ignoring case and spaces, or a close spelling."""
    names = list(found)

    def squash(s: str) -> str:
        return "".join(s.split()).replace("_", "").casefold()

    for candidate in names:
        if squash(candidate) == squash(name):
            return candidate
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return close[0] if close else None


near_name = _near  # for the export sinks: a missing id column that is no near miss is added


def status_positions(header: Sequence[Any], columns: StatusColumns) -> dict[str, int]:
    """Where the status columns are, for those that exist already (the first, if repeated)."""
    out: dict[str, int] = {}
    for i, cell in enumerate(header):
        name = key_part(cell)
        if name in columns.names() and name not in out:
            out[name] = i
    return out


def rows_from_grid(
    grid: Iterable[Sequence[Any]],
    header_row: int,
    wanted: Sequence[str],
    key_columns: Sequence[str],
    columns: StatusColumns,
    where: str,
) -> list[Row]:
    """Turn a grid (first element = sheet row 1) into Rows with values, keys and statuses.

    The grid is read once, row by row: it may be an iterator that never holds the sheet.
    """
    lines = iter(grid)
    header: Sequence[Any] = ()
    for _ in range(header_row):
        header = next(lines, ())
    if not any(key_part(c) for c in header):
        raise SourceError(
            f"{where}: header row {header_row} is empty; the sheet needs a header row with "
            "the column names of the mapping (or set header_row)"
        )
    index = header_index(header, wanted, where, header_row)
    status_at = status_positions(header, columns)
    rows: list[Row] = []
    occurrences: dict[tuple[str, ...], int] = {}
    wanted_at = list(index.items())
    status_items = list(status_at.items())
    width = max([i + 1 for _, i in wanted_at] + [i + 1 for _, i in status_items])
    key_at = [index[c] for c in key_columns]
    # the loop runs once per sheet row (100,000 and more): locals, positional calls, and
    # key_part inlined for the usual cell, text
    add, seen, make, part = rows.append, occurrences.get, Row, key_part
    for sheet_row, cells in enumerate(lines, start=header_row + 1):
        if len(cells) < width:
            cells = [*cells, *[None] * (width - len(cells))]
        values = {name: cells[i] for name, i in wanted_at}
        for v in values.values():
            if v is not None and (type(v) is not str or (v and not v.isspace())):
                break
        else:
            continue  # a blank row: nothing to label, nothing to report
        key = tuple([c.strip() if type(c := cells[i]) is str else part(c) for i in key_at])
        status = (
            {name: c.strip() if type(c := cells[i]) is str else part(c) for name, i in status_items}
            if status_items
            else {}
        )
        n = seen(key, 0)
        occurrences[key] = n + 1
        add(make(sheet_row, values, key, n, status))
    return rows


def place_updates(
    current_keys: Iterable[tuple[int, tuple[str, ...]]],
    updates: Sequence[StatusUpdate],
) -> tuple[list[tuple[int, StatusUpdate]], list[StatusUpdate]]:
    """Locate each update's row by key at write time.

    A row whose key cells are all empty (a label without an id) has nothing to find it by:
    it keeps its position if that row's key cells are still empty there.

    :param current_keys: (sheet_row, key) for every data row as the sheet is now.
    :returns: (sheet_row, update) pairs to write, and the updates whose row vanished.
    """
    by_key: dict[tuple[str, ...], list[int]] = defaultdict(list)
    empty_rows: set[int] = set()
    for sheet_row, key in current_keys:
        if any(key):
            by_key[key].append(sheet_row)
        else:
            empty_rows.add(sheet_row)
    placed: list[tuple[int, StatusUpdate]] = []
    vanished: list[StatusUpdate] = []
    for update in updates:
        if not any(update.key):
            if update.sheet_row in empty_rows:
                placed.append((update.sheet_row, update))
            else:
                vanished.append(update)
            continue
        rows = by_key.get(update.key, [])
        if update.occurrence < len(rows):
            placed.append((rows[update.occurrence], update))
        else:
            vanished.append(update)
    return placed, vanished


def lock_files(path: Path) -> list[Path]:
    """Lock files of a spreadsheet program that has ``path`` open.

    Excel keeps "~$name.xlsx" beside an open file, LibreOffice ".~lock.name.xlsx#".
    """
    d, n = path.parent, path.name
    return [p for p in (d / f"~${n}", d / f".~lock.{n}#") if p.exists()]


def is_read_only(path: Path) -> bool:
    """True when ``path`` cannot, or must not, be written.

    A file with no write permission bit at all was marked read-only on purpose; that counts
    even for a user (root, a CI container) whom the system would let write it anyway.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return True
    return not os.access(path, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
