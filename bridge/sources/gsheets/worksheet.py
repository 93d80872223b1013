"""One worksheet of a Google Sheet, as the source and the export sink share it: the
signed-in client, which tab it is, the whole-tab read and what it tells of the grid."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import requests
from google.auth.credentials import Credentials
from gspread.exceptions import APIError
from gspread.http_client import ParamsType
from gspread.urls import SPREADSHEETS_API_V4_BASE_URL

from bridge.errors import SourceError
from bridge.sources.gsheets.api import (
    METADATA_FIELDS,
    VALUE_OPTIONS,
    GoogleErrors,
    RetryPolicy,
    SheetsHTTPClient,
    answer_of,
)
from bridge.sources.gsheets.auth import GoogleAuth, load_auth
from bridge.sources.gsheets.data import (
    MAX_WRITE_BYTES,
    MAX_WRITE_ROWS,
    parse_range,
    parse_spreadsheet,
    quote_title,
)


@dataclass
class Layout:
    """What the read learnt about the worksheet, for the write-back."""

    title: str
    sheet_id: int | None = None
    grid_rows: int = 0
    grid_cols: int = 0
    width: int = 0  # columns in use at read time (the widest row)
    key_positions: dict[str, int] = field(default_factory=dict)
    # where the mapped columns were, in the mapping's order: rows without a key are found
    # again by what these hold
    mapped_positions: list[int] = field(default_factory=list)
    # the content of each row without a key, by its row at read time (see keyless_contents)
    keyless: dict[int, tuple[str, ...]] = field(default_factory=dict)
    # where the status columns are, and what each keyed row held in them when read (to give
    # a row back its own status if another row's landed on it)
    status_positions: dict[str, int] = field(default_factory=dict)
    statuses: dict[tuple[tuple[str, ...], int], dict[str, Any]] = field(default_factory=dict)


class Worksheet(GoogleErrors):
    """A worksheet of a Google Sheet: the plumbing the source and the export sink share.

    :param spreadsheet: the spreadsheet's key or URL (a URL's ``#gid=`` picks the tab when
        ``worksheet`` and ``gid`` are not given).
    :param worksheet: the tab's title.
    :param header_row: 1-based row of the column names.
    :param credentials: a service-account key or OAuth file; see ``load_auth`` otherwise.
    :param gid: the tab's id (the number after ``#gid=`` in its URL), instead of its title.
    :param timeout: seconds to wait for each answer from Google.
    :param api_base: where the Sheets API is; Google by default (tests use a local stand-in).
    :param session: a ready requests session; no credentials are looked for then.
    """

    def __init__(
        self,
        spreadsheet: str,
        worksheet: str | None = None,
        header_row: int = 1,
        credentials: Path | None = None,
        *,
        gid: int | None = None,
        timeout: float = 60.0,
        api_base: str | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        max_write_rows: int = MAX_WRITE_ROWS,
        max_write_bytes: int = MAX_WRITE_BYTES,
    ) -> None:
        try:
            ref = parse_spreadsheet(spreadsheet)
        except ValueError as exc:
            raise SourceError(f"{exc}; fix source.spreadsheet in the mapping") from None
        self.key = ref.key
        self.worksheet = worksheet
        self.gid = gid if gid is not None or worksheet is not None else ref.gid
        self.header_row = header_row
        self.credentials = credentials
        self.timeout = timeout
        self.api_base = api_base
        self.max_write_rows = max_write_rows
        self.max_write_bytes = max_write_bytes
        self._session = session
        self._retry = retry
        self._client: SheetsHTTPClient | None = None
        self._auth: GoogleAuth | None = None
        self._layout: Layout | None = None

    # -- plumbing --

    @property
    def label(self) -> str:
        tab = self._layout.title if self._layout else (self.worksheet or "")
        if not tab and self.gid is not None:
            tab = f"gid {self.gid}"
        return f"Google Sheet {self.key}" + (f"/{tab}" if tab else "")

    def _where(self) -> str:
        if self._layout:
            return f"Google Sheet {self.key}, worksheet '{self._layout.title}'"
        if self.worksheet is not None:
            return f"Google Sheet {self.key}, worksheet '{self.worksheet}'"
        if self.gid is not None:
            return f"Google Sheet {self.key}, worksheet gid {self.gid}"
        return f"Google Sheet {self.key}"

    def _http(self) -> SheetsHTTPClient:
        if self._client is None:
            auth: Credentials | None = None
            if self._session is None:
                self._auth = load_auth(self.credentials)
                auth = self._auth.credentials
            self._client = SheetsHTTPClient(
                auth,
                self._session,
                base_url=self.api_base,
                timeout=self.timeout,
                retry=self._retry,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sheets(self) -> list[dict[str, Any]]:
        params: ParamsType = {"fields": METADATA_FIELDS}
        meta = self._http().fetch_sheet_metadata(self.key, params=params)
        sheets = [s.get("properties", {}) for s in meta.get("sheets", [])]
        return sorted(sheets, key=lambda p: int(p.get("index", 0)))

    def _missing_worksheet(self) -> SourceError:
        sheets = self._sheets()
        listing = ", ".join(f"'{p.get('title')}' (gid {p.get('sheetId')})" for p in sheets)
        if self.worksheet is not None:
            titles = [str(p.get("title")) for p in sheets]
            near = {t.strip().casefold(): t for t in titles}.get(self.worksheet.strip().casefold())
            hint = f" (did you mean '{near}'?)" if near else ""
            what, fix = f"no worksheet '{self.worksheet}'{hint}", "source.worksheet"
        else:
            what, fix = f"no worksheet with gid {self.gid}", "source.gid or the URL's #gid="
        return SourceError(
            f"Google Sheet {self.key}: {what}. Worksheets: {listing}. Fix {fix} in the mapping. "
            "Nothing was sent."
        )

    def _first_sheet(self) -> Layout:
        grids = [p for p in self._sheets() if p.get("sheetType", "GRID") == "GRID"]
        if not grids:
            raise SourceError(f"Google Sheet {self.key}: it has no worksheet with cells")
        first = grids[0]
        return Layout(title=str(first["title"]), sheet_id=int(first["sheetId"]))

    # -- read --

    def _read_values(self) -> tuple[dict[str, Any], int | None]:
        """The whole worksheet's values, in one request (two for the unnamed first sheet)."""
        http = self._http()
        params: ParamsType = dict(VALUE_OPTIONS)
        if self.worksheet is not None or self.gid is None:
            sheet_id = None
            title = self.worksheet
            if title is None:
                first = self._first_sheet()
                title, sheet_id = first.title, first.sheet_id
            try:
                return http.values_get(self.key, quote_title(title), params=params), sheet_id
            except APIError as exc:
                if exc.code == 400 and "Unable to parse range" in str(exc.error.get("message")):
                    raise self._missing_worksheet() from None
                raise
        body = {"dataFilters": [{"gridRange": {"sheetId": self.gid}}], **VALUE_OPTIONS}
        url = f"{SPREADSHEETS_API_V4_BASE_URL}/{self.key}/values:batchGetByDataFilter"
        try:
            answer = answer_of(http.request("post", url, json=body))
        except APIError as exc:
            if exc.code == 400:
                raise self._missing_worksheet() from None
            raise
        found = answer.get("valueRanges") or []
        if not found:
            raise self._missing_worksheet()
        return found[0]["valueRange"], self.gid

    def _take(
        self, answer: Mapping[str, Any], sheet_id: int | None
    ) -> tuple[Layout, list[list[Any]]]:
        """The values of a whole-worksheet read, and the layout its range tells (kept)."""
        grid = parse_range(str(answer["range"]))
        values: list[list[Any]] = answer.get("values") or []
        self._layout = Layout(
            title=grid.title,
            sheet_id=sheet_id,
            grid_rows=grid.last_row,
            grid_cols=grid.last_col + 1,
            width=max((len(r) for r in values), default=0),
        )
        return self._layout, values

    def _widen(self, layout: Layout, columns: int) -> None:
        """Append columns to the grid: values writes past its last column are refused."""
        if layout.sheet_id is None:
            match = [p for p in self._sheets() if p.get("title") == layout.title]
            if not match:
                raise SourceError(
                    f"{self._where()}: the worksheet was renamed or deleted while syncing. "
                    f"{self._after('write')}"
                )
            layout.sheet_id = int(match[0]["sheetId"])
        body = {
            "requests": [
                {
                    "appendDimension": {
                        "sheetId": layout.sheet_id,
                        "dimension": "COLUMNS",
                        "length": columns,
                    }
                }
            ]
        }
        self._http().batch_update(self.key, body)
        layout.grid_cols += columns
