"""Pure helpers of the Google Sheets source: spreadsheet references, A1 ranges, dates, write
plans, request chunks and retry timing. Nothing here does I/O, so all of it is tested directly."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bridge.sources._table import column_letter

# Sheets answers these with "try again later": quota (429), timeouts (408), server trouble.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# One values:batchUpdate holds at most this many sheet rows: the request budget is one write
# per ~25k rows (25k rows of three status columns is ~1 MB of JSON; Google's "Usage limits"
# page of the Sheets API recommends payloads of at most 2 MB).
MAX_WRITE_ROWS = 25_000
# ... and at most this many bytes. Google has no hard limit and recommends <= 2 MB "to speed
# up requests"; 25k rows of all five status columns with platform ids is ~2.1 MB, so the cap
# sits above that and only splits writes whose messages are unusually long.
MAX_WRITE_BYTES = 4 * 1024 * 1024

_KEY = re.compile(r"[A-Za-z0-9_-]{20,}")
_URL_KEY = re.compile(r"/spreadsheets/(?:u/\d+/)?d/([A-Za-z0-9_-]+)")
_CELL = re.compile(r"^([A-Za-z]*)(\d*)$")


@dataclass(frozen=True)
class SheetRef:
    """A spreadsheet key, and the tab (gid) the URL pointed at, if it did."""

    key: str
    gid: int | None = None


def parse_spreadsheet(text: str) -> SheetRef:
    """A spreadsheet key or URL -> its key and the URL's ``gid``.

    :raises ValueError: with what is wrong and how to fix it.
    """
    value = text.strip()
    fix = (
        "copy the URL from the browser's address bar while the sheet is open "
        "(https://docs.google.com/spreadsheets/d/<key>/edit), or just its key"
    )
    if not value:
        raise ValueError(f"spreadsheet is empty; {fix}")
    if _KEY.fullmatch(value):
        return SheetRef(value)
    if "://" not in value and not value.startswith(("docs.google.com", "drive.google.com")):
        raise ValueError(f"spreadsheet '{value}' is not a Google Sheets URL or key; {fix}")
    parts = urlsplit(value if "://" in value else f"https://{value}")
    host = parts.hostname or ""
    if "/spreadsheets/d/e/" in parts.path:
        raise ValueError(
            f"spreadsheet '{value}' is a 'Publish to the web' link, which is read-only; {fix}"
        )
    if host == "drive.google.com" and "/file/d/" in parts.path:
        raise ValueError(
            f"spreadsheet '{value}' is a file in Google Drive (an uploaded .xlsx or .csv), not "
            "a Google Sheet; open it and choose File > Save as Google Sheets, then use the URL "
            "of the new sheet (or use source type: excel with a downloaded copy)"
        )
    if not host.endswith("google.com"):
        raise ValueError(f"spreadsheet '{value}' is not a Google Sheets URL; {fix}")
    query = parse_qs(parts.query)
    match = _URL_KEY.search(parts.path)
    key = match.group(1) if match else (query.get("key") or query.get("id") or [""])[0]
    if not _KEY.fullmatch(key):
        raise ValueError(f"spreadsheet '{value}' has no spreadsheet key in it; {fix}")
    gid_text = parse_qs(parts.fragment).get("gid", query.get("gid", [""]))[0]
    gid = int(gid_text) if gid_text.isdigit() else None
    return SheetRef(key, gid)


def quote_title(title: str) -> str:
    """A worksheet title as A1 notation wants it: 'It''s mine'."""
    return "'" + title.replace("'", "''") + "'"


def column_index(letters: str) -> int:
    """Spreadsheet letters -> 0-based column index (A -> 0, AA -> 26)."""
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ord(ch) - 64)
    return n - 1


@dataclass(frozen=True)
class GridRange:
    """A range as Sheets reports it: the worksheet title and 1-based bounds (inclusive)."""

    title: str
    first_row: int
    first_col: int  # 0-based
    last_row: int
    last_col: int  # 0-based


def parse_range(text: str) -> GridRange:
    """Parse the ``range`` of a values response: ``Sheet1!A1:Z1000`` or ``'My tab'!B2:B10``.

    For a whole-sheet or open-ended request, Sheets answers with the range clipped to the
    grid (recorded: ``'T'!A:A`` on a 10-row tab -> ``'T'!A1:A10``), so the bounds tell the
    grid's size.

    :raises ValueError: not a range with a sheet title.
    """
    if text.startswith("'"):
        end = 1
        while True:
            end = text.find("'", end)
            if end < 0:
                raise ValueError(f"unbalanced quotes in range {text!r}")
            if text[end + 1 : end + 2] == "'":
                end += 2
                continue
            break
        title = text[1:end].replace("''", "'")
        rest = text[end + 1 :]
    else:
        title, sep, cells = text.rpartition("!")
        if not sep:
            raise ValueError(f"range {text!r} has no worksheet title")
        rest = "!" + cells
    if not rest.startswith("!"):
        raise ValueError(f"range {text!r} has no cells after the worksheet title")
    first, _, last = rest[1:].partition(":")
    last = last or first
    m1, m2 = _CELL.match(first), _CELL.match(last)
    if not m1 or not m2 or not m1.group(1) or not m2.group(1):
        raise ValueError(f"cannot read the cells of range {text!r}")
    return GridRange(
        title=title,
        first_row=int(m1.group(2) or 1),
        first_col=column_index(m1.group(1)),
        last_row=int(m2.group(2) or m1.group(2) or 1),
        last_col=column_index(m2.group(1)),
    )


def a1(first_row: int, first_col: int, rows: int = 1, cols: int = 1) -> str:
    """A1 notation of a rectangle (1-based rows, 0-based columns): D2:F9, or D2 for one cell."""
    start = f"{column_letter(first_col)}{first_row}"
    if rows == 1 and cols == 1:
        return start
    return f"{start}:{column_letter(first_col + cols - 1)}{first_row + rows - 1}"


def column_values(rows: Sequence[Sequence[Any]] | None) -> list[Any]:
    """The cells of a one-column values response (ROWS major), blank rows as None."""
    return [r[0] if r else None for r in rows or []]


# --- dates -----------------------------------------------------------------------------------

# Sheets counts days from 1899-12-30 (the same serials as Excel's from 1900-03-01 on).
SERIAL_EPOCH = datetime(1899, 12, 30)
# Where a number is expected (a score), only a number in this range may be a typed date:
# 18264 is 1950-01-01 and 73051 is 2100-01-01. A score of 0.7 or 3 is never looked at.
DATE_SERIALS = (18_264, 73_051)
# The number-format types that make a number a date, a date and time, or a time of day.
DATE_TYPES = frozenset({"DATE", "DATE_TIME", "TIME"})
# What spreadsheets.get answers for the cells asked about: their number-format type only.
FORMAT_FIELDS = (
    "sheets(data(startRow,startColumn,rowData(values(effectiveFormat(numberFormat(type))))))"
)


def serial_datetime(serial: float) -> datetime | None:
    """A serial number (days since 1899-12-30; the fraction is the time of day) as a naive
    datetime, to the millisecond; None when no datetime can hold it."""
    if not math.isfinite(serial):
        return None
    try:
        return SERIAL_EPOCH + timedelta(milliseconds=round(serial * 86_400_000))
    except OverflowError:
        return None


def from_serial(value: Any, kind: str | None) -> Any:
    """A number as its number format shows it: DATE -> date, DATE_TIME -> datetime (naive),
    TIME -> time of day. Anything else, or a serial no date can hold, stays as it is."""
    if kind not in DATE_TYPES or type(value) not in (int, float):
        return value
    moment = serial_datetime(value)
    if moment is None:
        return value
    if kind == "DATE":
        return moment.date()
    if kind == "TIME":
        return moment.time()
    return moment


def date_candidates(
    grid: Sequence[Sequence[Any]], first_row: int, columns: Mapping[int, bool]
) -> dict[int, list[int]]:
    """The cells that may hold a typed date: the values read gives a date as its serial number,
    a number like any other.

    :param grid: the worksheet's values (UNFORMATTED_VALUE), ``grid[0]`` being sheet row 1.
    :param first_row: the first data row, 1-based (the row under the header).
    :param columns: 0-based column -> whether numbers are expected there (a score column):
        there only a number in ``DATE_SERIALS`` counts; in any other column, such a number or
        a fraction between 0 and 1 (a time of day) does. Whole numbers below the range (a
        rating of 1 to 5, a 0/1 label) would be dates before 1950: they are never asked about,
        and booleans are not numbers.
    :returns: 0-based column -> the 1-based sheet rows of its candidate cells, in order.
    """
    low, high = DATE_SERIALS
    found: dict[int, list[int]] = {}
    checks = sorted(columns.items())
    for r in range(max(first_row - 1, 0), len(grid)):
        cells = grid[r]
        width = len(cells)
        for col, numeric in checks:
            if col < width:
                value = cells[col]
                kind = type(value)
                if (kind is int or kind is float) and (
                    low <= value <= high or (not numeric and 0 < value < 1)
                ):
                    found.setdefault(col, []).append(r + 1)
    return found


def format_ranges(title: str, candidates: Mapping[int, Sequence[int]]) -> list[str]:
    """One A1 range per column, from its first candidate row to its last.

    :param title: the worksheet title, unquoted.
    """
    prefix = quote_title(title) + "!"
    return [
        prefix + a1(rows[0], col, rows[-1] - rows[0] + 1)
        for col, rows in sorted(candidates.items())
        if rows
    ]


def number_formats(answer: Mapping[str, Any]) -> dict[tuple[int, int], str]:
    """The number-format type of each cell a spreadsheets.get answer (``FORMAT_FIELDS``) tells:
    (1-based sheet row, 0-based column) -> DATE, TIME, NUMBER...

    Google leaves out what is empty or zero: ``startRow``/``startColumn`` when 0, a cell with no
    number format is ``{}``, a row without any is ``{}``, and trailing rows and cells are cut.
    """
    found: dict[tuple[int, int], str] = {}
    for sheet in answer.get("sheets") or []:
        grids = sheet.get("data") if isinstance(sheet, dict) else None
        for grid in grids or []:
            if not isinstance(grid, dict):
                continue
            r0, c0 = int(grid.get("startRow", 0)), int(grid.get("startColumn", 0))
            for i, row in enumerate(grid.get("rowData") or []):
                cells = row.get("values") if isinstance(row, dict) else None
                for j, cell in enumerate(cells or []):
                    fmt = cell.get("effectiveFormat") if isinstance(cell, dict) else None
                    number = fmt.get("numberFormat") if isinstance(fmt, dict) else None
                    kind = number.get("type") if isinstance(number, dict) else None
                    if isinstance(kind, str) and kind:
                        found[(r0 + i + 1, c0 + j)] = kind
    return found


@dataclass(frozen=True)
class Block:
    """A rectangle of cells to write: 1-based first row, 0-based first column, row-major text."""

    first_row: int
    first_col: int
    values: list[list[str]]

    @property
    def rows(self) -> int:
        return len(self.values)

    @property
    def cols(self) -> int:
        return len(self.values[0]) if self.values else 0


def plan_blocks(cells: Mapping[tuple[int, int], str]) -> list[Block]:
    """Cover exactly the given cells with few rectangles; write no other cell.

    Adjacent columns that are written on the same rows form one band (the status columns
    every row gets, and the ones only synced rows get); each band is cut where its rows stop
    being consecutive. A cell not in ``cells`` is never part of a rectangle.

    :param cells: (sheet row, 0-based column) -> text.
    """
    rows_of: dict[int, set[int]] = defaultdict(set)
    for row, col in cells:
        rows_of[col].add(row)
    bands: list[tuple[list[int], list[int]]] = []  # (columns, sorted rows)
    for col in sorted(rows_of):
        rows = sorted(rows_of[col])
        if bands and bands[-1][0][-1] == col - 1 and bands[-1][1] == rows:
            bands[-1][0].append(col)
        else:
            bands.append(([col], rows))
    blocks: list[Block] = []
    for cols, rows in bands:
        for run in _runs(rows):
            values = [[cells[(r, c)] for c in cols] for r in run]
            blocks.append(Block(run[0], cols[0], values))
    return blocks


def _runs(sorted_rows: Sequence[int]) -> Iterable[list[int]]:
    run: list[int] = []
    for r in sorted_rows:
        if run and r != run[-1] + 1:
            yield run
            run = []
        run.append(r)
    if run:
        yield run


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def write_chunks(
    cells: Mapping[tuple[int, int], str],
    sheet: str,
    *,
    max_rows: int = MAX_WRITE_ROWS,
    max_bytes: int = MAX_WRITE_BYTES,
) -> list[list[dict[str, Any]]]:
    """The ``data`` lists of the values:batchUpdate requests that write ``cells``.

    Rows are cut into as few windows as ``max_rows`` allows, of even size (so 30k rows make two
    writes of 15k, not 25k + 5k), and a window is cut again if its JSON would pass
    ``max_bytes``. Each window is then covered by rectangles (see ``plan_blocks``).

    :param sheet: the worksheet title, unquoted.
    """
    by_row: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for (row, col), text in cells.items():
        by_row[row].append((col, text))
    rows = sorted(by_row)
    if not rows:
        return []
    n = math.ceil(len(rows) / max_rows)
    per_window = math.ceil(len(rows) / n)
    windows: list[list[int]] = []
    current: list[int] = []
    size = 0
    budget = max_bytes - min(4096, max_bytes // 10)  # room for the request's own framing
    for row in rows:
        row_size = len(_COMPACT.encode([t for _, t in by_row[row]]).encode()) + 1
        if current and (len(current) >= per_window or size + row_size > budget):
            windows.append(current)
            current, size = [], 0
        current.append(row)
        size += row_size
    windows.append(current)
    prefix = quote_title(sheet) + "!"

    def fit(window: list[int]) -> list[list[dict[str, Any]]]:
        # the estimate above leaves out the ranges' framing: check the real body, halve if over
        part = {(row, col): text for row in window for col, text in by_row[row]}
        data = [
            {"range": prefix + a1(b.first_row, b.first_col, b.rows, b.cols), "values": b.values}
            for b in plan_blocks(part)
        ]
        if len(window) > 1 and len(request_body(data)) > max_bytes:
            half = len(window) // 2
            return fit(window[:half]) + fit(window[half:])
        return [data]

    return [data for window in windows for data in fit(window)]


def request_body(data: list[dict[str, Any]], *, echo: bool = False) -> bytes:
    """A values:batchUpdate body: RAW, so no text is ever parsed into a formula or a number.

    With ``echo`` the answer carries each range's values as they are once the write is done
    (includeValuesInResponse), typed as the reads are: see ``probe_ranges``.
    """
    body: dict[str, Any] = {"valueInputOption": "RAW", "data": data}
    if echo:
        body.update(
            includeValuesInResponse=True,
            responseValueRenderOption="UNFORMATTED_VALUE",
            responseDateTimeRenderOption="SERIAL_NUMBER",
        )
    return _COMPACT.encode(body).encode()


def probe_ranges(sheet: str, rows: Iterable[int], columns: Sequence[int]) -> list[dict[str, Any]]:
    """Ranges of nulls over ``columns`` on ``rows``, to add to a values:batchUpdate.

    A null writes nothing, and an answer with includeValuesInResponse holds "all values in the
    requested range" (Google's reference of BatchUpdateValuesRequest): what these cells hold
    at the moment the write lands, in the same request. Written on the key columns, they tell
    whether each row written still holds its key, at no extra request.
    """
    prefix = quote_title(sheet) + "!"
    out: list[dict[str, Any]] = []
    for run in _runs(sorted(set(rows))):
        for col in dict.fromkeys(columns):
            out.append({"range": prefix + a1(run[0], col, len(run)), "values": [[None]] * len(run)})
    return out


def probed_cells(
    probes: Sequence[Mapping[str, Any]], answers: Sequence[Mapping[str, Any]]
) -> dict[tuple[int, int], Any]:
    """(sheet row, 0-based column) -> value, from the answers to ``probe_ranges``' ranges."""
    out: dict[tuple[int, int], Any] = {}
    for probe, answer in zip(probes, answers, strict=False):
        grid = parse_range(str(probe["range"]))
        values = column_values((answer.get("updatedData") or {}).get("values"))
        for i in range(len(probe["values"])):
            out[(grid.first_row + i, grid.first_col)] = values[i] if i < len(values) else None
    return out


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(attempt: int, base: float, cap: float, rand: float) -> float:
    """Google's recommended backoff: min(2**n * base + random jitter (< base), cap).

    :param attempt: 0 for the first retry.
    :param rand: a random number in [0, 1).
    """
    return min(base * 2.0**attempt + rand * base, cap)
