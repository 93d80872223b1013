"""The Phoenix target against HTTP recorded from a real Phoenix (vcrpy cassettes).

Replays with record mode "none": no test here reaches a server. ``make cassettes`` sets
ANNOBRIDGE_RECORD=1, which starts a fresh Phoenix (and one with auth enabled), seeds the
same deterministic spans, and records every cassette again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import AuthRefused
from bridge.records import Annotation, Status
from bridge.rules import identifier_for
from bridge.targets.phoenix.config import PhoenixConfig
from bridge.targets.phoenix.target import PhoenixTarget
from tests.replay import Replay, recorder, replay

RECORD = os.environ.get("ANNOBRIDGE_RECORD") == "1"
CASSETTES = Path(__file__).parent / "cassettes" / "phoenix"
SPANS_FILE = CASSETTES / "spans.json"
REPLAY_URL = "http://127.0.0.1:6006"
# A fixed admin secret for the throw-away auth-enabled server used while recording.
ADMIN_SECRET = "recording-admin-secret-0123456789abcdef"

# Strict replay: method, scheme, host, port, path, query and (parsed) body must match, every
# interaction must be played, and assertions read what the code sent (tests/replay.py).
VCR = recorder(str(CASSETTES), REPLAY_URL, filter_headers=["authorization"])


@pytest.fixture(scope="module")
def phoenix_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not RECORD:
        yield REPLAY_URL
        return
    from tests.servers import PhoenixServer

    server = PhoenixServer(tmp_path_factory.mktemp("phoenix-recording")).start()
    try:
        CASSETTES.mkdir(parents=True, exist_ok=True)
        server.seed(SPANS_FILE, project="recorded", count=4, seed=23)
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def auth_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not RECORD:
        yield REPLAY_URL
        return
    from tests.servers import PhoenixServer

    server = PhoenixServer(
        tmp_path_factory.mktemp("phoenix-auth-recording"),
        env={
            "PHOENIX_ENABLE_AUTH": "true",
            "PHOENIX_SECRET": "recording-secret-0123456789abcdefgh",
            "PHOENIX_ADMIN_SECRET": ADMIN_SECRET,
        },
    ).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def spans(phoenix_url: str) -> list[dict[str, str]]:
    records: list[dict[str, str]] = json.loads(SPANS_FILE.read_text())
    return records


def target(url: str, *, annotate: str = "span", env: dict[str, str] | None = None) -> PhoenixTarget:
    config = PhoenixConfig(type="phoenix", url=url, annotate=annotate, project="recorded")
    return PhoenixTarget(config, env=env or {}, sleep=time.sleep if RECORD else (lambda s: None))


def annotation(i: int, target_id: str, label: str = "correct", **kw: Any) -> Annotation:
    fields: dict[str, Any] = {
        "row_index": i,
        "name": "recorded_correctness",
        "kind": "span",
        "target_id": target_id,
        "label": label,
        "score": 1.0 if label == "correct" else 0.0,
        "explanation": None,
        "annotator": "alice",
        "annotator_kind": "HUMAN",
        "identifier": identifier_for("alice"),
        "metadata": {"source": "annobridge", "row": i + 2},
    }
    fields.update(kw)
    return Annotation(**fields)


def requests_made(seen: Replay) -> list[str]:
    """Method, path and query of every request the code sent."""
    return seen.lines()


def test_known_spans_are_queued_then_confirmed_by_reading_back(
    phoenix_url: str, spans: list[dict[str, str]]
) -> None:
    batch = [annotation(i, s["span_id"]) for i, s in enumerate(spans[:3])]
    with replay(VCR, "fast_path.yaml") as cassette:
        outcomes = target(phoenix_url).send(batch)
    assert [o.status for o in outcomes] == [Status.SYNCED] * 3
    assert all(o.remote_id.startswith("U3BhbkFubm90YXRpb246") for o in outcomes)
    assert len({o.remote_id for o in outcomes}) == 3
    made = requests_made(cassette)
    assert any(m.startswith("POST /v1/span_annotations?") and "sync=false" in m for m in made)
    assert any("/span_annotations?" in m and m.startswith("GET") for m in made)
    assert not any("sync=true" in m for m in made)
    assert [f"{r.method} {r.path}" for r in cassette.sent] == [
        "GET /v1/projects/recorded/spans",
        "POST /v1/span_annotations",
        "GET /v1/projects/recorded/span_annotations",  # the batch's last row, first
        "GET /v1/projects/recorded/span_annotations",  # then the whole batch, once
    ]
    [post] = cassette.where(lambda r: r.method == "POST")
    assert [(d["span_id"], d["name"], d["result"]) for d in post.body["data"]] == [
        (s["span_id"], "recorded_correctness", {"label": "correct", "score": 1.0})
        for s in spans[:3]
    ]


def test_unknown_span_is_rejected_and_the_rest_land(
    phoenix_url: str, spans: list[dict[str, str]]
) -> None:
    batch = [
        annotation(0, spans[0]["llm_span_id"]),
        annotation(1, "deadbeefdeadbeef"),
        annotation(2, spans[1]["llm_span_id"], label="incorrect"),
    ]
    with replay(VCR, "unknown_span.yaml"):
        outcomes = target(phoenix_url).send(batch)
    assert [o.status for o in outcomes] == [Status.SYNCED, Status.REJECTED, Status.SYNCED]
    assert outcomes[1].message.startswith("Phoenix has no span 'deadbeefdeadbeef'")


def test_an_edit_goes_through_the_synchronous_path(
    phoenix_url: str, spans: list[dict[str, str]]
) -> None:
    span = spans[2]["span_id"]
    with replay(VCR, "edit.yaml") as cassette:
        first = target(phoenix_url).send([annotation(0, span, name="recorded_edit")])
        edited = annotation(0, span, label="incorrect", name="recorded_edit", is_update=True)
        second = target(phoenix_url).send([edited])
    assert first[0].status == second[0].status == Status.SYNCED
    assert first[0].remote_id == second[0].remote_id  # upserted, not added
    assert any("sync=true" in m for m in requests_made(cassette))
    [edit] = cassette.where(lambda r: ("sync", "true") in r.query)
    assert edit.body["data"][0]["result"] == {"label": "incorrect", "score": 0.0}


def test_a_row_phoenix_refuses_does_not_sink_its_batch(
    phoenix_url: str, spans: list[dict[str, str]]
) -> None:
    # Our rules never let "human" through; built by hand to prove the batch survives a 422.
    batch = [
        annotation(0, spans[3]["span_id"], name="recorded_bisect", is_update=True),
        annotation(
            1,
            spans[3]["llm_span_id"],
            name="recorded_bisect",
            annotator_kind="human",
            is_update=True,
        ),
    ]
    with replay(VCR, "refused_row.yaml"):
        outcomes = target(phoenix_url).send(batch)
    assert outcomes[0].status == Status.SYNCED
    assert outcomes[1].status == Status.REJECTED
    assert "annotator_kind" in outcomes[1].message


def test_trace_annotations_use_the_trace_endpoint(
    phoenix_url: str, spans: list[dict[str, str]]
) -> None:
    batch = [
        annotation(0, spans[0]["trace_id"], kind="trace", name="recorded_trace"),
        annotation(1, "0" * 32, kind="trace", name="recorded_trace"),
    ]
    with replay(VCR, "trace.yaml"):
        outcomes = target(phoenix_url, annotate="trace").send(batch)
    assert outcomes[0].status == Status.SYNCED
    assert outcomes[0].remote_id.startswith("VHJhY2VBbm5vdGF0aW9u")
    assert outcomes[1].status == Status.REJECTED


def test_auth_refused_names_the_variable_and_never_the_token(auth_url: str) -> None:
    bogus = "not-a-real-key-do-not-leak-7f3a"
    with replay(VCR, "auth_refused.yaml"):
        with pytest.raises(AuthRefused) as err:
            target(auth_url, env={"PHOENIX_API_KEY": bogus}).check()
    assert "401" in str(err.value)
    assert "PHOENIX_API_KEY" in str(err.value)
    assert bogus not in str(err.value)
    assert bogus not in (CASSETTES / "auth_refused.yaml").read_text()
