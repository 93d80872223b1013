"""bridge.http against a local HTTP server: retries, Retry-After, timeouts, auth, redaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import urllib3.util.retry

from bridge import http
from bridge.errors import AuthRefused, TargetUnreachable
from tests.servers import free_port

Script = list[tuple[int, dict[str, str], float]]  # status, headers, delay before answering


class Scripted:
    """A loopback server answering from a script, one entry per request (last repeats)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.hits: list[tuple[float, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                index = min(len(owner.hits), len(owner.script) - 1)
                owner.hits.append((time.monotonic(), self.headers.get("Authorization", "")))
                status, headers, delay = owner.script[index]
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                time.sleep(delay)
                body = b'{"detail": "scripted"}'
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], Scripted]]:
    servers: list[Scripted] = []

    def make(script: Script) -> Scripted:
        s = Scripted(script).__enter__()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.__exit__()


def call(url: str, **session_kw: float) -> int:
    session = http.make_session(backoff=0.01, **session_kw)  # type: ignore[arg-type]
    response = http.request(
        session, "POST", url, platform="Test", auth_hint="set TEST_KEY", json={"a": 1}
    )
    return response.status_code


def test_429_with_retry_after_is_waited_out_then_succeeds(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted([(429, {"Retry-After": "1"}, 0), (200, {}, 0)])
    assert call(server.url) == 200
    assert len(server.hits) == 2
    waited = server.hits[1][0] - server.hits[0][0]
    assert waited >= 0.9  # honoured Retry-After, not the 0.01 s backoff


def test_retry_after_is_capped(monkeypatch: pytest.MonkeyPatch, scripted) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(http, "MAX_RETRY_AFTER", 0.2)
    server = scripted([(503, {"Retry-After": "3600"}, 0), (200, {}, 0)])
    slept: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        real_sleep(min(seconds, 0.2))  # never an hour, even if the cap broke

    monkeypatch.setattr(urllib3.util.retry.time, "sleep", sleep)
    assert call(server.url) == 200
    assert len(server.hits) == 2
    assert slept and max(slept) <= 0.2  # capped, not the 3600 s asked for


def test_server_errors_are_retried_a_bounded_number_of_times(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted([(500, {}, 0)])
    with pytest.raises(TargetUnreachable, match="kept failing after retries|answered 500"):
        call(server.url, retries=3)
    assert len(server.hits) == 4  # the first try and three retries, no more


def test_a_stalled_server_times_out(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted([(200, {}, 2.0)])
    with pytest.raises(TargetUnreachable, match="did not answer in time"):
        call(server.url, timeout=0.3, retries=1)
    assert len(server.hits) == 2  # the first try and one retry, each given up on


def test_connection_refused_is_unreachable_with_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/x"
    with pytest.raises(
        TargetUnreachable, match=r"cannot reach Test at http://127\.0\.0\.1:\d+/v1/x"
    ):
        call(url)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refused_names_the_fix(status: int, scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted([(status, {}, 0)])
    with pytest.raises(AuthRefused, match=f"refused the request \\({status}.*set TEST_KEY"):
        call(server.url)
    assert len(server.hits) == 1  # never retried


def test_credentials_in_urls_are_redacted() -> None:
    url = f"http://user:s3cret@127.0.0.1:{free_port()}/x"
    with pytest.raises(TargetUnreachable) as err:
        call(url)
    assert "s3cret" not in str(err.value)
    assert "//***@127.0.0.1" in str(err.value)


_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_environment_is_read_once_per_session(
    no_proxies: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_proxies.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    no_proxies.setenv("NO_PROXY", "internal.example")
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    no_proxies.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.example login sme password from-netrc-0123\n")
    netrc.chmod(0o600)
    no_proxies.setenv("NETRC", str(netrc))

    session = http.make_session()
    http.settle_environment(session, "https://api.example/v1")
    assert session.trust_env is False
    assert session.proxies["https"] == "http://proxy.example:3128"
    assert session.verify == str(bundle)
    assert session.auth == ("sme", "from-netrc-0123")

    bypassed = http.make_session(headers={"Authorization": "Bearer own-token-0123"})
    bypassed.verify = False  # e.g. MLFLOW_TRACKING_INSECURE_TLS: stays off
    http.settle_environment(bypassed, "https://internal.example/v1")
    assert bypassed.proxies == {}
    assert bypassed.verify is False
    assert bypassed.auth is None  # it sends credentials of its own: ~/.netrc is not used


def test_a_settled_session_does_not_read_the_environment_per_request(
    no_proxies: pytest.MonkeyPatch, scripted
) -> None:  # type: ignore[no-untyped-def]
    server = scripted([(200, {}, 0.0)])
    session = http.make_session()
    http.settle_environment(session, server.url)
    # a proxy that does not exist, set after the session was made: a per-request lookup
    # would send the request there and fail
    no_proxies.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    response = http.request(session, "GET", server.url, platform="Test", auth_hint="")
    assert response.status_code == 200
    assert len(server.hits) == 1
    unsettled = http.make_session(connect_retries=0, retries=0)
    with pytest.raises(TargetUnreachable):
        http.request(unsettled, "GET", server.url, platform="Test", auth_hint="")
