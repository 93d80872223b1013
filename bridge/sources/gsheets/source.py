"""Google Sheets source: typed reads and key-located status writes, frugal with quota.

A sync costs, for a worksheet given by title or gid (``gid:`` or the ``#gid=`` of the URL):

1. one values read of the whole worksheet (UNFORMATTED_VALUE, serial-number dates), whose
   answer also names the worksheet and the size of its grid;
2. one re-read of the header row and the key columns, just before writing, so each status
   lands on the row that holds its key even if SMEs sorted, inserted or deleted rows;
3. one RAW values:batchUpdate per ~25k rows, of the status cells only, which also reads back
   the key cells of the rows it wrote as they are once it landed (null ranges, with
   includeValuesInResponse); only if an SME moved rows in between does one more read and
   write put each status on its own row.

Dates are dates, as the Excel source gives them: the values read gives a date as its serial
number (2020-01-01 is 43831), which only the cell's number format tells from a number. So when
the mapped columns hold numbers that may be dates (a serial from 1950 to 2100 in any of them;
a fraction of a day, a time, in an id, label, comment, annotator or extra column), one
spreadsheets.get asks for the number-format type of those cells only, and DATE, DATE_TIME and
TIME cells become date, datetime and time. A sheet of text ids and labels, scores and ratings
makes no such request; one with dates (or date-like numbers) makes that one more.

A worksheet left unnamed (a bare key) costs one metadata request more, to find the first
sheet. Writing status columns past the grid's last column costs one request to widen it
(the first sync of a sheet that uses all its columns). Every request has a timeout; 429, 408
and 5xx are retried a bounded number of times with jittered backoff that honours
Retry-After, because gspread 6.2.1's BackOffHTTPClient retries 429 forever (see ``api``).
The README's "Google Sheets" section (and docs/platform-notes.md) say what remains.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gspread.exceptions import APIError
from gspread.http_client import ParamsType
from gspread.urls import SPREADSHEETS_API_V4_BASE_URL

from bridge.errors import SourceError
from bridge.records import Row, StatusUpdate, WriteReport, safe_text
from bridge.sources._table import (
    column_letter,
    content_positions,
    header_index,
    key_part,
    keyless_contents,
    place_updates,
    read_rows,
    status_positions,
)
from bridge.sources.base import ReadSpec, Source
from bridge.sources.gsheets.api import VALUE_OPTIONS, RetryPolicy, answer_of
from bridge.sources.gsheets.auth import credential_files, service_account_email
from bridge.sources.gsheets.data import (
    FORMAT_FIELDS,
    column_values,
    date_candidates,
    format_ranges,
    from_serial,
    number_formats,
    parse_range,
    probe_ranges,
    probed_cells,
    quote_title,
    request_body,
    write_chunks,
)
from bridge.sources.gsheets.export_sink import GSheetsExport
from bridge.sources.gsheets.tabs import GSheetsTabs
from bridge.sources.gsheets.worksheet import Layout

log = logging.getLogger(__name__)

# Rows moved under a write: put right at most this many times (each one read and one write),
# then the statuses still on other rows are reported as vanished and written on the next run.
REPAIR_ROUNDS = 3

# ``annobridge init`` (bridge.scaffold) finds the credential helpers here, and callers the
# retry policy the constructor takes; they live in auth.py and api.py.
__all__ = ["GSheetsSource", "RetryPolicy", "credential_files", "service_account_email"]


class GSheetsSource(GSheetsExport, GSheetsTabs, Source):
    """A worksheet of a Google Sheet: typed reads, statuses written back by key, and (through
    ``GSheetsExport``) rows appended by ``annobridge export``.

    The parameters are ``Worksheet``'s: the spreadsheet's key or URL, the tab's title or gid,
    the header row, credentials, a timeout, and for tests a stand-in's URL and a session.
    """

    def read(self, spec: ReadSpec) -> list[Row]:
        with self._google("read"):
            layout, values = self._take(*self._read_values())
        where = self._where()
        if not values:
            raise SourceError(
                f"{where}: the worksheet is empty; it needs the column names in row "
                f"{self.header_row}, and rows of labels under them"
            )
        rows = read_rows(values, self.header_row, spec, where)
        header = values[self.header_row - 1]
        layout.key_positions = header_index(header, spec.key_columns, where, self.header_row)
        mapped = header_index(header, spec.columns, where, self.header_row)
        layout.mapped_positions = [mapped[c] for c in spec.columns]
        # before the dates are typed: the re-read before writing gets serial numbers too
        layout.keyless = keyless_contents(rows, spec.columns)
        layout.status_positions = status_positions(header, spec.status)
        layout.statuses = {(r.key, r.occurrence): r.status for r in rows if any(r.key)}
        self._typed_dates(layout.title, values, spec, rows)
        return rows

    def _typed_dates(
        self, title: str, values: Sequence[Sequence[Any]], spec: ReadSpec, rows: list[Row]
    ) -> None:
        """Make the dates, date-times and times of the mapped columns Python's, in ``rows``.

        Only the numbers that may be typed dates are asked about (see ``date_candidates``), in
        one spreadsheets.get of their number-format types; none, no request. Keys stay as read:
        the re-read before writing gets serial numbers too, so each row is found again by them.
        """
        h = self.header_row
        index = header_index(values[h - 1], spec.columns, self._where(), h)
        numbers = set(spec.number_columns)
        candidates = date_candidates(values, h + 1, {c: n in numbers for n, c in index.items()})
        if not candidates:
            return
        params: ParamsType = {
            "ranges": format_ranges(title, candidates),
            "fields": FORMAT_FIELDS,
        }
        with self._google("read"):
            answer = self._http().spreadsheets_get(self.key, params=params)
        formats = number_formats(answer)
        name_of = {c: n for n, c in index.items()}
        by_row = {r.sheet_row: r for r in rows}
        for col, sheet_rows in candidates.items():
            name = name_of[col]
            for sheet_row in sheet_rows:
                kind = formats.get((sheet_row, col))
                row = by_row.get(sheet_row)
                if kind is not None and row is not None:
                    row.values[name] = from_serial(row.values[name], kind)

    def check_writable(self) -> None:
        """Nothing to check without spending a request.

        Whether the credentials may edit (not only view) the sheet shows only when writing;
        a sheet shared as Viewer fails the write-back with the fix, and the next run, once it
        is shared as Editor, writes the statuses without duplicating any annotation.
        """

    # -- write --

    def _layout_for_write(self) -> Layout:
        if self._layout is not None:
            return self._layout
        if self.worksheet is not None:
            self._layout = Layout(title=self.worksheet, sheet_id=self.gid)
        else:
            sheets = self._sheets()
            if self.gid is None:
                self._layout = self._first_sheet()
            else:
                match = [p for p in sheets if p.get("sheetId") == self.gid]
                if not match:
                    raise self._missing_worksheet()
                self._layout = Layout(title=str(match[0]["title"]), sheet_id=self.gid)
        return self._layout

    def _key_ranges(
        self, layout: Layout, positions: Sequence[int], with_header: bool
    ) -> list[dict[str, Any]]:
        q, h = quote_title(layout.title), self.header_row
        ranges = [f"{q}!{h}:{h}"] if with_header else []
        if not layout.grid_rows or layout.grid_rows > h:
            ranges += [f"{q}!{column_letter(c)}{h + 1}:{column_letter(c)}" for c in positions]
        params: ParamsType = dict(VALUE_OPTIONS)
        answer = self._http().values_batch_get(self.key, ranges, params=params)
        found: list[dict[str, Any]] = answer.get("valueRanges") or []
        return found

    def _current_keys(
        self,
        spec: ReadSpec,
        layout: Layout,
        keyless: bool = False,
        status: Sequence[str] = (),
    ) -> _Now:
        """The header row, every row's key, and (``keyless``) the content of the rows without
        a key, and (``status``) those status columns, as the sheet is now: one request, usually.

        The columns are re-read where the read found them; if columns were inserted or moved
        since, the header shows it and they are read again where they are now.
        """
        h = self.header_row
        where = self._where()
        positions = [layout.key_positions[c] for c in spec.key_columns if c in layout.key_positions]
        extra = list(layout.mapped_positions) if keyless else []
        status_at = [layout.status_positions[n] for n in status if n in layout.status_positions]
        try:
            found = self._key_ranges(layout, positions + extra + status_at, with_header=True)
        except APIError as exc:
            if exc.code != 400 or "Unable to parse range" not in str(exc.error.get("message")):
                raise
            if layout.sheet_id is None:
                raise SourceError(
                    f"{where}: the worksheet was renamed or deleted while syncing. "
                    f"{self._after('write')}"
                ) from None
            # renamed: find it again by its gid
            match = [p for p in self._sheets() if p.get("sheetId") == layout.sheet_id]
            if not match:
                raise SourceError(
                    f"{where}: the worksheet was deleted while syncing. {self._after('write')}"
                ) from None
            layout.title = str(match[0]["title"])
            found = self._key_ranges(layout, positions + extra + status_at, with_header=True)
        header_range = found[0]
        header = (header_range.get("values") or [[]])[0]
        layout.grid_cols = parse_range(str(header_range["range"])).last_col + 1
        try:
            now = header_index(header, spec.key_columns, where, h)
        except SourceError as exc:
            raise SourceError(
                f"{exc} (the header changed while syncing). {self._after('write')}"
            ) from None
        ranges = found[1:]
        now_keys = [now[c] for c in spec.key_columns]
        now_extra = (content_positions(header, spec.columns) or []) if keyless else []
        at = status_positions(header, spec.status)
        status = [n for n in status if n in at]
        now_status = [at[n] for n in status]
        if now_keys != positions or now_extra != extra or now_status != status_at:
            layout.key_positions = now
            layout.mapped_positions = now_extra or layout.mapped_positions
            ranges = self._key_ranges(layout, now_keys + now_extra + now_status, with_header=False)
            extra = now_extra
        layout.status_positions.update(at)
        if ranges:
            layout.grid_rows = parse_range(str(ranges[0]["range"])).last_row
        columns = [column_values(r.get("values")) for r in ranges]
        k, c = len(now_keys), len(now_keys) + len(extra)
        key_columns, content_columns, status_columns = columns[:k], columns[k:c], columns[c:]
        # answers drop trailing empty rows: rows without a key at the bottom (a label typed
        # without its id) must still be there, with empty keys, to get their status
        n = max(max((len(c) for c in columns), default=0), layout.grid_rows - h)

        def cell(column: list[Any], i: int) -> str:
            return key_part(column[i] if i < len(column) else None)

        result = _Now(
            header, [(h + 1 + i, tuple(cell(c, i) for c in key_columns)) for i in range(n)]
        )
        for i, (row, key) in enumerate(result.keys):
            if extra and not any(key):
                result.contents[row] = tuple(cell(c, i) for c in content_columns)
            if status:
                result.statuses[row] = {
                    name: cell(c, i) for name, c in zip(status, status_columns, strict=True)
                }
        return result

    def _status_columns(
        self, header: Sequence[Any], spec: ReadSpec, layout: Layout
    ) -> tuple[dict[str, int], list[tuple[str, int]]]:
        """Where each status column is (0-based), and the header cells to add for new ones.

        New columns go right of every column in use, not only right of the header: a column
        with data but no name must not become a status column.
        """
        out = status_positions(header, spec.status)
        named = max((i + 1 for i, v in enumerate(header) if key_part(v)), default=0)
        nxt = max(named, layout.width)
        new: list[tuple[str, int]] = []
        for name in spec.status.names():
            if name not in out:
                out[name] = nxt
                new.append((name, nxt))
                nxt += 1
        return out, new

    def _widen_ahead(self, spec: ReadSpec, layout: Layout) -> None:
        """Widen the grid for the status columns the read found missing before the keys are
        read again, not between that re-read and the write (the window where SMEs' edits
        can move rows)."""
        missing = [n for n in spec.status.names() if n not in layout.status_positions]
        needed = layout.width + len(missing) if missing else 0
        if layout.grid_cols and layout.width and needed > layout.grid_cols:
            self._widen(layout, needed - layout.grid_cols)

    def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport:
        """Write the status cells of each row, found by its key as the sheet is now.

        Only status cells are written (and the header cells of new status columns), RAW so no
        text becomes a formula or a number, in one values:batchUpdate per ~25k rows. Each
        write also reads back the key cells of the rows it wrote, as they are once it landed
        (``probe_ranges``): if an SME sorted, inserted or deleted rows between the re-read and
        the write, the statuses that landed on another row are put right (one read and one
        write more, only then; see ``_repair``).
        """
        if not updates:
            return WriteReport()
        written = [0]
        with self._google("write", lambda: written[0]):
            layout = self._layout_for_write()
            keyless = any(not any(u.key) for u in updates)
            self._widen_ahead(spec, layout)
            now = self._current_keys(spec, layout, keyless)
            placed, vanished = place_updates(now.keys, updates, layout.keyless, now.contents)
            if not placed:
                return WriteReport(vanished=list(vanished))
            columns, new = self._status_columns(now.header, spec, layout)
            layout.status_positions.update(columns)
            cells = {(self.header_row, col): safe_text(name) for name, col in new}
            wrong = self._write(spec, layout, columns, placed, cells, written)
            for _ in range(REPAIR_ROUNDS):
                if not wrong:
                    break
                placed, lost, wrong = self._repair(spec, layout, columns, placed, written)
                vanished = [*vanished, *lost]
            if wrong:
                log.warning(
                    "%s: rows kept moving while the statuses were written; %d statuses are "
                    "not on their rows and are written again on the next run",
                    self._where(),
                    len(wrong),
                )
                mislaid = {id(u) for _, u in wrong}
                placed = [(row, u) for row, u in placed if id(u) not in mislaid]
                vanished = [*vanished, *(u for _, u in wrong)]
        moved = sum(1 for row, u in placed if row != u.sheet_row)
        return WriteReport(written=len(placed), vanished=list(vanished), moved=moved)

    def _write(
        self,
        spec: ReadSpec,
        layout: Layout,
        columns: Mapping[str, int],
        placed: Sequence[tuple[int, StatusUpdate]],
        cells: dict[tuple[int, int], str],
        written: list[int],
    ) -> list[tuple[int, StatusUpdate]]:
        """Write ``placed`` (and ``cells``), and say which of them landed on a row that does
        not hold their key (or, for a row without a key, their content) any more."""
        for sheet_row, update in placed:
            for name, text in update.values.items():
                cells[(sheet_row, columns[name])] = safe_text(text)
        if not cells:
            return []
        needed = max(col for _, col in cells) + 1
        if layout.grid_cols and needed > layout.grid_cols:
            self._widen(layout, needed - layout.grid_cols)
        keys = [layout.key_positions[c] for c in spec.key_columns]
        mapped = layout.mapped_positions if any(not any(u.key) for _, u in placed) else []
        url = f"{SPREADSHEETS_API_V4_BASE_URL}/{self.key}/values:batchUpdate"
        headers = {"Content-Type": "application/json; charset=utf-8"}
        header_cells = any(row == self.header_row for row, _ in cells)
        chunks = write_chunks(
            cells,
            layout.title,
            max_rows=self.max_write_rows + (1 if header_cells else 0),  # the header row is extra
            max_bytes=self.max_write_bytes,
        )
        at = dict(placed)
        wrong: list[tuple[int, StatusUpdate]] = []
        for data in chunks:
            rows = {r for entry in data for r in _rows_of(entry["range"])} - {self.header_row}
            probes = probe_ranges(layout.title, (r for r in rows if r in at), keys + mapped)
            body = request_body([*data, *probes], echo=bool(probes))
            answer = answer_of(self._http().request("post", url, data=body, headers=headers))
            written[0] += len(rows)
            responses = answer.get("responses") or []
            landed = probed_cells(
                probes, responses[len(data) :] if isinstance(responses, list) else []
            )
            for row in sorted(rows & at.keys()):
                update = at[row]
                key = tuple(key_part(landed.get((row, c))) for c in keys)
                if any(update.key):
                    ok = key == update.key
                else:
                    content = tuple(key_part(landed.get((row, c))) for c in mapped)
                    ok = not any(key) and content == layout.keyless.get(update.sheet_row)
                if not ok:
                    wrong.append((row, update))
        return wrong

    def _repair(
        self,
        spec: ReadSpec,
        layout: Layout,
        columns: Mapping[str, int],
        placed: Sequence[tuple[int, StatusUpdate]],
        written: list[int],
    ) -> tuple[list[tuple[int, StatusUpdate]], list[StatusUpdate], list[tuple[int, StatusUpdate]]]:
        """Rows moved while the statuses were written: read the keys and the status columns
        again (one request), write each status where its row is now and give the rows that got
        another row's status their own back (one write).

        :returns: where each update is now, the updates whose row is gone, and those that
            landed on another row again (rows moved once more).
        """
        updates = [u for _, u in placed]
        names = list(dict.fromkeys(n for u in updates for n in u.values))
        keyless = any(not any(u.key) for u in updates)
        now = self._current_keys(spec, layout, keyless, status=names)
        columns = {**columns, **{n: layout.status_positions[n] for n in names}}
        final, lost = place_updates(now.keys, updates, layout.keyless, now.contents)
        target = dict(final)
        ours: dict[tuple[str, ...], set[tuple[str, ...]]] = defaultdict(set)
        for u in updates:  # this run's statuses, by the columns they fill
            ours[tuple(u.values)].add(tuple(key_part(safe_text(v)) for v in u.values.values()))
        fix: list[tuple[int, StatusUpdate]] = []
        cells: dict[tuple[int, int], str] = {}
        seen: dict[tuple[str, ...], int] = defaultdict(int)
        for row, key in now.keys:
            occurrence = seen[key]
            seen[key] += 1
            held = now.statuses.get(row, {})
            update = target.get(row)
            if update is not None:
                if any(held.get(n, "") != key_part(safe_text(v)) for n, v in update.values.items()):
                    fix.append((row, update))
                continue
            if not any(tuple(held.get(n, "") for n in cols) in got for cols, got in ours.items()):
                continue  # not a status this run wrote
            before = layout.statuses.get((key, occurrence), {}) if any(key) else {}
            for n in names:  # another row's status: give it back what it held when read
                cells[(row, columns[n])] = safe_text(before.get(n, ""))
        if fix or cells:
            log.warning(
                "%s: rows moved while the statuses were written; %d rows put right",
                self._where(),
                len(fix) + len({r for r, _ in cells}),
            )
        return final, lost, self._write(spec, layout, columns, fix, cells, written)


@dataclass
class _Now:
    """The sheet as the re-read before writing found it."""

    header: list[Any]
    keys: list[tuple[int, tuple[str, ...]]]  # (sheet row, key) of every data row
    contents: dict[int, tuple[str, ...]] = field(default_factory=dict)  # rows without a key
    statuses: dict[int, dict[str, str]] = field(default_factory=dict)  # only when asked


def _rows_of(a1_range: str) -> range:
    grid = parse_range(a1_range)
    return range(grid.first_row, grid.last_row + 1)
