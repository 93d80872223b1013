"""Google Sheets source: typed reads and key-located status writes, frugal with quota.

A sync costs, for a worksheet given by title or gid (``gid:`` or the ``#gid=`` of the URL):

1. one values read of the whole worksheet (UNFORMATTED_VALUE, serial-number dates), whose
   answer also names the worksheet and the size of its grid;
2. one re-read of the header row and the key columns, just before writing, so each status
   lands on the row that holds its key even if SMEs sorted, inserted or deleted rows;
3. one RAW values:batchUpdate per ~25k rows, of the status cells only.

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
Retry-After, because gspread 6.2.1's BackOffHTTPClient retries 429 forever.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import google.auth
import google.auth.exceptions
import gspread.auth
import requests
from google.auth.credentials import Credentials
from google.oauth2.credentials import Credentials as UserCredentials
from google.oauth2.service_account import Credentials as ServiceAccountCredentials
from gspread.exceptions import APIError
from gspread.http_client import FileType, HTTPClient, ParamsType
from gspread.urls import SPREADSHEETS_API_V4_BASE_URL

from bridge.errors import AuthRefused, BridgeError, ConfigError, SourceError, SourceUnavailable
from bridge.records import (
    AppendReport,
    Row,
    StatusUpdate,
    Validation,
    WriteReport,
    list_problem,
    safe_text,
)
from bridge.sources._table import (
    column_letter,
    header_index,
    key_part,
    near_name,
    place_updates,
    rows_from_grid,
    status_positions,
)
from bridge.sources.base import ExportSink, ReadSpec, Source
from bridge.sources.gsheets.data import (
    FORMAT_FIELDS,
    MAX_WRITE_BYTES,
    MAX_WRITE_ROWS,
    RETRY_STATUSES,
    backoff_delay,
    column_values,
    date_candidates,
    format_ranges,
    from_serial,
    number_formats,
    parse_range,
    parse_retry_after,
    parse_spreadsheet,
    quote_title,
    request_body,
    write_chunks,
)

log = logging.getLogger(__name__)

# Google Sheets' limit on the characters in one cell (Google's "Files you can store in
# Google Drive" help page).
SHEETS_CELL_LIMIT = 50_000

GOOGLE_SHEETS_HOST = "https://sheets.googleapis.com"
# Reading and writing cell values is all annobridge does: no Drive scope for service accounts.
SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
# Typed values: ids stay text, checkboxes are booleans, percentages fractions, dates serials.
VALUE_OPTIONS: dict[str, str] = {
    "majorDimension": "ROWS",
    "valueRenderOption": "UNFORMATTED_VALUE",
    "dateTimeRenderOption": "SERIAL_NUMBER",
}
_METADATA_FIELDS = (
    "sheets.properties(sheetId,title,index,sheetType,gridProperties(rowCount,columnCount))"
)
_TRANSIENT = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    google.auth.exceptions.TransportError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying when Google answers 429/408/5xx or the network fails.

    Six retries wait about 1+2+4+8+16+32 s: past a full minute, when the per-minute quota
    has refilled. ``max_wait`` bounds the total, Retry-After included.
    """

    retries: int = 6
    base: float = 1.0
    cap: float = 32.0
    max_retry_after: float = 60.0
    max_wait: float = 180.0
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random


class RetriesExhausted(Exception):
    """Google kept failing with retryable answers until the retry budget ran out."""

    def __init__(self, problem: str, attempts: int, waited: float) -> None:
        super().__init__(problem)
        self.problem = problem
        self.attempts = attempts
        self.waited = waited


