"""The Arize HTTP client both APIs share: the base URL (``app.arize.com`` for GraphQL,
``api.arize.com`` for REST), the API key from ARIZE_API_KEY (``x-api-key`` for GraphQL, Bearer
for REST), the session and one call."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import requests

from bridge import http
from bridge.targets.arize.config import ArizeConfig

DEFAULT_GRAPHQL_URL = "https://app.arize.com"
DEFAULT_REST_URL = "https://api.arize.com"
PLATFORM = "Arize"
AUTH_HINT = (
    "set ARIZE_API_KEY to an Arize developer API key with access to this space (GraphQL "
    "mutations may need an enterprise plan)"
)

NOT_THE_API = (
    "target.url reaches something that is not Arize's API (a sign-in page or a proxy in "
    "front of it?); set target.url to Arize's API address, or leave it out for the default "
    f"({DEFAULT_GRAPHQL_URL} for api: graphql, {DEFAULT_REST_URL} for api: rest)"
)


class ArizeClient:
    """One Arize API (``config.api``) at one URL.

    :param session: an HTTP session (tests inject one); built from ARIZE_API_KEY otherwise.
    :param env: where ARIZE_API_KEY is read from (default: os.environ).
    """

    def __init__(
        self,
        config: ArizeConfig,
        *,
        session: requests.Session | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if env is None else env
        self.api = config.api
        default = DEFAULT_GRAPHQL_URL if self.api == "graphql" else DEFAULT_REST_URL
        base = (config.url or default).rstrip("/")
        self.base_url = base.removesuffix("/graphql").removesuffix("/v2")
        self.api_key = environ.get("ARIZE_API_KEY", "").strip()
        headers: dict[str, str] = {}
        if self.api_key:
            headers = (
                {"x-api-key": self.api_key}
                if self.api == "graphql"
                else {"Authorization": f"Bearer {self.api_key}"}
            )
        if session is None:
            session = http.make_session(headers=headers, timeout=config.timeout)
            http.settle_environment(session, self.base_url)
        self.session = session

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


def answer_of(response: requests.Response) -> dict[str, Any]:
    """A 2xx answer's JSON object; a sign-in page or another shape is UnexpectedAnswer."""
    return http.json_object(response, platform=PLATFORM, fix=NOT_THE_API)


def json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
