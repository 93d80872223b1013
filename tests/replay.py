"""Replayed HTTP that checks the code, not the recording.

Every recorded test goes through :func:`replay`:

- record mode "none" (``ANNOBRIDGE_RECORD=1`` re-records with mode "all");
- a request matches a recorded one only on method, scheme, host, port, path, query and
  body (JSON bodies compared parsed, so key order does not matter). Host and port are
  rewritten to the replay address while recording, so replays check them too;
- each recorded interaction plays at most once, and :func:`replay` fails the test if one
  was never played (the code stopped sending it);
- ``Replay.sent`` holds what the code sent during the replay (captured as each request
  was answered), never what the cassette file holds: assertions read that.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import vcr
from vcr.request import Request

RECORD = os.environ.get("ANNOBRIDGE_RECORD") == "1"

_LOOPBACK = re.compile(r"^(https?)://(?:127\.0\.0\.1|localhost):\d+")


def _parsed(body: Any) -> Any:
    if body is None or body == b"" or body == "":
        return None
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def json_body(r1: Request, r2: Request) -> None:
    """Bodies equal once parsed as JSON (key order ignored); raw text otherwise."""
    a, b = _parsed(r1.body), _parsed(r2.body)
    if a != b:
        raise AssertionError(f"body differs: sent {a!r}, recorded {b!r}")


MATCH_ON = ("method", "scheme", "host", "port", "path", "query", "json_body")


def recorder(library: str, replay_url: str, filter_headers: Sequence[str]) -> vcr.VCR:
    """A VCR that replays strictly; while recording, it stores the replay address."""
    canonical = replay_url.rstrip("/")

    def to_replay_address(request: Request) -> Request:
        if RECORD:
            request.uri = _LOOPBACK.sub(canonical, request.uri)
        return request

    v = vcr.VCR(
        cassette_library_dir=library,
        record_mode="all" if RECORD else "none",
        match_on=list(MATCH_ON),
        filter_headers=list(filter_headers),
        before_record_request=to_replay_address,
        decode_compressed_response=True,
    )
    v.register_matcher("json_body", json_body)
    return v


@dataclass(frozen=True)
class Sent:
    """One request as the code sent it (headers already scrubbed of secrets)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    raw_body: bytes | None
    headers: dict[str, str]

    @property
    def body(self) -> Any:
        return _parsed(self.raw_body)

    @property
    def line(self) -> str:
        """``METHOD /path?query`` as sent (query in the order the code wrote it)."""
        q = "&".join(f"{k}={v}" for k, v in self.query)
        return f"{self.method} {self.path}" + (f"?{q}" if q else "")


@dataclass
class Replay:
    cassette: Any
    sent: list[Sent] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [s.line for s in self.sent]

    def where(self, predicate: Callable[[Sent], bool]) -> list[Sent]:
        return [s for s in self.sent if predicate(s)]


def _capture(request: Request) -> Sent:
    parts = urlsplit(request.uri)
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Sent(
        method=request.method,
        path=parts.path,
        query=parse_qsl(parts.query, keep_blank_values=True),
        raw_body=body,
        headers={k.lower(): str(v) for k, v in request.headers.items()},
    )


@contextmanager
def replay(v: vcr.VCR, name: str) -> Iterator[Replay]:
    """Use cassette ``name``; on a clean exit while replaying, every interaction was played."""
    with v.use_cassette(name) as cassette:
        seen = Replay(cassette)
        play = cassette.play_response

        def spy(request: Request) -> Any:
            response = play(request)  # raises if nothing recorded matches
            seen.sent.append(_capture(cassette._before_record_request(request)))
            seen.answers.append(response)
            return response

        cassette.play_response = spy
        if RECORD:
            append = cassette.append

            def recording(request: Request, response: Any) -> None:
                seen.sent.append(_capture(cassette._before_record_request(request)))
                seen.answers.append(response)
                append(request, response)

            cassette.append = recording
        yield seen
    if not RECORD:
        unplayed = [
            f"{r.method} {urlsplit(r.uri).path}"
            for i, (r, _) in enumerate(cassette.data)
            if cassette.play_counts[i] == 0
        ]
        assert cassette.all_played, f"{name}: the code never sent {unplayed}"
