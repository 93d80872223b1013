"""The MLflow REST client that sending, id resolution, export and rules share: where the
tracking server is and how to authenticate (MLflow's own environment variables), the
session, one call, the experiment id and the paged trace search.

API: https://mlflow.org/docs/latest/api_reference/rest-api.html (measured behaviour:
``docs/platform-notes.md``, section "MLflow").
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from bridge import http
from bridge.errors import ConfigError, UnexpectedAnswer

DEFAULT_URL = "http://localhost:5000"
PLATFORM = "MLflow"
API = "/api/3.0/mlflow"
API2 = "/api/2.0/mlflow"
IDS_PER_LOOKUP = 100  # request ids per search filter
SEARCH_PAGE = 500  # the server's maximum for traces/search
NOT_THE_API = (
    "target.url (or MLFLOW_TRACKING_URI) reaches something that is not an MLflow tracking "
    "server's REST API (a sign-in page or a proxy in front of the server?); set it to the "
    "tracking server's own address, e.g. http://127.0.0.1:5000"
)
TRUE_VALUES = {"true", "1"}
FALSE_VALUES = {"false", "0", ""}


@dataclass(frozen=True)
class Connection:
    """Where MLflow is and how to authenticate, from MLflow's own environment variables."""

    base_url: str
    headers: dict[str, str] = field(repr=False)
    verify: bool | str = True
    cert: str | None = None
    auth_hint: str = ""
    basic: tuple[str, str] | None = field(default=None, repr=False)


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ConfigError(f"{name} is '{value}'; set it to true or false")


def connection_from_env(url: str | None, env: Mapping[str, str]) -> Connection:
    """MLflow's client rules: MLFLOW_TRACKING_URI; basic auth from MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD, which win over MLFLOW_TRACKING_TOKEN (bearer); TLS from
    MLFLOW_TRACKING_INSECURE_TLS, MLFLOW_TRACKING_SERVER_CERT_PATH, _CLIENT_CERT_PATH."""
    raw = (url or env.get("MLFLOW_TRACKING_URI", "").strip() or DEFAULT_URL).rstrip("/")
    parts = urllib.parse.urlsplit(raw)
    where = "target.url" if url else "MLFLOW_TRACKING_URI"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = http.redact(raw)
        raise ConfigError(
            f"{where} is '{shown}'; annobridge talks to an MLflow tracking server over HTTP: "
            "start one with 'mlflow server' and give its URL, e.g. http://127.0.0.1:5000"
            + (" (Databricks is not supported)" if raw.startswith("databricks") else "")
        )
    for unsupported in ("MLFLOW_TRACKING_AWS_SIGV4", "MLFLOW_TRACKING_AUTH"):
        if env.get(unsupported, "").strip() and env.get(unsupported, "").strip() != "false":
            raise ConfigError(
                f"{unsupported} is set, and annobridge does not support it; use "
                "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN"
            )
    username = env.get("MLFLOW_TRACKING_USERNAME", "")
    password = env.get("MLFLOW_TRACKING_PASSWORD", "")
    if parts.username is not None and not username:  # user:password@ in the URL
        username = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    if ":" in parts.hostname:  # IPv6 literal
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    base_url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    token = env.get("MLFLOW_TRACKING_TOKEN", "")
    headers: dict[str, str] = {}
    if bool(username) != bool(password):
        missing = "MLFLOW_TRACKING_PASSWORD" if username else "MLFLOW_TRACKING_USERNAME"
        raise ConfigError(
            f"{missing} is not set, but its partner is; set both for basic auth, or neither"
        )
    if username and password:
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
        hint = (
            "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD; writing labels needs "
            "EDIT permission on the experiment"
        )
    elif token:
        headers["Authorization"] = f"Bearer {token}"
        hint = (
            "check MLFLOW_TRACKING_TOKEN; MLflow's own basic-auth server ignores tokens, so set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD for it instead"
        )
    else:
        hint = (
            "this MLflow wants credentials: set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (basic auth), or MLFLOW_TRACKING_TOKEN (bearer token)"
        )
    insecure = _flag(env, "MLFLOW_TRACKING_INSECURE_TLS")
    ca_bundle = env.get("MLFLOW_TRACKING_SERVER_CERT_PATH", "").strip()
    if insecure and ca_bundle:
        raise ConfigError(
            "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH are both set; "
            "they exclude each other: unset one"
        )
    verify: bool | str = ca_bundle or not insecure
    cert = env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH", "").strip() or None
    basic = (username, password) if username and password else None
    return Connection(base_url, headers, verify, cert, hint, basic)


def error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    return response.text.strip()[:300]  # pragma: no cover - MLflow errors carry a message


