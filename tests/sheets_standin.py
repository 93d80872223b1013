"""A local stand-in of the Google Sheets API v4 endpoints that gspread and annobridge use.

It runs in a thread on 127.0.0.1 (a free port) and answers in the shapes of the real Google
traffic recorded by the gspread project (``test_gsheets_conformance.py`` replays that traffic
against it):

- values responses trim trailing empty cells and trailing empty rows, blank rows are ``[]``,
  and a range with no values has no ``values`` key;
- a whole-sheet or open-ended range is answered clipped to the grid (``'T'!A:A`` on a 10-row
  tab is ``'T'!A1:A10``), and a closed range past the grid is refused ("exceeds grid limits"),
  for reads and writes alike;
- UNFORMATTED_VALUE gives typed JSON (booleans, numbers, percentages as fractions), dates as
  serial numbers unless dateTimeRenderOption=FORMATTED_STRING; FORMULA gives formula text;
- RAW stores text as it is; USER_ENTERED parses it as if typed (formulas, numbers, TRUE);
- spreadsheets.get applies the ``fields`` mask (partial response: only the fields asked for,
  an emptied message left out, list items kept in place as ``{}``) and, with ``ranges``, answers
  only the sheets they are on; grid data (with ``includeGridData=true`` or a mask that asks for
  ``data``) is one GridData per range, startRow/startColumn left out when 0, trailing empty
  rows and cells cut, an empty cell ``{}``. Date, DateTime, Time and Percent cells carry the
  number format Sheets gives a typed date, date-time, time or percentage (DATE, DATE_TIME,
  TIME, PERCENT); other cells have none.

Endpoints: spreadsheets.get, spreadsheets.batchUpdate (addSheet, deleteSheet,
updateSheetProperties, setDataValidation, appendDimension, insertDimension,
deleteDimension), values.get / update / clear, values:batchGet, values:batchUpdate,
values:batchGetByDataFilter, and an OAuth token endpoint (``/token``) for service-account
sign-in. Tests also act as the SMEs: sort, insert and delete rows, rename a tab.
"""

from __future__ import annotations

import ast
import itertools
import json
import operator
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as time_of_day
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fault_proxy import hung_up as _hung_up

# Fault.delay meaning "until the client hangs up"
HANG = -1.0

_EPOCH = datetime(1899, 12, 30)


# --- typed cells -----------------------------------------------------------------------------


def _serial_of(when: datetime) -> int | float:
    days = (when - _EPOCH).total_seconds() / 86400
    return int(days) if days.is_integer() else days


@dataclass(frozen=True)
class Date:
    """A date cell (number format DATE, as Sheets gives a typed 2020-01-01), shown yyyy-mm-dd.

    A datetime keeps its time of day in the serial number but shows the date only, as a
    date-time formatted as a date does (=NOW() in a date column).
    """

    value: date | datetime
    number_format = ("DATE", "yyyy-mm-dd")

    def serial(self) -> int | float:
        when = self.value
        if not isinstance(when, datetime):
            when = datetime(when.year, when.month, when.day)
        return _serial_of(when)

    def formatted(self) -> str:
        return self.value.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class DateTime:
    """A date-time cell (number format DATE_TIME), shown ``yyyy-mm-dd hh:mm:ss``."""

    value: datetime
    number_format = ("DATE_TIME", "yyyy-mm-dd hh:mm:ss")

    def serial(self) -> int | float:
        return _serial_of(self.value)

    def formatted(self) -> str:
        return self.value.strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Time:
    """A time-of-day cell (number format TIME): the fraction of a day, shown ``hh:mm:ss``."""

    value: time_of_day
    number_format = ("TIME", "hh:mm:ss")

    def serial(self) -> int | float:
        return _serial_of(datetime.combine(_EPOCH.date(), self.value))

    def formatted(self) -> str:
        return self.value.strftime("%H:%M:%S")


_DATED = (Date, DateTime, Time)


@dataclass(frozen=True)
class Percent:
    """A number formatted as a percentage: 0.45 shows as 45%."""

    value: float
    number_format = ("PERCENT", "0%")


@dataclass(frozen=True)
class Formula:
    """A formula cell: its text, and the value it computes."""

    text: str
    value: Any = None


def render(cell: Any, value_option: str, date_option: str) -> Any:
    """A cell as values responses give it (``""`` for an empty cell)."""
    formatted = value_option == "FORMATTED_VALUE"
    if isinstance(cell, Formula):
        if value_option == "FORMULA":
            return cell.text
        cell = cell.value
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return ("TRUE" if cell else "FALSE") if formatted else cell
    if isinstance(cell, _DATED):
        if formatted or date_option == "FORMATTED_STRING":
            return cell.formatted()
        return cell.serial()
    if isinstance(cell, Percent):
        return f"{cell.value * 100:g}%" if formatted else _number(cell.value)
    if isinstance(cell, int | float):
        return _format_number(cell) if formatted else _number(cell)
    return cell


