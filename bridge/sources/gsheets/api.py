"""The Sheets API over HTTP: gspread's client with a timeout on every request and bounded,
jittered retries (429, 408 and 5xx), and Google's errors said as annobridge's, with the fix.

gspread 6.2.1's own BackOffHTTPClient retries 429 forever; this one gives up after
``RetryPolicy.retries`` tries or ``max_wait`` seconds, honouring Retry-After.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, cast

import google.auth.exceptions
import requests
from google.auth.credentials import Credentials
from gspread.exceptions import APIError
from gspread.http_client import FileType, HTTPClient, ParamsType

from bridge.errors import AuthRefused, BridgeError, SourceError, SourceUnavailable
from bridge.http import json_object
from bridge.sources.gsheets.auth import GoogleAuth, scrub
from bridge.sources.gsheets.data import RETRY_STATUSES, backoff_delay, parse_retry_after

log = logging.getLogger(__name__)

GOOGLE_SHEETS_HOST = "https://sheets.googleapis.com"
# Typed values: ids stay text, checkboxes are booleans, percentages fractions, dates serials.
VALUE_OPTIONS: dict[str, str] = {
    "majorDimension": "ROWS",
    "valueRenderOption": "UNFORMATTED_VALUE",
    "dateTimeRenderOption": "SERIAL_NUMBER",
}
METADATA_FIELDS = (
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


NOT_THE_API = (
    "that is not the Sheets API (a sign-in page or a proxy in front of "
    "sheets.googleapis.com?); check HTTPS_PROXY and the network"
)


class NotSheetsAnswer(Exception):
    """Google's address answered with something that is not the Sheets API's JSON (said as
    SourceUnavailable, with what was done, by ``GoogleErrors._google``)."""


def answer_of(response: requests.Response) -> dict[str, Any]:
    """A 200 answer's JSON object; anything else is NotSheetsAnswer."""
    return json_object(response, platform="Google Sheets", fix=NOT_THE_API, error=NotSheetsAnswer)


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
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message", ""))[:200] if isinstance(error, dict) else ""


class GoogleErrors:
    """Google's failures said for one spreadsheet: what happened, what was done, the fix.

    A subclass names the sheet (``_where``) and sets ``_auth`` once it signed in.
    """

    key: str
    _auth: GoogleAuth | None = None

    def _where(self) -> str:
        return f"Google Sheet {self.key}"

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
        except NotSheetsAnswer as exc:
            after = self._after(phase, written())
            raise SourceUnavailable(f"{self._where()}: {exc}. {after}") from None
        except requests.exceptions.JSONDecodeError:  # inside gspread: no URL to name
            raise SourceUnavailable(
                f"{self._where()}: Google Sheets answered with something that is not JSON: "
                f"{NOT_THE_API}. {self._after(phase, written())}"
            ) from None
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