class SheetsHTTPClient(HTTPClient):
    """gspread's HTTP client with a timeout on every request and bounded, jittered retries.

    :param auth: google-auth credentials; None with ``session`` (tests, own auth).
    :param session: a ready session; when given, ``auth`` is not used.
    :param base_url: where the Sheets API is (a local stand-in in tests); Google by default.
    :param timeout: seconds to wait for each answer (connecting waits at most 10 s).
    """

    def __init__(
        self,
        auth: Credentials | None,
        session: requests.Session | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(cast(Credentials, auth), session)
        self.set_timeout((min(10.0, timeout), timeout))
        self.retry = retry or RetryPolicy()
        self.base_url = base_url.rstrip("/") if base_url else None

    def _url(self, endpoint: str) -> str:
        if self.base_url and endpoint.startswith(GOOGLE_SHEETS_HOST):
            return self.base_url + endpoint[len(GOOGLE_SHEETS_HOST) :]
        return endpoint

    def request(
        self,
        method: str,
        endpoint: str,
        params: ParamsType | None = None,
        data: bytes | None = None,
        json: Mapping[str, Any] | None = None,
        files: FileType = None,
        headers: MutableMapping[str, str] | None = None,
    ) -> requests.Response:
        """Send once, retrying 429/408/5xx and network failures within the policy.

        :raises APIError: any other non-2xx answer.
        :raises RetriesExhausted: still failing when the retries or ``max_wait`` ran out.
        """
        url = self._url(endpoint)
        policy = self.retry
        waited = 0.0
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = self.session.request(
                    method=method,
                    url=url,
                    json=json,
                    params=params,
                    data=data,
                    files=files,
                    headers=headers,
                    timeout=self.timeout,
                )
            except _TRANSIENT as exc:
                problem = _transport_problem(exc)
            else:
                if response.ok:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise APIError(response)
                problem = f"HTTP {response.status_code} {_google_message(response)}".strip()
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt >= policy.retries:
                raise RetriesExhausted(problem, attempt + 1, waited)
            delay = backoff_delay(attempt, policy.base, policy.cap, policy.rand())
            if retry_after is not None:
                delay = max(delay, min(retry_after, policy.max_retry_after))
            if waited + delay > policy.max_wait:
                raise RetriesExhausted(problem, attempt + 1, waited)
            log.warning(
                "Google Sheets: %s; retrying in %.1f s (retry %d of %d)",
                problem,
                delay,
                attempt + 1,
                policy.retries,
            )
            policy.sleep(delay)
            waited += delay
            attempt += 1


def _transport_problem(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc):
        return "no answer within the timeout"
    if isinstance(exc, google.auth.exceptions.TransportError):
        return "cannot reach Google's sign-in service"
    return "the connection failed"


def _google_message(response: requests.Response) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message", ""))[:200]
    except ValueError:
        return ""


_PEM = re.compile(r"-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)", re.S)
_TOKEN = re.compile(r"\bya29\.[\w.-]+|\b1//[\w.-]{20,}")


def scrub(text: str, limit: int = 300) -> str:
    """A message without private keys or OAuth tokens in it, cut to ``limit`` characters."""
    text = _PEM.sub("<private key>", text)
    text = _TOKEN.sub("<token>", text)
    return text[:limit]


# --- credentials -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GoogleAuth:
    """Credentials and who they are, for messages (never the secret itself)."""

    credentials: Credentials
    who: str
    email: str | None = None  # a service account's e-mail: the address to share the sheet with


def credential_files(
    configured: Path | None, environ: Mapping[str, str] | None = None
) -> tuple[list[tuple[Path, str]], bool]:
    """Where credentials are looked for, in order, and whether the first was named explicitly."""
    env = os.environ if environ is None else environ
    if configured is not None:
        return [(configured, "source.credentials in the mapping")], True
    if env.get("GOOGLE_APPLICATION_CREDENTIALS"):
        path = Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).expanduser()
        return [(path, "GOOGLE_APPLICATION_CREDENTIALS")], True
    home = gspread.auth.get_config_dir()
    return [
        (home / "service_account.json", "gspread's default service-account key"),
        (home / "authorized_user.json", "gspread's cached OAuth login"),
        (home / "credentials.json", "gspread's OAuth client file"),
    ], False


def load_auth(
    configured: Path | None = None,
    environ: Mapping[str, str] | None = None,
    interactive: bool | None = None,
) -> GoogleAuth:
    """Find credentials the way gspread users keep them.

    Order: ``source.credentials`` of the mapping; ``GOOGLE_APPLICATION_CREDENTIALS``;
    gspread's ``service_account.json``, ``authorized_user.json`` (a cached OAuth login) and
    ``credentials.json`` (an OAuth client: logs in through the browser once, then caches).

    :raises ConfigError: nothing found (listing where it looked), or an unusable file.
    """
    files, explicit = credential_files(configured, environ)
    for path, origin in files:
        if path.is_file():
            return _load_file(path, origin, interactive)
        if explicit and path.is_dir():
            raise ConfigError(f"{origin} names {path}, a folder; name the JSON key file in it")
        if explicit:
            raise ConfigError(
                f"{origin} names {path}, which does not exist; put the service account's JSON "
                "key there, or fix the path"
            )
    looked = ", ".join(str(p) for p, _ in files)
    raise ConfigError(
        "no Google credentials found. Looked for: source.credentials in the mapping (not set), "
        f"GOOGLE_APPLICATION_CREDENTIALS (not set), {looked}. Create a service account and a "
        "JSON key for it ('annobridge init --source gsheet' prints the steps), save the key as "
        f"{files[0][0]} or set source.credentials in the mapping, and share the sheet with the "
        "service account's e-mail (client_email in the key file) as Editor"
    )


