"""One requests.Session factory: timeouts, bounded jittered retries, Retry-After, auth.

Every target talks HTTP through ``make_session``; ``request`` maps transport failures and
auth refusals to the exception tree, with messages that never contain a credential.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bridge.errors import AuthRefused, TargetUnreachable, UnexpectedAnswer

# Retry-After values above this are capped: a cron run should not sleep for an hour.
MAX_RETRY_AFTER = 60.0
RETRY_STATUSES = (429, 500, 502, 503, 504)


class _BoundedRetry(Retry):
    """urllib3 Retry whose Retry-After waits are capped."""

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, MAX_RETRY_AFTER)


class TimeoutSession(requests.Session):
    """A Session with a default timeout on every request (requests has none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def make_session(
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    retries: int = 4,
    connect_retries: int = 2,
    backoff: float = 0.5,
    pool_size: int = 8,
) -> TimeoutSession:
    """A Session for one platform.

    Retries are for requests that are safe to repeat: every write annobridge sends carries
    the platform's upsert key, so POSTs are retried too.

    :param headers: sent with every request (auth lives here; never logged).
    :param timeout: seconds for connect and for each read.
    :param retries: attempts after the first, for 429/5xx and broken connections.
    :param connect_retries: attempts after the first when the server refuses connections
        (a server that is down rarely comes back within seconds).
    :param backoff: base of the exponential backoff, with jitter.
    """
    session = TimeoutSession(timeout)
    retry = _BoundedRetry(
        total=retries,
        connect=connect_retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        backoff_jitter=backoff,
        backoff_max=30.0,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": "annobridge", **(headers or {})})
    return session


def settle_environment(session: requests.Session, url: str) -> None:
    """Look up once what requests would look up in the environment on every request.

    With ``trust_env`` (the default), every request walks os.environ for proxies and stats
    ~/.netrc and the CA bundle: ~0.3 ms of client CPU each, a sixth of the client's work in
    a 2000-request MLflow sync that shares two cores with the server. The same settings,
    for this platform's URL, are put on the session instead: proxies (``NO_PROXY``
    honoured), ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` when verification is on, and
    ~/.netrc credentials when the session sends no credentials of its own.
    """
    if not session.trust_env:
        return
    settings = session.merge_environment_settings(url, {}, None, session.verify, session.cert)
    session.proxies = dict(settings["proxies"])
    session.verify = settings["verify"]
    has_credentials = session.auth is not None or any(
        name.lower() in SENSITIVE_HEADERS for name in session.headers
    )
    if not has_credentials:
        netrc = requests.utils.get_netrc_auth(url)
        if netrc:
            session.auth = netrc
    session.trust_env = False


_URL_CREDENTIALS = re.compile(r"//[^/@\s]+@")


def redact(text: str) -> str:
    """Remove user:password@ from URLs in a message."""
    return _URL_CREDENTIALS.sub("//***@", text)


def request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    platform: str,
    auth_hint: str,
    **kwargs: Any,
) -> requests.Response:
    """Send one request; unreachable -> TargetUnreachable, 401/403 -> AuthRefused.

    Other statuses are returned for the target to interpret per row.
    """
    try:
        response = session.request(method, url, **kwargs)
    except requests.exceptions.RetryError as exc:
        raise TargetUnreachable(
            f"{platform} at {redact(url)} kept failing after retries ({_reason(exc)}); "
            "nothing is lost: run again later"
        ) from None
    except requests.exceptions.Timeout:
        raise _timed_out(platform, url) from None
    except requests.exceptions.ConnectionError as exc:
        if "Read timed out" in str(exc):  # read timeouts that used up the retries
            raise _timed_out(platform, url) from None
        raise TargetUnreachable(
            f"cannot reach {platform} at {redact(url)} ({_reason(exc)}); is it running, and is "
            "the URL right? Nothing was lost: run again when it is up",
            refused=True,
        ) from None
    except requests.exceptions.RequestException as exc:
        raise TargetUnreachable(f"{platform} request failed: {_reason(exc)}") from None
    _scrub_secrets(response, session)
    if response.status_code in (401, 403):
        detail = response.text.strip()[:200]
        raise AuthRefused(
            f"{platform} refused the request ({response.status_code} {detail}); {auth_hint}"
        )
    if response.status_code in RETRY_STATUSES:
        raise TargetUnreachable(
            f"{platform} answered {response.status_code} after retries "
            f"({response.text.strip()[:200]}); nothing is lost: run again later"
        )
    return response


SENSITIVE_HEADERS = ("authorization", "x-api-key", "api-key", "api_key", "x-log10-token")


def session_secrets(session: requests.Session) -> list[str]:
    """The credentials a session sends: header values (and their token part), basic auth."""
    found: list[str] = []
    for name, value in session.headers.items():
        if name.lower() in SENSITIVE_HEADERS and isinstance(value, str):
            found.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                found.append(token)
    if isinstance(session.auth, tuple):
        found.extend(str(part) for part in session.auth[1:])
    return [s for s in found if len(s) >= 6]


def _scrub_secrets(response: requests.Response, session: requests.Session) -> None:
    """A server that echoes our credentials (some error pages do) must not put them into a
    message, a log line or a sheet cell: blank them out of the body before anyone reads it."""
    secrets = session_secrets(session)
    if not secrets or not response.content:
        return
    body = response.content
    for secret in sorted(secrets, key=len, reverse=True):
        body = body.replace(secret.encode(), b"***")
    if body != response.content:
        response._content = body


def _timed_out(platform: str, url: str) -> TargetUnreachable:
    return TargetUnreachable(
        f"{platform} at {redact(url)} did not answer in time; nothing is lost: run again "
        "later, or raise target.timeout in the mapping"
    )


def _reason(exc: BaseException) -> str:
    """A short cause, without URLs that could carry credentials."""
    text = str(exc.args[0]) if exc.args else str(exc)
    m = re.search(r"Caused by (\w+)\(", text)
    if m:
        return m.group(1).replace("NewConnectionError", "connection refused")
    return type(exc).__name__


# -- reading a platform's answer -------------------------------------------------------------

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
EXCERPT_CHARS = 80


def json_of(
    response: requests.Response,
    *,
    platform: str,
    fix: str,
    error: Callable[[str], Exception] = UnexpectedAnswer,
) -> Any:
    """The JSON of a platform's answer, or ``error`` (UnexpectedAnswer: exit 3, code
    unexpected_answer) naming the URL (no credentials, no query), the status, the content
    type and a short excerpt (an HTML page's title), then ``fix``.

    A sign-in page in front of the server, a proxy's error page or a web app at the wrong URL
    answers 200 with HTML: that must say so, not end in a JSONDecodeError traceback. A good
    answer costs one try block.
    """
    try:
        return response.json()
    except ValueError:  # requests' JSONDecodeError is a ValueError
        raise error(
            f"{platform} at {_answered_where(response)} answered {response.status_code} with "
            f"{_described(response)}, not JSON: {fix}"
        ) from None


def json_object(
    response: requests.Response,
    *,
    platform: str,
    fix: str,
    error: Callable[[str], Exception] = UnexpectedAnswer,
) -> dict[str, Any]:
    """``json_of``, and the JSON must be an object (a list or a string is ``error`` too)."""
    body = json_of(response, platform=platform, fix=fix, error=error)
    if not isinstance(body, dict):
        raise error(unexpected_shape(response, platform, f"{_kind(body)} where an object", fix))
    return body


def json_items(
    body: Mapping[str, Any],
    key: str,
    response: requests.Response,
    *,
    platform: str,
    fix: str,
    error: Callable[[str], Exception] = UnexpectedAnswer,
) -> list[dict[str, Any]]:
    """The list of objects under ``key`` of an answer (absent or null: none); anything else
    there (a string, an object, a list of strings) is ``error``."""
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        found = f"its '{key}' is {_kind(value)} where a list"
        raise error(unexpected_shape(response, platform, found, fix))
    for item in value:
        if not isinstance(item, dict):
            found = f"its '{key}' holds {_kind(item)} where an object"
            raise error(unexpected_shape(response, platform, found, fix))
    return value


def unexpected_shape(response: requests.Response, platform: str, found: str, fix: str) -> str:
    """The message for JSON of the wrong shape: ``found`` is "<what> where <what>"."""
    return (
        f"{platform} at {_answered_where(response)} answered {response.status_code} with JSON "
        f"that is not what its API answers ({found} was expected): {fix}"
    )


def safe_url(url: str) -> str:
    """A URL fit for a message: no user:password@, no query string, no fragment."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _answered_where(response: requests.Response) -> str:
    """The URL asked, and where a redirect ended (a sign-in page usually is one)."""
    first = response.history[0].url if response.history else response.url
    where = safe_url(first or "")
    final = safe_url(response.url or "")
    return where + (f" (redirected to {final})" if final and final != where else "")


def _described(response: requests.Response) -> str:
    """``text/html ("Sign in")``: the content type and a short excerpt, or "an empty body"."""
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip()
    text = response.text if response.content else ""
    if not text.strip():
        return f"an empty body ({kind})" if kind else "an empty body"
    title = _TITLE.search(text)
    excerpt = title.group(1) if title else _TAG.sub(" ", text)
    excerpt = " ".join(html.unescape(excerpt).split())
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS - 1] + "…"
    excerpt = redact(excerpt)
    shown = f'"{excerpt}"' if excerpt else "no text"
    return f"{kind or 'no content type'} ({shown})"


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