def _number(value: float) -> int | float:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _format_number(value: float) -> str:
    n = _number(value)
    return str(n) if isinstance(n, int) else repr(n)


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ARITH = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _evaluate(expression: str) -> Any:
    """Arithmetic formulas (=4/2) compute; anything else computes to its own text."""
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        return expression

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return float(_ARITH[type(node.op)](ev(node.left), ev(node.right)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(expression)

    try:
        return _number(ev(tree))
    except (ValueError, ZeroDivisionError):
        return expression


def user_entered(value: Any) -> Any:
    """A value as Sheets stores it when typed by a user (valueInputOption USER_ENTERED)."""
    if not isinstance(value, str):
        return value
    if value.startswith("'"):
        return value[1:]
    if value.startswith("="):
        return Formula(value, _evaluate(value[1:]))
    if value.upper() in ("TRUE", "FALSE"):
        return value.upper() == "TRUE"
    if _NUMBER.fullmatch(value):
        return _number(float(value))
    if value.endswith("%") and _NUMBER.fullmatch(value[:-1]):
        return Percent(float(value[:-1]) / 100)
    if _ISO_DATE.fullmatch(value):
        return Date(date.fromisoformat(value))
    return value


def _empty(cell: Any) -> bool:
    return cell is None or cell == ""


# --- grid data (spreadsheets.get) --------------------------------------------------------------


def _extended(value: Any) -> dict[str, Any] | None:
    """An ExtendedValue: how grid data gives a value (None for no value)."""
    if _empty(value):
        return None
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, _DATED):
        return {"numberValue": value.serial()}
    if isinstance(value, Percent):
        return {"numberValue": _number(value.value)}
    if isinstance(value, int | float):
        return {"numberValue": _number(value)}
    return {"stringValue": str(value)}


# The format every cell has unless it was given another (a new spreadsheet's defaultFormat).
_DEFAULT_FORMAT: dict[str, Any] = {
    "backgroundColor": {"red": 1, "green": 1, "blue": 1},
    "padding": {"top": 2, "right": 3, "bottom": 2, "left": 3},
    "horizontalAlignment": "LEFT",
    "verticalAlignment": "BOTTOM",
    "wrapStrategy": "OVERFLOW_CELL",
    "textFormat": {"fontFamily": "Arial", "fontSize": 10, "bold": False, "italic": False},
    "hyperlinkDisplayType": "PLAIN_TEXT",
}


def cell_data(cell: Any) -> dict[str, Any]:
    """A cell as grid data gives it (CellData): ``{}`` for an empty cell.

    A typed date, date-time, time or percentage carries the number format Sheets gave it
    (userEnteredFormat and effectiveFormat); a plain number, text or checkbox has none.
    """
    formula = cell.text if isinstance(cell, Formula) else None
    value = cell.value if isinstance(cell, Formula) else cell
    effective = _extended(value)
    if formula is None and effective is None:
        return {}
    out: dict[str, Any] = {"userEnteredValue": {"formulaValue": formula} if formula else effective}
    if effective is not None:
        out["effectiveValue"] = effective
        out["formattedValue"] = render(value, "FORMATTED_VALUE", "FORMATTED_STRING")
    kind = getattr(value, "number_format", None)
    look = dict(_DEFAULT_FORMAT)
    if kind is not None:
        number = {"type": kind[0], "pattern": kind[1]}
        out["userEnteredFormat"] = {"numberFormat": number}
        look["numberFormat"] = number
    out["effectiveFormat"] = look  # a plain number's automatic format has no numberFormat
    return out


def grid_data(sheet: Sheet, r0: int, c0: int, r1: int, c1: int) -> dict[str, Any]:
    """One GridData: the cells of a range, trailing empty rows and cells cut."""
    rows: list[dict[str, Any]] = []
    for r in range(r0, r1 + 1):
        cells = [cell_data(sheet.get(r, c)) for c in range(c0, c1 + 1)]
        while cells and not cells[-1]:
            cells.pop()
        rows.append({"values": cells} if cells else {})
    while rows and not rows[-1]:
        rows.pop()
    out: dict[str, Any] = {}
    if r0:
        out["startRow"] = r0
    if c0:
        out["startColumn"] = c0
    if rows:
        out["rowData"] = rows
    out["rowMetadata"] = [{"pixelSize": 21} for _ in range(r0, r1 + 1)]
    out["columnMetadata"] = [{"pixelSize": 100} for _ in range(c0, c1 + 1)]
    return out


_FIELD_PATH = re.compile(r"[A-Za-z_]\w*(?:[./][A-Za-z_]\w*)*")
Mask = dict[str, Any]  # field name -> its own mask, or None for all of it


def parse_fields(text: str) -> Mask:
    """A partial-response field mask (``sheets.properties(title),sheets(data(startRow))``)."""
    pos = 0

    def add(mask: Mask, path: list[str], sub: Mask | None) -> None:
        name = path[0]
        if name in mask and mask[name] is None:
            return  # all of it was asked for already
        if len(path) > 1:
            add(mask.setdefault(name, {}), path[1:], sub)
        elif sub is None:
            mask[name] = None
        else:
            child = mask.setdefault(name, {})
            for key, value in sub.items():
                add(child, [key], value)

    def items() -> Mask:
        nonlocal pos
        out: Mask = {}
        while True:
            match = _FIELD_PATH.match(text, pos)
            if match is None:
                raise bad_request(f"Invalid field selection {text}")
            pos = match.end()
            sub: Mask | None = None
            if text.startswith("(", pos):
                pos += 1
                sub = items()
                if not text.startswith(")", pos):
                    raise bad_request(f"Invalid field selection {text}")
                pos += 1
            add(out, re.split(r"[./]", match.group(0)), sub)
            if not text.startswith(",", pos):
                return out
            pos += 1

    mask = items()
    if pos != len(text):
        raise bad_request(f"Invalid field selection {text}")
    return mask


def apply_fields(value: Any, mask: Mask | None) -> Any:
    """Only the fields ``mask`` asks for; a message left empty is left out, list items stay."""
    if mask is None:
        return value
    if isinstance(value, list):
        return [apply_fields(v, mask) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in mask:
            kept = apply_fields(item, mask[key])
            if kept != {} and kept != []:
                out[key] = kept
    return out


# --- A1 ----------------------------------------------------------------------------------------


def column_letter(index: int) -> str:
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _column_index(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def response_title(title: str) -> str:
    """Titles as Google writes them in answers: Sheet1 bare, anything else quoted."""
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", title) and not re.fullmatch(
        r"[A-Za-z]{1,3}\d+", title
    ):
        return title
    return "'" + title.replace("'", "''") + "'"


def a1_of(sheet: Sheet, r0: int, c0: int, r1: int, c1: int) -> str:
    start = f"{column_letter(c0)}{r0 + 1}"
    cells = start if (r0, c0) == (r1, c1) else f"{start}:{column_letter(c1)}{r1 + 1}"
    return f"{response_title(sheet.title)}!{cells}"


class ApiError(Exception):
    """An error answer: HTTP status and Google's error object."""

    def __init__(self, code: int, message: str, status: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.body = {"error": {"code": code, "message": message, "status": status, **extra}}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "INVALID_ARGUMENT")


_CELL_REF = re.compile(r"^([A-Za-z]*)(\d*)$")


# --- the model -----------------------------------------------------------------------------


@dataclass
class Sheet:
    sheet_id: int
    title: str
    index: int
    rows: int = 1000
    cols: int = 26
    cells: list[list[Any]] = field(default_factory=list)

    def get(self, r: int, c: int) -> Any:
        if r < len(self.cells) and c < len(self.cells[r]):
            return self.cells[r][c]
        return None

    def set(self, r: int, c: int, value: Any) -> None:
        while len(self.cells) <= r:
            self.cells.append([])
        row = self.cells[r]
        while len(row) <= c:
            row.append(None)
        row[c] = value

    def properties(self) -> dict[str, Any]:
        return {
            "sheetId": self.sheet_id,
            "title": self.title,
            "index": self.index,
            "sheetType": "GRID",
            "gridProperties": {"rowCount": self.rows, "columnCount": self.cols},
        }

    def clip(self) -> None:
        del self.cells[self.rows :]
        for row in self.cells:
            del row[self.cols :]


@dataclass
class Spreadsheet:
    key: str
    title: str
    sheets: list[Sheet] = field(default_factory=list)
    access: str = "write"  # write | read | none

    def sheet(self, title: str) -> Sheet | None:
        return next((s for s in self.sheets if s.title == title), None)

    def by_id(self, sheet_id: int) -> Sheet | None:
        return next((s for s in self.sheets if s.sheet_id == sheet_id), None)

    def metadata(self) -> dict[str, Any]:
        return {
            "spreadsheetId": self.key,
            "properties": {
                "title": self.title,
                "locale": "en_US",
                "autoRecalc": "ON_CHANGE",
                "timeZone": "Etc/GMT",
            },
            "sheets": [{"properties": s.properties()} for s in self.sheets],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.key}/edit",
        }

    def resolve(self, text: str) -> tuple[Sheet, int, int, int, int]:
        """An A1 range -> (sheet, r0, c0, r1, c1), 0-based inclusive, clipped to the grid."""
        title: str | None
        cells: str | None
        if text.startswith("'"):
            end = 1
            while True:
                end = text.find("'", end)
                if end < 0:
                    raise bad_request(f"Unable to parse range: {text}")
                if text[end + 1 : end + 2] == "'":
                    end += 2
                    continue
                break
            title = text[1:end].replace("''", "'")
            rest = text[end + 1 :]
            if rest and not rest.startswith("!"):
                raise bad_request(f"Unable to parse range: {text}")
            cells = rest[1:] or None
        elif "!" in text:
            title, _, cells = text.rpartition("!")
        elif self.sheet(text) is not None:
            title, cells = text, None
        else:
            title, cells = None, text
        if title is None:
            sheet = self.sheets[0] if self.sheets else None
        else:
            sheet = self.sheet(title)
        if sheet is None:
            raise bad_request(f"Unable to parse range: {text}")
        if not cells:
            return sheet, 0, 0, sheet.rows - 1, sheet.cols - 1
        first, colon, last = cells.partition(":")
        m1, m2 = _CELL_REF.match(first), _CELL_REF.match(last if colon else first)
        if not m1 or not m2 or not (m1.group(0) and m2.group(0)):
            raise bad_request(f"Unable to parse range: {text}")
        c0 = _column_index(m1.group(1)) if m1.group(1) else 0
        r0 = int(m1.group(2)) - 1 if m1.group(2) else 0
        c1 = _column_index(m2.group(1)) if m2.group(1) else sheet.cols - 1
        r1 = int(m2.group(2)) - 1 if m2.group(2) else sheet.rows - 1
        if min(r0, c0) < 0 or r1 < r0 or c1 < c0:
            raise bad_request(f"Unable to parse range: {text}")
        if r1 >= sheet.rows or c1 >= sheet.cols or r0 >= sheet.rows or c0 >= sheet.cols:
            raise bad_request(
                f"Range ({response_title(sheet.title)}!{cells}) exceeds grid limits. "
                f"Max rows: {sheet.rows}, max columns: {sheet.cols}"
            )
        return sheet, r0, c0, r1, c1


@dataclass
class Recorded:
    """One request the stand-in received."""

    method: str
    path: str
    kind: str  # metadata | formats | read | write | structure | token
    query: dict[str, list[str]]
    body: bytes
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Fault:
    kind: str | None
    status: int
    times: int
    retry_after: str | None = None
    delay: float = 0.0
    message: str | None = None


def _quota_message(kind: str) -> str:
    what = "Write" if kind in ("write", "structure") else "Read"
    return (
        f"Quota exceeded for quota metric '{what} requests' and limit '{what} requests per "
        "minute per user' of service 'sheets.googleapis.com' for consumer "
        "'project_number:000000000000'."
    )


class SheetsStandIn:
    """The stand-in server. Use as a context manager, or ``start()`` / ``stop()``.

    :param require_auth: answer 401 unless requests carry a token issued by ``/token``.
    """

    def __init__(self, *, require_auth: bool = False) -> None:
        self.require_auth = require_auth
        self.spreadsheets: dict[str, Spreadsheet] = {}
        self.log: list[Recorded] = []
        self.faults: list[Fault] = []
        self.abandoned = 0  # hung requests the client gave up on
        self.tokens: set[str] = set()
        self.refuse_tokens = False
        # SME edits to make just before the next request of a kind: (kind, edit)
        self.edits: list[tuple[str, Callable[[], None]]] = []
        # False: answer writes without the values includeValuesInResponse asks for
        self.echo_values = True
        self.lock = threading.RLock()
        self._ids = itertools.count(1_000_001)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SheetsStandIn:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> SheetsStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- set-up and inspection --

    def add_spreadsheet(
        self,
        key: str,
        title: str = "Untitled spreadsheet",
        sheets: Sequence[tuple[str, int]] = (("Sheet1", 0),),
        rows: int = 1000,
        cols: int = 26,
    ) -> Spreadsheet:
        with self.lock:
            book = Spreadsheet(key, title)
            for index, (name, sheet_id) in enumerate(sheets):
                book.sheets.append(Sheet(sheet_id, name, index, rows, cols))
            self.spreadsheets[key] = book
            return book

    def put(self, key: str, title: str, rows: Iterable[Sequence[Any]], start_row: int = 1) -> None:
        """Set cells from ``start_row`` (1-based), growing the grid to fit."""
        with self.lock:
            sheet = self._sheet(key, title)
            for r, values in enumerate(rows, start=start_row - 1):
                for c, value in enumerate(values):
                    sheet.set(r, c, value)
            sheet.rows = max(sheet.rows, len(sheet.cells))
            sheet.cols = max(sheet.cols, max((len(r) for r in sheet.cells), default=0))

    def grid(self, key: str, title: str) -> list[list[Any]]:
        """The cells as stored (typed), trailing empties trimmed."""
        with self.lock:
            out = []
            for row in self._sheet(key, title).cells:
                cells = list(row)
                while cells and _empty(cells[-1]):
                    cells.pop()
                out.append(cells)
            while out and not out[-1]:
                out.pop()
            return out

    def column(self, key: str, title: str, name: str, header_row: int = 1) -> list[Any]:
        """The stored cells of the column headed ``name``, below the header."""
        grid = self.grid(key, title)
        at = grid[header_row - 1].index(name)
        return [r[at] if at < len(r) else None for r in grid[header_row:]]

    def _sheet(self, key: str, title: str) -> Sheet:
        sheet = self.spreadsheets[key].sheet(title)
        assert sheet is not None, f"no tab {title!r}"
        return sheet

    def ranges_asked(self, kind: str = "formats") -> list[list[str]]:
        """The ``ranges`` of each request of ``kind`` received, in order."""
        with self.lock:
            return [r.query.get("ranges", []) for r in self.log if r.kind == kind]

    def count(self, kind: str | None = None) -> int:
        """Requests received (of one kind), the OAuth token endpoint not included."""
        with self.lock:
            return sum(1 for r in self.log if r.kind != "token" and kind in (None, r.kind))

    def reset_log(self) -> None:
        with self.lock:
            self.log.clear()

    def fail(
        self,
        status: int,
        times: int = 1,
        *,
        kind: str | None = None,
        retry_after: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (of ``kind``) with an error."""
        with self.lock:
            self.faults.append(Fault(kind, status, times, retry_after, message=message))

    def before_next(self, kind: str, edit: Callable[[], None]) -> None:
        """Run ``edit`` (an SME's sort, insert or delete) just before the next request of
        ``kind`` is answered: between two of annobridge's requests, deterministically."""
        with self.lock:
            self.edits.append((kind, edit))

    def stall(self, seconds: float, times: int = 1, *, kind: str | None = None) -> None:
        """Wait ``seconds`` before answering the next ``times`` requests (of ``kind``)."""
        with self.lock:
            self.faults.append(Fault(kind, 0, times, delay=seconds))

    def hang(self, times: int = 1, *, kind: str | None = None) -> None:
        """Answer the next ``times`` requests (of ``kind``) only once the client has hung up
        (its timeout ran out), however long that takes: ``abandoned`` counts them. A test
        of timeouts then bets on no wall clock: any client timeout is a timeout here."""
        with self.lock:
            self.faults.append(Fault(kind, 0, times, delay=HANG))

    # -- the SMEs --

    def sort_rows(
        self, key: str, title: str, by: Callable[[list[Any]], Any], header_row: int = 1
    ) -> None:
        with self.lock:
            sheet = self._sheet(key, title)
            body = sheet.cells[header_row:]
            sheet.cells[header_row:] = sorted(body, key=by)

    def insert_rows(self, key: str, title: str, before: int, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` above sheet row ``before`` (1-based), as Insert row above does."""
        with self.lock:
            sheet = self._sheet(key, title)
            while len(sheet.cells) < before - 1:
                sheet.cells.append([])
            sheet.cells[before - 1 : before - 1] = [list(r) for r in rows]
            sheet.rows += len(rows)

    def delete_rows(self, key: str, title: str, rows: Iterable[int]) -> None:
        """Delete sheet rows (1-based), as Delete row does: the rows below move up."""
        with self.lock:
            sheet = self._sheet(key, title)
            for r in sorted(set(rows), reverse=True):
                if r - 1 < len(sheet.cells):
                    del sheet.cells[r - 1]
                sheet.rows -= 1

    def insert_column(self, key: str, title: str, before: int, values: Sequence[Any] = ()) -> None:
        """Insert a column left of 0-based column ``before``, with ``values`` from row 1."""
        with self.lock:
            sheet = self._sheet(key, title)
            for r, row in enumerate(sheet.cells):
                while len(row) < before:
                    row.append(None)
                row.insert(before, values[r] if r < len(values) else None)
            sheet.cols += 1

    def rename(self, key: str, title: str, new_title: str) -> None:
        with self.lock:
            self._sheet(key, title).title = new_title

    # -- serving --

    def handle(
        self, method: str, target: str, headers: Any, body: bytes, connection: Any = None
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        kind = _kind(method, parts.path, query)
        record = Recorded(method, parts.path, kind, query, body)
        with self.lock:
            self.log.append(record)
            fault = next((f for f in self.faults if f.times > 0 and f.kind in (None, kind)), None)
            if fault is not None:
                fault.times -= 1
            edit = next((e for e in self.edits if e[0] == kind), None)
            if edit is not None:
                self.edits.remove(edit)
                edit[1]()
        if fault is not None and fault.delay == HANG:
            if connection is not None and _hung_up(connection, 120.0):
                with self.lock:
                    self.abandoned += 1
        elif fault is not None and fault.delay:
            time.sleep(fault.delay)
        try:
            if fault is not None and fault.status:
                raise self._fault_error(fault, kind)
            if kind == "token":
                status, answer = 200, self._token(body)
            else:
                self._authorize(headers)
                with self.lock:
                    status, answer = 200, self._route(method, parts.path, query, body)
        except ApiError as exc:
            status, answer = exc.code, exc.body
        record.status = status
        extra = {"Retry-After": fault.retry_after} if fault and fault.retry_after else {}
        return status, answer, extra

    def _fault_error(self, fault: Fault, kind: str) -> ApiError:
        statuses = {
            429: "RESOURCE_EXHAUSTED",
            403: "PERMISSION_DENIED",
            500: "INTERNAL",
            503: "UNAVAILABLE",
            400: "INVALID_ARGUMENT",
            401: "UNAUTHENTICATED",
        }
        message = fault.message or (
            _quota_message(kind) if fault.status == 429 else "Internal error encountered."
        )
        return ApiError(fault.status, message, statuses.get(fault.status, "UNKNOWN"))

    def _token(self, body: bytes) -> Any:
        form = parse_qs(body.decode())
        if self.refuse_tokens or not form.get("assertion"):
            refused = ApiError(400, "Invalid JWT Signature.", "invalid_grant")
            refused.body = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            raise refused
        token = f"ya29.standin-token-{next(self._ids)}"
        self.tokens.add(token)
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _authorize(self, headers: Any) -> None:
        if not self.require_auth:
            return
        value = headers.get("Authorization") or ""
        if not value.startswith("Bearer ") or value[7:] not in self.tokens:
            raise ApiError(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential.",
                "UNAUTHENTICATED",
            )

    def _book(self, key: str, write: bool) -> Spreadsheet:
        book = self.spreadsheets.get(key)
        if book is None:
            raise ApiError(404, "Requested entity was not found.", "NOT_FOUND")
        if book.access == "none" or (write and book.access != "write"):
            raise ApiError(403, "The caller does not have permission", "PERMISSION_DENIED")
        return book

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Any:
        segments = path.split("/")
        if segments[1:3] != ["v4", "spreadsheets"] or len(segments) < 4:
            raise ApiError(404, f"Not found: {path}", "NOT_FOUND")
        head, rest = segments[3], segments[4:]
        payload = json.loads(body) if body else {}
        if not rest:
            if method == "GET":
                return self._spreadsheet(self._book(head, False), query)
            if method == "POST" and head.endswith(":batchUpdate"):
                return self._structure(self._book(head[: -len(":batchUpdate")], True), payload)
        elif rest[0] == "values:batchGet" and method == "GET":
            book = self._book(head, False)
            return {
                "spreadsheetId": book.key,
                "valueRanges": [self._get(book, r, query) for r in query.get("ranges", [])],
            }
        elif rest[0] == "values:batchGetByDataFilter" and method == "POST":
            return self._get_by_filter(self._book(head, False), payload)
        elif rest[0] == "values:batchUpdate" and method == "POST":
            return self._batch_update(self._book(head, True), payload)
        elif rest[0] == "values" and len(rest) == 2:
            raw = rest[1]
            if method == "POST" and raw.endswith(":clear"):
                return self._clear(self._book(head, True), unquote(raw[: -len(":clear")]))
            if method == "GET":
                return self._get(self._book(head, False), unquote(raw), query)
            if method == "PUT":
                book = self._book(head, True)
                option = (query.get("valueInputOption") or [""])[0]
                return self._update(book, unquote(raw), payload, option)
        raise ApiError(404, f"Method not found: {method} {path}", "NOT_FOUND")

    # -- spreadsheets.get --

    def _spreadsheet(self, book: Spreadsheet, query: dict[str, list[str]]) -> Any:
        """The spreadsheet: metadata, the grid data of ``ranges`` if asked for, ``fields`` applied.

        Grid data comes with includeGridData=true, or when a ``fields`` mask names it (the mask
        wins: includeGridData is then ignored, as Google documents).
        """
        fields = (query.get("fields") or [""])[0]
        mask = parse_fields(fields) if fields else None
        if mask is not None:
            sheets_mask = mask.get("sheets", {})
            with_data = "sheets" in mask and (sheets_mask is None or "data" in sheets_mask)
        else:
            with_data = (query.get("includeGridData") or ["false"])[0].lower() == "true"
        answer = book.metadata()
        ranges = [book.resolve(text) for text in query.get("ranges", [])]
        if ranges or with_data:
            sheets = []
            for sheet in book.sheets:
                mine = [r for r in ranges if r[0] is sheet]
                if ranges and not mine:
                    continue  # only the sheets the ranges are on
                entry: dict[str, Any] = {"properties": sheet.properties()}
                if with_data:
                    parts = mine or [(sheet, 0, 0, sheet.rows - 1, sheet.cols - 1)]
                    entry["data"] = [grid_data(*part) for part in parts]
                sheets.append(entry)
            answer["sheets"] = sheets
        return apply_fields(answer, mask)

    # -- values --

    def _get(self, book: Spreadsheet, text: str, options: dict[str, Any]) -> dict[str, Any]:
        def opt(name: str, default: str) -> str:
            value = options.get(name, default)
            return str(value[0] if isinstance(value, list) else value)

        sheet, r0, c0, r1, c1 = book.resolve(text)
        value_option = opt("valueRenderOption", "FORMATTED_VALUE")
        date_option = opt("dateTimeRenderOption", "SERIAL_NUMBER")
        major = opt("majorDimension", "ROWS")
        rows = [
            [render(sheet.get(r, c), value_option, date_option) for c in range(c0, c1 + 1)]
            for r in range(r0, r1 + 1)
        ]
        if major == "COLUMNS":
            rows = [list(col) for col in zip(*rows, strict=True)] if rows else []
        for row in rows:
            while row and row[-1] == "":
                row.pop()
        while rows and not rows[-1]:
            rows.pop()
        answer: dict[str, Any] = {"range": a1_of(sheet, r0, c0, r1, c1), "majorDimension": major}
        if rows:
            answer["values"] = rows
        return answer

    def _get_by_filter(self, book: Spreadsheet, payload: dict[str, Any]) -> dict[str, Any]:
        found = []
        for data_filter in payload.get("dataFilters", []):
            if "a1Range" in data_filter:
                text = data_filter["a1Range"]
            elif "gridRange" in data_filter:
                grid = data_filter["gridRange"]
                sheet = book.by_id(int(grid.get("sheetId", 0)))
                if sheet is None:
                    continue  # matches nothing
                r0, c0 = grid.get("startRowIndex", 0), grid.get("startColumnIndex", 0)
                r1 = grid.get("endRowIndex", sheet.rows) - 1
                c1 = grid.get("endColumnIndex", sheet.cols) - 1
                text = a1_of(sheet, r0, c0, r1, c1)
            else:
                raise bad_request("Invalid dataFilter: one of a1Range or gridRange is required")
            found.append(
                {"valueRange": self._get(book, text, payload), "dataFilters": [data_filter]}
            )
        answer: dict[str, Any] = {"spreadsheetId": book.key}
        if found:
            answer["valueRanges"] = found
        return answer

    def _prepare(
        self, book: Spreadsheet, text: str, values: Any, option: str
    ) -> tuple[Sheet, int, int, list[list[Any]]]:
        if option not in ("RAW", "USER_ENTERED"):
            raise bad_request("'valueInputOption' is required but not specified")
        if not isinstance(values, list) or not all(isinstance(r, list) for r in values):
            message = (
                "Invalid value at 'data.values' (type.googleapis.com/google.protobuf.ListValue), "
                + json.dumps(values)
            )
            raise ApiError(
                400,
                message,
                "INVALID_ARGUMENT",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": "data.values", "description": message}],
                    }
                ],
            )
        sheet, r0, c0, r1, c1 = book.resolve(text)
        width = max((len(r) for r in values), default=0)
        closed = ":" in text.rpartition("!")[2]
        if closed and (len(values) > r1 - r0 + 1 or width > c1 - c0 + 1):
            raise bad_request(
                f"Requested writing within range [{text}], but tried writing more cells"
            )
        if r0 + len(values) > sheet.rows or c0 + width > sheet.cols:
            raise bad_request(
                f"Range ({text}) exceeds grid limits. Max rows: {sheet.rows}, "
                f"max columns: {sheet.cols}"
            )
        parse = user_entered if option == "USER_ENTERED" else (lambda v: v)
        cells = [[parse(v) for v in row] for row in values]
        return sheet, r0, c0, cells

    @staticmethod
    def _apply(sheet: Sheet, r0: int, c0: int, cells: list[list[Any]]) -> None:
        for i, row in enumerate(cells):
            for j, value in enumerate(row):
                if value is not None:  # null leaves a cell as it is
                    sheet.set(r0 + i, c0 + j, value)

    @staticmethod
    def _updated(
        book: Spreadsheet, sheet: Sheet, r0: int, c0: int, cells: list[list[Any]]
    ) -> dict[str, Any]:
        rows, cols = len(cells), max((len(r) for r in cells), default=0)
        return {
            "spreadsheetId": book.key,
            "updatedRange": a1_of(sheet, r0, c0, r0 + rows - 1, c0 + cols - 1),
            "updatedRows": rows,
            "updatedColumns": cols,
            "updatedCells": sum(len(r) for r in cells),
        }

    def _update(self, book: Spreadsheet, text: str, payload: dict[str, Any], option: str) -> Any:
        sheet, r0, c0, cells = self._prepare(book, text, payload.get("values"), option)
        self._apply(sheet, r0, c0, cells)
        return self._updated(book, sheet, r0, c0, cells)

    def _batch_update(self, book: Spreadsheet, payload: dict[str, Any]) -> Any:
        option = payload.get("valueInputOption", "")
        prepared = [
            self._prepare(book, d.get("range", ""), d.get("values"), option)
            for d in payload.get("data", [])
        ]  # all ranges are checked before any is written: the batch is atomic
        responses = []
        rows: set[tuple[int, int]] = set()
        cols: set[tuple[int, int]] = set()
        for sheet, r0, c0, cells in prepared:
            self._apply(sheet, r0, c0, cells)
            responses.append(self._updated(book, sheet, r0, c0, cells))
        if payload.get("includeValuesInResponse") and self.echo_values:
            # "all values in the requested range", as they are once the whole batch is written
            options = {
                "valueRenderOption": payload.get("responseValueRenderOption", "FORMATTED_VALUE"),
                "dateTimeRenderOption": payload.get(
                    "responseDateTimeRenderOption", "SERIAL_NUMBER"
                ),
            }
            for d, response in zip(payload.get("data", []), responses, strict=True):
                response["updatedData"] = self._get(book, d.get("range", ""), options)
        for sheet, r0, c0, cells in prepared:
            for i, row in enumerate(cells):
                rows.add((sheet.sheet_id, r0 + i))
                cols.update((sheet.sheet_id, c0 + j) for j in range(len(row)))
        return {
            "spreadsheetId": book.key,
            "totalUpdatedRows": len(rows),
            "totalUpdatedColumns": len(cols),
            "totalUpdatedCells": sum(r["updatedCells"] for r in responses),
            "totalUpdatedSheets": len({s.sheet_id for s, *_ in prepared}),
            "responses": responses,
        }

    def _clear(self, book: Spreadsheet, text: str) -> Any:
        sheet, r0, c0, r1, c1 = book.resolve(text)
        for r in range(r0, min(r1 + 1, len(sheet.cells))):
            row = sheet.cells[r]
            for c in range(c0, min(c1 + 1, len(row))):
                row[c] = None
        return {"spreadsheetId": book.key, "clearedRange": a1_of(sheet, r0, c0, r1, c1)}

    # -- structure --

    def _structure(self, book: Spreadsheet, payload: dict[str, Any]) -> Any:
        replies: list[dict[str, Any]] = []
        for request in payload.get("requests", []):
            ((name, spec),) = request.items()
            replies.append(self._structure_one(book, name, spec))
        return {"spreadsheetId": book.key, "replies": replies}

    def _grid_sheet(self, book: Spreadsheet, sheet_id: int) -> Sheet:
        sheet = book.by_id(sheet_id)
        if sheet is None:
            raise bad_request(f"No grid with id: {sheet_id}")
        return sheet

    def _structure_one(self, book: Spreadsheet, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        if name == "addSheet":
            props = spec.get("properties", {})
            grid = props.get("gridProperties", {})
            sheet = Sheet(
                props.get("sheetId", next(self._ids)),
                props.get("title", f"Sheet{len(book.sheets) + 1}"),
                len(book.sheets),
                grid.get("rowCount", 1000),
                grid.get("columnCount", 26),
            )
            book.sheets.append(sheet)
            return {"addSheet": {"properties": sheet.properties()}}
        if name == "deleteSheet":
            sheet = self._grid_sheet(book, spec["sheetId"])
            book.sheets.remove(sheet)
            for i, s in enumerate(book.sheets):
                s.index = i
            return {}
        if name == "updateSheetProperties":
            props = spec.get("properties", {})
            sheet = self._grid_sheet(book, props.get("sheetId", 0))
            grid = props.get("gridProperties", {})
            sheet.rows = grid.get("rowCount", sheet.rows)
            sheet.cols = grid.get("columnCount", sheet.cols)
            sheet.title = props.get("title", sheet.title)
            sheet.clip()
            return {}
        if name == "setDataValidation":
            return {}
        if name == "appendDimension":
            sheet = self._grid_sheet(book, spec["sheetId"])
            if spec.get("dimension") == "COLUMNS":
                sheet.cols += int(spec["length"])
            else:
                sheet.rows += int(spec["length"])
            return {}
        if name in ("insertDimension", "deleteDimension"):
            dim = spec["range"]
            sheet = self._grid_sheet(book, dim["sheetId"])
            start, end = dim["startIndex"], dim["endIndex"]
            if dim.get("dimension") == "ROWS":
                if name == "insertDimension":
                    self.insert_rows(book.key, sheet.title, start + 1, [[]] * (end - start))
                else:
                    self.delete_rows(book.key, sheet.title, range(start + 1, end + 1))
                return {}
        raise bad_request(f"Invalid requests[0]: unsupported request {name}")


def _kind(method: str, path: str, query: dict[str, list[str]]) -> str:
    if path == "/token":
        return "token"
    segments = path.split("/")
    if len(segments) == 4:
        if method == "POST":
            return "structure"
        return "formats" if query.get("ranges") else "metadata"  # cells' formats, or the tabs
    tail = segments[4] if len(segments) > 4 else ""
    if tail in ("values:batchGet", "values:batchGetByDataFilter") or (
        tail == "values" and method == "GET"
    ):
        return "read"
    return "write"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # one write per answer and no Nagle: otherwise each request waits ~40 ms for delayed ACKs
    disable_nagle_algorithm = True
    wbufsize = -1
    standin: SheetsStandIn

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, answer, extra = self.standin.handle(
            self.command, self.path, self.headers, body, self.connection
        )
        data = json.dumps(answer, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        with _ignore_disconnect():
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass


class _ignore_disconnect:
    """A client that timed out has gone away: writing to it is not the stand-in's error."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, ConnectionError | OSError)


def serial(day: date) -> int:
    """A date's serial number, as UNFORMATTED_VALUE with SERIAL_NUMBER gives it."""
    return (datetime(day.year, day.month, day.day) - _EPOCH).days