def _load_file(path: Path, origin: str, interactive: bool | None) -> GoogleAuth:
    where = f"{path} ({origin})"
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the credentials ({exc.strerror})") from None
    try:
        info = json.loads(raw)
    except ValueError:
        # never chain: a JSONDecodeError carries the whole file, private key included
        raise ConfigError(
            f"{where}: not a JSON credentials file; download the service account's key again, "
            "as JSON"
        ) from None
    if not isinstance(info, dict):
        raise ConfigError(f"{where}: not a Google credentials file (expected a JSON object)")
    kind = info.get("type")
    try:
        if kind == "service_account":
            sa = ServiceAccountCredentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=SCOPES
            )
            email = sa.service_account_email
            return GoogleAuth(sa, f"the service account {email}", email)
        # gspread caches OAuth logins without a "type" (google-auth's Credentials.to_json)
        if kind == "authorized_user" or (kind is None and "refresh_token" in info):
            user = UserCredentials.from_authorized_user_info(info)  # type: ignore[no-untyped-call]
            return GoogleAuth(user, f"the Google account logged in with OAuth (token {path})")
        if isinstance(info.get("installed") or info.get("web"), dict):
            return _oauth_login(info, path, interactive)
        if kind in ("external_account", "impersonated_service_account"):
            creds, _ = google.auth.load_credentials_from_file(  # type: ignore[no-untyped-call]
                str(path), scopes=SCOPES
            )
            return GoogleAuth(creds, f"the {kind.replace('_', ' ')} of {path}")
    except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
        raise ConfigError(
            f"{where}: not usable Google credentials ({scrub(str(exc), 200)}); create a new JSON "
            "key for the service account and use that"
        ) from None
    raise ConfigError(
        f"{where}: not a Google credentials file; expected a service-account key "
        '("type": "service_account") or an OAuth client file ("installed")'
    )


def _oauth_login(client: dict[str, Any], path: Path, interactive: bool | None) -> GoogleAuth:
    """gspread's OAuth flow: reuse the cached login, or log in through the browser once."""
    token_file = gspread.auth.get_config_dir() / "authorized_user.json"
    if token_file.is_file():
        return _load_file(token_file, "gspread's cached OAuth login", interactive)
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if not interactive:
        raise ConfigError(
            f"{path} is an OAuth client file: the first login happens in a browser. Run "
            "'annobridge validate <mapping>' once in a terminal; the login is then cached in "
            f"{token_file} for unattended runs"
        )
    creds = gspread.auth.local_server_flow(client, gspread.auth.DEFAULT_SCOPES)
    gspread.auth.store_credentials(creds, filename=token_file)
    return GoogleAuth(creds, f"the Google account logged in with OAuth (token {token_file})")


def service_account_email(environ: Mapping[str, str] | None = None) -> tuple[Path, str] | None:
    """The first service-account key found where ``load_auth`` looks, and its e-mail.

    Reads files only (no network); for ``annobridge init`` to say whom to share the sheet with.
    """
    files, _ = credential_files(None, environ)
    for path, _origin in files:
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and info.get("type") == "service_account":
            email = info.get("client_email")
            if isinstance(email, str) and email:
                return path, email
    return None


# --- the source ------------------------------------------------------------------------------


@dataclass
class _Layout:
    """What the read learnt about the worksheet, for the write-back."""

    title: str
    sheet_id: int | None = None
    grid_rows: int = 0
    grid_cols: int = 0
    width: int = 0  # columns in use at read time (the widest row)
    key_positions: dict[str, int] = field(default_factory=dict)