def _duplicate_as_conflict(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """MLflow answers a create whose assessment_id exists with 500 "constraint violation".

    That is a conflict, not an outage: shown as 409, so it is neither retried nor taken for
    a broken server, and the writer reads the existing assessment back instead.
    """
    request = response.request
    if (
        response.status_code == 500
        and request.method == "POST"
        and (request.url or "").endswith("/assessments")
        and "constraint violation" in response.text
    ):
        response.status_code = 409


def open_session(connection: Connection, *, timeout: float, concurrency: int) -> requests.Session:
    """A session for this connection: MLflow's auth and TLS, ``concurrency`` connections,
    and no retry of a 500 (MLflow answers 500 for "assessment id exists" too)."""
    session = http.make_session(
        headers=connection.headers,
        timeout=timeout,
        pool_size=concurrency,
    )
    # MLflow uses 500 for "assessment id exists" too: retrying it only repeats it.
    for adapter in session.adapters.values():
        retry = getattr(adapter, "max_retries", None)
        if retry is not None:
            adapter.max_retries = retry.new(  # type: ignore[attr-defined]
                status_forcelist=tuple(s for s in http.RETRY_STATUSES if s != 500)
            )
    session.verify = connection.verify
    if connection.basic:  # also as auth: a password echoed back is blanked too
        session.auth = connection.basic
    if connection.cert:
        session.cert = connection.cert
    http.settle_environment(session, connection.base_url)
    return session


class MlflowClient:
    """One MLflow tracking server and, optionally, one experiment (its name or id).

    :param connection: where the server is and how to authenticate.
    :param experiment: the experiment's name or id (None: none configured).
    :param session: the HTTP session (see ``open_session``).
    """

    def __init__(
        self, connection: Connection, experiment: str | None, session: requests.Session
    ) -> None:
        self.connection = connection
        self.base_url = connection.base_url
        self.experiment = experiment
        self.session = session
        self.session.hooks["response"].append(_duplicate_as_conflict)
        self._experiment_id: str | None = None

    def close(self) -> None:
        self.session.close()

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        return http.request(
            self.session,
            method,
            url,
            platform=PLATFORM,
            auth_hint=self.connection.auth_hint,
            **kwargs,
        )

    def json_object(self, response: requests.Response) -> dict[str, Any]:
        """A 200 answer's JSON object; a sign-in page or another shape is UnexpectedAnswer."""
        return http.json_object(response, platform=PLATFORM, fix=NOT_THE_API)

    def items(
        self, response: requests.Response, key: str
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The objects under ``key`` of a 200 answer, and the whole answer (its page token)."""
        body = self.json_object(response)
        found = http.json_items(body, key, response, platform=PLATFORM, fix=NOT_THE_API)
        return found, body

    def member(self, response: requests.Response, key: str) -> dict[str, Any]:
        """The object under ``key`` of a 200 answer (absent or null: an empty one)."""
        value = self.json_object(response).get(key) or {}
        if not isinstance(value, dict):
            found = f"its '{key}' is not an object where one"
            raise UnexpectedAnswer(http.unexpected_shape(response, PLATFORM, found, NOT_THE_API))
        return value

    def experiment_id(self) -> str | None:
        """The configured experiment's id (looked up once by name, or taken as an id)."""
        if self._experiment_id is not None or not self.experiment:
            return self._experiment_id
        name = self.experiment
        response = self.call(
            "GET", f"{API2}/experiments/get-by-name", params={"experiment_name": name}
        )
        if response.status_code == 200:
            found = self.member(response, "experiment").get("experiment_id")
            if not found:
                shape = "no experiment.experiment_id where one"
                raise UnexpectedAnswer(
                    http.unexpected_shape(response, PLATFORM, shape, NOT_THE_API)
                )
            self._experiment_id = str(found)
            return self._experiment_id
        if name.isdigit():
            response = self.call("GET", f"{API2}/experiments/get", params={"experiment_id": name})
            if response.status_code == 200:
                self._experiment_id = name
                return name
        raise ConfigError(
            f"MLflow at {http.redact(self.base_url)} has no experiment '{name}' "
            f"({error_message(response)}); check target.experiment or MLFLOW_EXPERIMENT_NAME"
        )

    def required_experiment_id(self) -> str:
        """The experiment's id, for export and rules (which need one)."""
        if not self.experiment:
            raise ConfigError(
                "export and rules need the experiment: set target.experiment (its name or id) "
                "or MLFLOW_EXPERIMENT_NAME"
            )
        found = self.experiment_id()
        if found is None:  # pragma: no cover - experiment_id() raises when it finds none
            raise ConfigError(f"MLflow has no experiment '{self.experiment}'")
        return found

    def listed(
        self,
        path: str,
        params: dict[str, Any],
        key: str,
        refused: Callable[[requests.Response], str],
    ) -> Iterator[dict[str, Any]]:
        """The objects under ``key`` of a GET list endpoint, every page (page tokens
        followed).

        :param refused: the ConfigError's message when MLflow answers other than 200.
        """
        token = ""
        while True:
            paged = {**params, "page_token": token} if token else params
            response = self.call("GET", path, params=paged)
            if response.status_code != 200:
                raise ConfigError(refused(response))
            found, page = self.items(response, key)
            yield from found
            token = page.get("next_page_token") or ""
            if not token:
                return

    def trace_pages(self, body: dict[str, Any], fix: str) -> Iterator[list[dict[str, Any]]]:
        """The traces of a traces/search, page by page (page tokens followed).

        :param fix: what the error says to do when MLflow refuses the search.
        """
        token = ""
        while True:
            paged = {**body, "page_token": token} if token else body
            response = self.call("POST", f"{API}/traces/search", json=paged)
            if response.status_code != 200:
                raise ConfigError(
                    f"MLflow refused the trace search ({response.status_code} "
                    f"{error_message(response)}); {fix}"
                )
            traces, page = self.items(response, "traces")
            yield traces
            token = page.get("next_page_token") or ""
            if not token:
                return
