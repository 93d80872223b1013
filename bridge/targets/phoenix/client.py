"""The Phoenix REST client that sending, export and rules share: where the server is (from
the mapping or Phoenix's own environment variables), the session, one call, and the
cursor-paged annotation reads.

API: https://arize.com/docs/phoenix/sdk-api-reference/rest-api/overview (measured behaviour:
``docs/platform-notes.md``, section "Phoenix").
"""

from __future__ import annotations

import json
import math
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import requests

from bridge import http
from bridge.errors import ConfigError, UnexpectedAnswer
from bridge.targets.base import chunks
from bridge.targets.phoenix.config import PhoenixConfig

DEFAULT_URL = "http://localhost:6006"
PLATFORM = "Phoenix"
AUTH_HINT = (
    "set PHOENIX_API_KEY to a Phoenix API key with write access (Settings > API Keys), "
    "or PHOENIX_CLIENT_HEADERS"
)
NOT_THE_API = (
    "target.url (or PHOENIX_ENDPOINT, PHOENIX_COLLECTOR_ENDPOINT) reaches something that is "
    "not the Phoenix REST API (a sign-in page or a proxy in front of the server?); set it to "
    "the Phoenix server's own address, e.g. http://127.0.0.1:6006"
)
# Phoenix's GET endpoints accept at most 1000 ids per request.
MAX_IDS_PER_GET = 1000

ID_FIELD = {"span": "span_id", "trace": "trace_id", "session": "session_id"}


def result_of(label: str | None, score: float | None, explanation: str | None) -> dict[str, Any]:
    """An annotation's ``result`` as Phoenix's REST API takes it: only the fields given."""
    out: dict[str, Any] = {}
    if label is not None:
        out["label"] = label
    if score is not None:
        out["score"] = score
    if explanation is not None:
        out["explanation"] = explanation
    return out


def same_result(sent: Mapping[str, Any], stored: Mapping[str, Any] | None) -> bool:
    """Whether Phoenix stored what was sent (a score read back as a float is the same)."""
    stored = stored or {}
    for field in ("label", "explanation"):
        if sent.get(field) != stored.get(field):
            return False
    a, b = sent.get("score"), stored.get("score")
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)


def base_url_from_env(env: Mapping[str, str]) -> str:
    """Phoenix's own precedence: PHOENIX_ENDPOINT, PHOENIX_COLLECTOR_ENDPOINT (with any
    trailing /v1/traces removed), PHOENIX_BASE_URL, PHOENIX_HOST[:PHOENIX_PORT]."""
    for name in ("PHOENIX_ENDPOINT", "PHOENIX_COLLECTOR_ENDPOINT", "PHOENIX_BASE_URL"):
        value = env.get(name, "").strip()
        if value:
            return value.rstrip("/").removesuffix("/v1/traces")
    host = env.get("PHOENIX_HOST", "").strip()
    if host:
        port = env.get("PHOENIX_PORT", "6006").strip()
        host = host if "://" in host else f"http://{host}"
        return host if re.search(r":\d+$", host) else f"{host}:{port}"
    return DEFAULT_URL


def headers_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """Auth headers: PHOENIX_CLIENT_HEADERS ("k=v,k2=v2", URL-encoded), then PHOENIX_API_KEY."""
    headers: dict[str, str] = {}
    for part in env.get("PHOENIX_CLIENT_HEADERS", "").split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            headers[urllib.parse.unquote(k.strip())] = urllib.parse.unquote(v.strip())
    api_key = env.get("PHOENIX_API_KEY", "").strip()
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def detail(text: str) -> str:
    """The server's reason, short; pydantic's 422 detail reduced to its messages."""
    try:
        body = json.loads(text)
        reason = body.get("detail", body) if isinstance(body, dict) else body
        if isinstance(reason, list):
            return "; ".join(
                f"{'.'.join(str(x) for x in d.get('loc', [])[1:])}: {d.get('msg')}"
                for d in reason
                if isinstance(d, dict)
            )[:300]
        return str(reason)[:300]
    except ValueError:
        return text[:300]