class GSheetsSource(Source, ExportSink):
    """A worksheet of a Google Sheet.

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
        self._layout: _Layout | None = None

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

    def __enter__(self) -> GSheetsSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _who(self) -> str:
        return self._auth.who if self._auth else "these credentials"

    def _share_fix(self) -> str:
        if self._auth and self._auth.email:
            return (
                f"Open the sheet, click Share, add {self._auth.email} as Editor (untick "
                "'Notify people'), and run again"
            )
        return "Ask the sheet's owner to share it with that account as Editor, and run again"

    @staticmethod
    def _after(phase: str, written: int = 0) -> str:
        if phase == "read":
            return "Nothing was sent."
        done = f" ({written} rows were written before it stopped)" if written else ""
        return (
            f"The annotations were sent but their statuses were not all written{done}; "
            "nothing is lost: run again to write them (no annotation is duplicated)."
        )

    @contextlib.contextmanager
    def _google(self, phase: str, written: Callable[[], int] = lambda: 0) -> Iterator[None]:
        """Turn gspread, google-auth and network failures into annobridge's errors."""
        try:
            yield
        except RetriesExhausted as exc:
            if exc.problem.startswith("HTTP 429"):
                hint = "That is Google's per-minute quota: wait a minute before running again"
            elif exc.problem.startswith("HTTP "):
                hint = "Google's servers answered with errors: run again later"
            else:  # nothing answered: the network, not the quota
                hint = (
                    "Nothing answered: Google cannot be reached from here (the network, DNS, "
                    "a proxy in HTTPS_PROXY, or a firewall blocking oauth2.googleapis.com or "
                    "sheets.googleapis.com); check the connection and run again"
                )
            raise SourceUnavailable(
                f"{self._where()}: Google Sheets kept failing ({exc.problem}) on {exc.attempts} "
                f"tries over {exc.waited:.0f} s. {self._after(phase, written())} {hint}"
            ) from None
        except APIError as exc:
            raise self._api_error(exc, phase, written()) from None
        except google.auth.exceptions.RefreshError as exc:
            reason = scrub(str(exc.args[0]) if exc.args else type(exc).__name__, 200)
            raise AuthRefused(
                f"{self._where()}: Google refused to sign in {self._who()} ({reason}). The key "
                "may have been deleted or the login revoked: create a new key (or delete the "
                f"cached OAuth token and log in again). {self._after(phase, written())}"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise SourceUnavailable(
                f"{self._where()}: the request to Google Sheets failed ({type(exc).__name__}). "
                f"{self._after(phase, written())}"
            ) from None

    def _api_error(self, exc: APIError, phase: str, written: int = 0) -> BridgeError:
        code = exc.code
        message = scrub(str(exc.error.get("message", "")), 300)
        where, after = self._where(), self._after(phase, written)
        if code == 404:
            return SourceError(
                f"{where}: Google Sheets has no spreadsheet with key {self.key} (404: {message}). "
                "Fix source.spreadsheet: copy the URL from the browser's address bar while the "
                f"sheet is open. {after}"
            )
        if code == 403 and ("has not been used" in message or "disabled" in message):
            return AuthRefused(
                f"{where}: the Google Sheets API is not enabled in the Google Cloud project of "
                f"{self._who()} (403: {message}). Enable it at https://console.cloud.google.com"
                f"/apis/library/sheets.googleapis.com and run again. {after}"
            )
        if code == 403 and "protect" in message.lower():
            return AuthRefused(
                f"{where}: {self._who()} may not edit the status columns, which are protected "
                f"(403: {message}). In Data > Protect sheets and ranges, let that account edit "
                f"them. {after}"
            )
        if code == 403 and phase == "write":
            return AuthRefused(
                f"{where}: {self._who()} can read the sheet but not edit it (403: {message}). "
                f"{self._share_fix()}. {after}"
            )
        if code == 403:
            return AuthRefused(
                f"{where}: the sheet is not shared with {self._who()} (403: {message}). "
                f"{self._share_fix()}. {after}"
            )
        if code == 401:
            return AuthRefused(
                f"{where}: Google refused the credentials of {self._who()} (401: {message}). "
                f"Create a new key, or log in again. {after}"
            )
        if code == 400:
            return SourceError(
                f"{where}: Google Sheets refused the request (400: {message}). {after}"
            )
        return SourceUnavailable(f"{where}: Google Sheets answered {code} ({message}). {after}")

    # -- metadata (only when the worksheet is not named, or on error paths) --

    def _sheets(self) -> list[dict[str, Any]]:
        params: ParamsType = {"fields": _METADATA_FIELDS}
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

    def _first_sheet(self) -> _Layout:
        grids = [p for p in self._sheets() if p.get("sheetType", "GRID") == "GRID"]
        if not grids:
            raise SourceError(f"Google Sheet {self.key}: it has no worksheet with cells")
        first = grids[0]
        return _Layout(title=str(first["title"]), sheet_id=int(first["sheetId"]))

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
            answer = http.request("post", url, json=body).json()
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
    ) -> tuple[_Layout, list[list[Any]]]:
        """The values of a whole-worksheet read, and the layout its range tells (kept)."""
        grid = parse_range(str(answer["range"]))
        values: list[list[Any]] = answer.get("values") or []
        self._layout = _Layout(
            title=grid.title,
            sheet_id=sheet_id,
            grid_rows=grid.last_row,
            grid_cols=grid.last_col + 1,
            width=max((len(r) for r in values), default=0),
        )
        return self._layout, values

    def read(self, spec: ReadSpec) -> list[Row]:
        with self._google("read"):
            layout, values = self._take(*self._read_values())
        where = self._where()
        if not values:
            raise SourceError(
                f"{where}: the worksheet is empty; it needs the column names in row "
                f"{self.header_row}, and rows of labels under them"
            )
        rows = rows_from_grid(
            values, self.header_row, spec.columns, spec.key_columns, spec.status, where
        )
        header = values[self.header_row - 1]
        layout.key_positions = header_index(header, spec.key_columns, where, self.header_row)
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

    def _layout_for_write(self) -> _Layout:
        if self._layout is not None:
            return self._layout
        if self.worksheet is not None:
            self._layout = _Layout(title=self.worksheet, sheet_id=self.gid)
        else:
            sheets = self._sheets()
            if self.gid is None:
                self._layout = self._first_sheet()
            else:
                match = [p for p in sheets if p.get("sheetId") == self.gid]
                if not match:
                    raise self._missing_worksheet()
                self._layout = _Layout(title=str(match[0]["title"]), sheet_id=self.gid)
        return self._layout

    def _key_ranges(
        self, layout: _Layout, positions: Sequence[int], with_header: bool
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
        self, spec: ReadSpec, layout: _Layout
    ) -> tuple[list[Any], list[tuple[int, tuple[str, ...]]]]:
        """The header row and every row's key as the sheet is now: one request, usually.

        The key columns are re-read where the read found them; if columns were inserted or
        moved since, the header shows it and the keys are read again where they are now.
        """
        h = self.header_row
        where = self._where()
        positions = [layout.key_positions[c] for c in spec.key_columns if c in layout.key_positions]
        try:
            found = self._key_ranges(layout, positions, with_header=True)
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
            found = self._key_ranges(layout, positions, with_header=True)
        header_range = found[0]
        header = (header_range.get("values") or [[]])[0]
        layout.grid_cols = parse_range(str(header_range["range"])).last_col + 1
        try:
            now = header_index(header, spec.key_columns, where, h)
        except SourceError as exc:
            raise SourceError(
                f"{exc} (the header changed while syncing). {self._after('write')}"
            ) from None
        key_ranges = found[1:]
        if [now[c] for c in spec.key_columns] != positions:
            layout.key_positions = now
            key_ranges = self._key_ranges(
                layout, [now[c] for c in spec.key_columns], with_header=False
            )
        if key_ranges:
            layout.grid_rows = parse_range(str(key_ranges[0]["range"])).last_row
        columns = [column_values(r.get("values")) for r in key_ranges]
        # answers drop trailing empty rows: rows without a key at the bottom (a label typed
        # without its id) must still be there, with empty keys, to get their status
        n = max(max((len(c) for c in columns), default=0), layout.grid_rows - h)
        keys = [
            (h + 1 + i, tuple(key_part(c[i] if i < len(c) else None) for c in columns))
            for i in range(n)
        ]
        return header, keys

    def _status_columns(
        self, header: Sequence[Any], spec: ReadSpec, layout: _Layout
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

    def _widen(self, layout: _Layout, columns: int) -> None:
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

    def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport:
        """Write the status cells of each row, found by its key as the sheet is now.

        Only status cells are written (and the header cells of new status columns), RAW so no
        text becomes a formula or a number, in one values:batchUpdate per ~25k rows.
        """
        if not updates:
            return WriteReport()
        rows_written = 0
        with self._google("write", lambda: rows_written):
            layout = self._layout_for_write()
            header, current = self._current_keys(spec, layout)
            placed, vanished = place_updates(current, updates)
            if not placed:
                return WriteReport(vanished=list(vanished))
            columns, new = self._status_columns(header, spec, layout)
            cells: dict[tuple[int, int], str] = {
                (self.header_row, col): safe_text(name) for name, col in new
            }
            for sheet_row, update in placed:
                for name, text in update.values.items():
                    cells[(sheet_row, columns[name])] = safe_text(text)
            needed = max(col for _, col in cells) + 1
            if layout.grid_cols and needed > layout.grid_cols:
                self._widen(layout, needed - layout.grid_cols)
            url = f"{SPREADSHEETS_API_V4_BASE_URL}/{self.key}/values:batchUpdate"
            headers = {"Content-Type": "application/json; charset=utf-8"}
            chunks = write_chunks(
                cells,
                layout.title,
                max_rows=self.max_write_rows + (1 if new else 0),  # the header row is extra
                max_bytes=self.max_write_bytes,
            )
            for data in chunks:
                self._http().request("post", url, data=request_body(data), headers=headers)
                rows_written += len(
                    {r for entry in data for r in _rows_of(entry["range"])} - {self.header_row}
                )
        moved = sum(1 for row, u in placed if row != u.sheet_row)
        return WriteReport(written=len(placed), vanished=list(vanished), moved=moved)

    # -- export (optional: ``annobridge export``) --

    cell_limit = SHEETS_CELL_LIMIT

    @contextlib.contextmanager
    def _exporting(self, phase: str) -> Iterator[None]:
        """Google's errors, said for an export: nothing was sent, no row was appended."""
        try:
            with self._google(phase):
                yield
        except BridgeError as exc:
            text = str(exc).replace(self._after(phase), "No row was appended; run again.")
            raise type(exc)(text) from None

    def _export_read(self) -> list[list[Any]]:
        """The whole worksheet now (one request), and what it says about the grid."""
        with self._exporting("read"):
            return self._take(*self._read_values())[1]

    def existing_ids(self, id_column: str) -> set[str]:
        """The ids in ``id_column`` on every data row; empty for a sheet without a header."""
        values = self._export_read()
        h = self.header_row
        if len(values) < h or not any(key_part(c) for c in values[h - 1]):
            return set()
        names = [n for n in (key_part(c) for c in values[h - 1]) if n]
        if id_column not in names and not near_name(id_column, names):
            return set()  # append_rows adds the column
        at = header_index(values[h - 1], [id_column], self._where(), h)[id_column]
        found = {key_part(row[at]) for row in values[h:] if at < len(row)}
        found.discard("")
        return found

    def append_rows(self, header: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> AppendReport:
        """Write ``rows`` below the last used row, RAW, in one values:batchUpdate per ~25k rows.

        The worksheet is read again first, so rows SMEs added meanwhile are not overwritten.
        On a sheet with no header, ``header`` is written first; on one with a header, columns
        the rows fill and it lacks are added right of the last used column. The grid grows
        (appendDimension) when the rows or columns do not fit.
        """
        values = self._export_read()
        layout = self._layout
        assert layout is not None
        h = self.header_row
        header_now = values[h - 1] if len(values) >= h else []
        columns: dict[str, int] = {}
        for i, cell in enumerate(header_now):
            name = key_part(cell)
            if name and name not in columns:
                columns[name] = i
        report = AppendReport()
        cells: dict[tuple[int, int], str] = {}
        width = layout.width
        if not columns:
            if len(values) >= h and any(any(key_part(c) for c in r) for r in values[h:]):
                raise SourceError(
                    f"{self._where()}: header row {h} is empty but rows below it hold values; "
                    "put the column names in the header row (or set header_row)"
                )
            for i, name in enumerate(header):
                cells[(h, i)] = safe_text(name)
                columns[name] = i
            report.added_columns = list(header)
            width = max(width, len(header))
        for name in dict.fromkeys(k for row in rows for k, v in row.items() if v):
            if name not in columns:
                cells[(h, width)] = safe_text(name)
                columns[name] = width
                report.added_columns.append(name)
                width += 1
        start = max(len(values), h) + 1
        for i, row in enumerate(rows):
            for name, value in row.items():
                cells[(start + i, columns[name])] = "" if value is None else str(value)
        last = start + len(rows) - 1
        with self._exporting("write"):
            if layout.grid_rows and last > layout.grid_rows:
                self._grow(layout, "ROWS", last - layout.grid_rows)
                layout.grid_rows = last
            needed = max(col for _, col in cells) + 1
            if layout.grid_cols and needed > layout.grid_cols:
                self._widen(layout, needed - layout.grid_cols)
            url = f"{SPREADSHEETS_API_V4_BASE_URL}/{self.key}/values:batchUpdate"
            headers = {"Content-Type": "application/json; charset=utf-8"}
            for data in write_chunks(
                cells, layout.title, max_rows=self.max_write_rows, max_bytes=self.max_write_bytes
            ):
                self._http().request("post", url, data=request_body(data), headers=headers)
        report.first_row, report.last_row = start, last
        return report

    def _grow(self, layout: _Layout, dimension: str, length: int) -> None:
        sheet_id = self._export_sheet_id(layout)
        body = {
            "requests": [
                {"appendDimension": {"sheetId": sheet_id, "dimension": dimension, "length": length}}
            ]
        }
        self._http().batch_update(self.key, body)

    def _export_sheet_id(self, layout: _Layout) -> int:
        if layout.sheet_id is None:
            match = [p for p in self._sheets() if p.get("title") == layout.title]
            if not match:
                raise SourceError(f"{self._where()}: the worksheet was renamed or deleted")
            layout.sheet_id = int(match[0]["sheetId"])
        return layout.sheet_id

    def add_validations(self, validations: Sequence[Validation]) -> list[str]:
        """Dropdowns (ONE_OF_LIST) and number ranges on whole columns below the header, in
        one spreadsheets.batchUpdate of setDataValidation requests, which replace the rule a
        range had: running it again changes nothing."""
        if not validations:
            return []
        values = self._export_read()
        layout = self._layout
        assert layout is not None
        h = self.header_row
        header_now = values[h - 1] if len(values) >= h else []
        columns: dict[str, int] = {}
        for i, cell in enumerate(header_now):
            columns.setdefault(key_part(cell), i)
        said: list[str] = []
        requests_: list[dict[str, Any]] = []
        with self._exporting("write"):
            sheet_id = self._export_sheet_id(layout)
            for v in validations:
                col = columns.get(v.column)
                if col is None or not v.column:
                    said.append(f"{v.column}: no such column in the header; no rule added")
                    continue
                rule = _sheets_rule(v)
                if rule is None:
                    said.append(f"{v.column}: no dropdown ({list_problem(v.options)})")
                    continue
                requests_.append(
                    {
                        "setDataValidation": {
                            "range": {
                                "sheetId": sheet_id,
                                "startRowIndex": h,
                                "startColumnIndex": col,
                                "endColumnIndex": col + 1,
                            },
                            "rule": rule,
                        }
                    }
                )
                said.append(v.describe())
            if requests_:
                self._http().batch_update(self.key, {"requests": requests_})
        return said


def _rows_of(a1_range: str) -> range:
    grid = parse_range(a1_range)
    return range(grid.first_row, grid.last_row + 1)


def _sheets_rule(v: Validation) -> dict[str, Any] | None:
    """A Sheets DataValidationRule: strict, with the dropdown shown."""
    if v.kind == "list":
        if list_problem(v.options):
            return None
        condition: dict[str, Any] = {
            "type": "ONE_OF_LIST",
            "values": [{"userEnteredValue": o} for o in v.options],
        }
    elif v.minimum is not None and v.maximum is not None:
        condition = {
            "type": "NUMBER_BETWEEN",
            "values": [
                {"userEnteredValue": repr(float(v.minimum))},
                {"userEnteredValue": repr(float(v.maximum))},
            ],
        }
    elif v.minimum is not None:
        condition = {
            "type": "NUMBER_GREATER_THAN_EQ",
            "values": [{"userEnteredValue": repr(float(v.minimum))}],
        }
    else:
        condition = {
            "type": "NUMBER_LESS_THAN_EQ",
            "values": [{"userEnteredValue": repr(float(v.maximum or 0))}],
        }
    return {
        "condition": condition,
        "strict": True,
        "showCustomUi": v.kind == "list",
        "inputMessage": v.describe(),
    }
