"""Where the Phoenix target sends, and with which headers, from Phoenix's own variables."""

from __future__ import annotations

import pytest

from bridge.targets.phoenix.client import base_url_from_env, headers_from_env
from bridge.targets.phoenix.config import PhoenixConfig
from bridge.targets.phoenix.target import PhoenixTarget


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://localhost:6006"),
        ({"PHOENIX_HOST": "10.1.2.3"}, "http://10.1.2.3:6006"),
        ({"PHOENIX_HOST": "phx", "PHOENIX_PORT": "7000"}, "http://phx:7000"),
        (
            {"PHOENIX_BASE_URL": "https://phx.example.com/", "PHOENIX_HOST": "x"},
            "https://phx.example.com",
        ),
        (
            {
                "PHOENIX_COLLECTOR_ENDPOINT": "http://c:6006/v1/traces",
                "PHOENIX_BASE_URL": "http://b:1",
            },
            "http://c:6006",
        ),
        (
            {"PHOENIX_ENDPOINT": "http://e:1", "PHOENIX_COLLECTOR_ENDPOINT": "http://c:2"},
            "http://e:1",
        ),
    ],
)
def test_base_url_follows_phoenix_precedence(env: dict[str, str], expected: str) -> None:
    assert base_url_from_env(env) == expected


def test_the_mapping_url_wins_over_the_environment() -> None:
    config = PhoenixConfig(type="phoenix", url="http://mapped:1/")
    target = PhoenixTarget(config, env={"PHOENIX_BASE_URL": "http://env:2"})
    assert target.base_url == "http://mapped:1"
    assert target.project == "default"


def test_project_from_phoenix_project_name() -> None:
    target = PhoenixTarget(PhoenixConfig(type="phoenix"), env={"PHOENIX_PROJECT_NAME": "rag"})
    assert target.project == "rag"


def test_api_key_becomes_a_bearer_header_and_client_headers_are_decoded() -> None:
    headers = headers_from_env(
        {
            "PHOENIX_CLIENT_HEADERS": "x-team=ml%20ops, Authorization=Bearer%20old",
            "PHOENIX_API_KEY": "k-123",
        }
    )
    assert headers == {"x-team": "ml ops", "Authorization": "Bearer k-123"}
    only_client = headers_from_env({"PHOENIX_CLIENT_HEADERS": "Authorization=Bearer%20abc"})
    assert only_client == {"Authorization": "Bearer abc"}
    assert headers_from_env({}) == {}


def test_the_session_carries_the_auth_header() -> None:
    target = PhoenixTarget(PhoenixConfig(type="phoenix"), env={"PHOENIX_API_KEY": "k-9"})
    assert target.session.headers["Authorization"] == "Bearer k-9"
    assert target.session.timeout == 30.0  # type: ignore[attr-defined]