class PhoenixClient:
    """One Phoenix server and project.

    :param config: the mapping's ``target`` section (its url and project win over the env).
    :param session: an HTTP session (tests inject one); built from the env otherwise.
    :param env: where PHOENIX_* variables are read from (default: os.environ).
    """

    def __init__(
        self,
        config: PhoenixConfig,
        *,
        session: requests.Session | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if env is None else env
        self.base_url = (config.url or base_url_from_env(environ)).rstrip("/")
        self.project = config.project or environ.get("PHOENIX_PROJECT_NAME") or "default"
        if session is None:
            session = http.make_session(headers=headers_from_env(environ), timeout=config.timeout)
            http.settle_environment(session, self.base_url)
        self.session = session

    @property
    def project_path(self) -> str:
        """``/v1/projects/<project>``, the project quoted."""
        return f"/v1/projects/{urllib.parse.quote(self.project, safe='')}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return http.request(
            self.session,
            method,
            f"{self.base_url}{path}",
            platform=PLATFORM,
            auth_hint=AUTH_HINT,
            **kwargs,
        )

    def close(self) -> None:
        self.session.close()

    def json_object(self, response: requests.Response) -> dict[str, Any]:
        """A 200 answer's JSON object; a sign-in page or another shape is UnexpectedAnswer."""
        return http.json_object(response, platform=PLATFORM, fix=NOT_THE_API)

    def items(
        self, response: requests.Response, key: str = "data"
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The objects under ``key`` of a 200 answer, and the whole answer (for its cursor)."""
        body = self.json_object(response)
        found = http.json_items(body, key, response, platform=PLATFORM, fix=NOT_THE_API)
        return found, body

    def existing_spans(self, span_ids: Sequence[str]) -> set[str]:
        """Which of these spans exist in the project (one GET per 1000 ids)."""
        return set(self.span_nodes(span_ids))

    def span_nodes(self, span_ids: Sequence[str]) -> dict[str, str]:
        """The spans of these ids that exist in the project: OTel span id -> the span's
        GraphQL id (``U3Bhbjox`` = Span:1), one GET per 1000 ids. An unknown project gives
        none (the caller's next request says what is wrong)."""
        found: dict[str, str] = {}
        for part in chunks(span_ids, MAX_IDS_PER_GET):
            response = self.call(
                "GET",
                f"{self.project_path}/spans",
                params={"span_id": list(part), "limit": MAX_IDS_PER_GET},
            )
            if response.status_code != 200:
                return found
            spans, _ = self.items(response)
            for span in spans:
                context = span.get("context")
                if not isinstance(context, dict) or not context.get("span_id"):
                    shape = "a span without context.span_id where one with it"
                    raise UnexpectedAnswer(
                        http.unexpected_shape(response, PLATFORM, shape, NOT_THE_API)
                    )
                found[str(context["span_id"])] = str(span.get("id") or "")
        return found

    def graphql(
        self, query: str, variables: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, list[str], int]:
        """One GraphQL request: (data, the errors' messages, the HTTP status)."""
        response = self.call("POST", "/graphql", json={"query": query, "variables": variables})
        if response.status_code != 200:
            return None, [detail(response.text)], response.status_code
        body = self.json_object(response)
        problems = body.get("errors") or []
        if not isinstance(problems, list):
            problems = [problems]
        errors = [str(e.get("message", e) if isinstance(e, dict) else e) for e in problems if e]
        data = body.get("data")
        return (data if isinstance(data, dict) else None), errors, 200

    def annotations(
        self, kind: str, ids: Sequence[str], names: Sequence[str], *, strict: bool
    ) -> Iterator[dict[str, Any]]:
        """Every annotation with one of ``names`` on these records: one GET per 1000 ids and
        page. A 404 (none of the records is in the project yet) gives none; another refusal
        ends the read of those ids, or with ``strict`` raises ConfigError."""
        path = f"{self.project_path}/{kind}_annotations"
        for part in chunks(ids, MAX_IDS_PER_GET):
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {
                    f"{kind}_ids": list(part),
                    "include_annotation_names": list(names),
                    "limit": 10_000,
                }
                if cursor:
                    params["cursor"] = cursor
                response = self.call("GET", path, params=params)
                if response.status_code != 200:
                    if strict and response.status_code != 404:
                        raise ConfigError(
                            f"Phoenix refused to list annotations ({response.status_code}: "
                            f"{detail(response.text)})"
                        )
                    break
                rows, body = self.items(response)
                yield from rows
                cursor = body.get("next_cursor")
                if not cursor:
                    break
