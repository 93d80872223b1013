"""Helpers shared by the sources: header matching, rows from a grid, keys, placement, and
whether a file can be written back."""

from __future__ import annotations

import difflib
import math
import os
import stat
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bridge.errors import SourceError
from bridge.records import CellError, Row, StatusColumns, StatusUpdate, safe_text
from bridge.sources.base import ReadSpec


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


def optional_positions(
    header: Sequence[Any], optional: Iterable[str], wanted: Mapping[str, int]
) -> dict[str, int]:
    """Where the optional columns the header has are (the first, if repeated); those also
    among the ``wanted`` ones (found already) are left to them."""
    names = {n.strip(): n for n in optional if n not in wanted}
    out: dict[str, int] = {}
    for i, cell in enumerate(header):
        name = names.get(key_part(cell))
        if name is not None and name not in out:
            out[name] = i
    return out


def rows_from_grid(
    grid: Iterable[Sequence[Any]],
    header_row: int,
    wanted: Sequence[str],
    key_columns: Sequence[str],
    columns: StatusColumns,
    where: str,
    optional: Sequence[str] = (),
) -> list[Row]:
    """Turn a grid (first element = sheet row 1) into Rows with values, keys and statuses.

    ``optional`` columns are put in the values when the header has them (the first, if
    repeated) and are no error when it does not; whether a row is blank is told by the
    ``wanted`` columns alone.

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
    optional_at = list(optional_positions(header, optional, index).items())
    rows: list[Row] = []
    occurrences: dict[tuple[str, ...], int] = {}
    wanted_at = list(index.items())
    status_items = list(status_at.items())
    width = max(
        [i + 1 for _, i in wanted_at]
        + [i + 1 for _, i in status_items]
        + [i + 1 for _, i in optional_at]
    )
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
        if optional_at:
            for name, i in optional_at:
                values[name] = cells[i]
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


def read_rows(
    grid: Iterable[Sequence[Any]], header_row: int, spec: ReadSpec, where: str
) -> list[Row]:
    """``rows_from_grid`` for what the pipeline asks (every medium reads through here, so a
    new part of ReadSpec reaches all of them)."""
    return rows_from_grid(
        grid,
        header_row,
        spec.columns,
        spec.key_columns,
        spec.status,
        where,
        spec.optional_columns,
    )


def keyless_contents(rows: Iterable[Row], columns: Sequence[str]) -> dict[int, tuple[str, ...]]:
    """What each row with no key holds (its mapped columns' values), by its row at read time.

    Such a row (a label typed without its id and annotator) has nothing else to be found by
    when the statuses are written: ``place_updates`` looks for this content again.
    """
    return {
        r.sheet_row: tuple(key_part(r.values.get(c)) for c in columns)
        for r in rows
        if not any(r.key)
    }


def content_positions(header: Sequence[Any], columns: Sequence[str]) -> list[int] | None:
    """Where the mapped ``columns`` are in ``header`` now, in their order; None if one is gone
    (no row without a key can then be recognised by its content)."""
    at: dict[str, int] = {}
    for i, cell in enumerate(header):
        name = key_part(cell)
        if name and name not in at:
            at[name] = i
    found = [at.get(c.strip()) for c in columns]
    return None if None in found else [i for i in found if i is not None]


def content_at(cells: Sequence[Any], positions: Sequence[int]) -> tuple[str, ...]:
    """The content of one row (see ``keyless_contents``), read from its cells now."""
    n = len(cells)
    return tuple([key_part(cells[i]) if i < n else "" for i in positions])


def as_stored(text: str) -> str:
    """A status text as the sheet gives it back when read again.

    Text that starts like a formula is written with a ``'`` in front (``safe_text``), and
    ``rows_from_grid`` trims the status cells it reads: a write is needed only when this
    differs from what the row holds, or the row is rewritten on every run.
    """
    return safe_text(text).strip()


def place_updates(
    current_keys: Iterable[tuple[int, tuple[str, ...]]],
    updates: Sequence[StatusUpdate],
    contents_then: Mapping[int, tuple[str, ...]] | None = None,
    contents_now: Mapping[int, tuple[str, ...]] | None = None,
) -> tuple[list[tuple[int, StatusUpdate]], list[StatusUpdate]]:
    """Locate each update's row by key at write time.

    A row whose key cells are all empty (a label without an id) is found by its content
    instead: the n-th row without a key that held this content when read is the n-th such row
    now. Never by its old position, which after a sort or an insertion holds another row or a
    blank one: a status lands on its own row or is reported as vanished.

    :param current_keys: (sheet_row, key) for every data row as the sheet is now.
    :param contents_then: ``keyless_contents`` of the read.
    :param contents_now: the content of rows without a key now, by sheet row.
    :returns: (sheet_row, update) pairs to write, and the updates whose row vanished.
    """
    by_key: dict[tuple[str, ...], list[int]] = defaultdict(list)
    empty_rows: list[int] = []
    for sheet_row, key in current_keys:
        if any(key):
            by_key[key].append(sheet_row)
        else:
            empty_rows.append(sheet_row)
    then = contents_then or {}
    now = contents_now or {}
    rank: dict[int, int] = {}  # read-time row -> its rank among rows of the same content
    seen: dict[tuple[str, ...], int] = defaultdict(int)
    for sheet_row in sorted(then):
        rank[sheet_row] = seen[then[sheet_row]]
        seen[then[sheet_row]] += 1
    by_content: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for sheet_row in empty_rows:
        content = now.get(sheet_row)
        if content is not None and any(content):
            by_content[content].append(sheet_row)
    placed: list[tuple[int, StatusUpdate]] = []
    vanished: list[StatusUpdate] = []
    for update in updates:
        if any(update.key):
            rows, n = by_key.get(update.key, []), update.occurrence
        else:
            content = then.get(update.sheet_row)
            rows = by_content.get(content, []) if content is not None else []
            n = rank.get(update.sheet_row, 0)
        if n < len(rows):
            placed.append((rows[n], update))
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
