"""Arize requests replayed from vcrpy cassettes.

The cassettes in tests/cassettes/arize were recorded from the local stand-in
(tests/arize_standin.py), NOT from Arize, which cannot be reached from here: they pin what
annobridge sends and how it reads the documented answers, and they are checked here against
the documented schema again. Replays use record mode "none" and match on everything but the
host and port, so no test here opens a socket. ``ANNOBRIDGE_RECORD=1`` re-records them
against a fresh stand-in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import vcr

from bridge.errors import AuthRefused
from bridge.records import Annotation, Status
from bridge.targets.arize.config import ArizeConfig
from bridge.targets.arize.target import ArizeTarget
from tests.arize_standin import ArizeStandIn, document_errors
from tests.replay import Replay, recorder, replay

RECORD = os.environ.get("ANNOBRIDGE_RECORD") == "1"
CASSETTES = Path(__file__).parent / "cassettes" / "arize"
REPLAY_URL = "http://127.0.0.1:9"
# Fake keys for the stand-in; the cassettes must hold neither.
RECORDING_KEY = "arize-recording-key-must-not-leak-3b71"
WRONG_KEY = "arize-wrong-key-must-not-leak-c04e"
MODEL = "TW9kZWw6MzExMjk3NjEwaweDpTZXdq"
PROJECT = "UHJvamVjdDoxMjM0"
CONFIG_ID = "QW5ub3RhdGlvbkNvbmZpZzox"
NOW = datetime(2024, 11, 20, tzinfo=UTC)
T0 = datetime(2024, 11, 15, 10, 15, 30, tzinfo=UTC)
SPANS = [f"{0xE351B661B957E727 + i:016x}" for i in range(4)]

# Strict replay: method, scheme, host, port, path, query and (parsed) body must match, every
# interaction must be played, and assertions read what the code sent (tests/replay.py).
VCR = recorder(str(CASSETTES), REPLAY_URL, filter_headers=["x-api-key", "authorization"])


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    if not RECORD:
        yield REPLAY_URL
        return
    with ArizeStandIn(api_key=RECORDING_KEY, now=lambda: NOW) as server:
        for record in SPANS[:3]:
            server.add_record(MODEL, "tracing", record, T0 + timedelta(hours=2))
            server.add_span(PROJECT, record, NOW - timedelta(days=1))
        server.annotation_configs[CONFIG_ID] = "correctness"
        server.config_names.add("correctness")
        CASSETTES.mkdir(parents=True, exist_ok=True)
        for old in CASSETTES.glob("*.yaml"):  # record mode "all" appends: start afresh
            old.unlink()
        yield server.url
        assert server.invalid_documents() == []


def target(url: str, key: str = RECORDING_KEY, **kw: Any) -> ArizeTarget:
    values: dict[str, Any] = {"type": "arize", "url": url, "model_id": MODEL, "start_time": T0}
    values.update(kw)
    return ArizeTarget(
        ArizeConfig(**{k: v for k, v in values.items() if v is not None}),
        names=["correctness"],
        env={"ARIZE_API_KEY": key},
        now=lambda: NOW,
    )


def ann(i: int, record: str, label: str | None = "correct", **kw: Any) -> Annotation:
    fields: dict[str, Any] = {
        "row_index": i,
        "name": "correctness",
        "kind": "span",
        "target_id": record,
        "label": label,
        "score": None,
        "explanation": "recorded",
        "annotator": "alice@example.com",
        "annotator_kind": "HUMAN",
        "identifier": "annobridge:alice@example.com",
        "metadata": {"row": i + 2},
    }
    fields.update(kw)
    return Annotation(**fields)


def graphql_bodies(seen: Replay) -> list[dict[str, Any]]:
    return [r.body for r in seen.sent if r.path.endswith("/graphql")]


def test_graphql_sync(url: str) -> None:
    batch = [
        ann(0, SPANS[0]),
        ann(1, SPANS[3]),  # unknown to Arize
        ann(2, SPANS[1], label=None, score=0.5),
        ann(3, SPANS[2], score=1.0),  # label and score: refused before sending
    ]
    with replay(VCR, "graphql_sync.yaml") as cassette:
        t = target(url)
        t.check()
        outcomes = t.send(batch)
    assert [o.status for o in outcomes] == [
        Status.SYNCED,
        Status.REJECTED,
        Status.SYNCED,
        Status.REJECTED,
    ]
    assert outcomes[1].message.startswith(f"Arize: record {SPANS[3]} not found")
    assert outcomes[3].message.startswith("not sent: Arize's GraphQL API takes a label or")
    bodies = graphql_bodies(cassette)
    assert len(bodies) == 2  # the check, then one request of three aliased mutations
    for body in bodies:
        assert document_errors(body["query"]) == []
    assert bodies[1]["operationName"] == "addAnnotations"
    assert sorted(k for k in bodies[1]["variables"] if k.endswith("_recordId")) == [
        "a0_recordId",
        "a1_recordId",
        "a2_recordId",
    ]


def test_graphql_newer_input(url: str) -> None:
    t = target(
        url,
        input_shape="annotation_updates",
        annotation_config_ids={"correctness": CONFIG_ID},
        start_time=None,
    )
    with replay(VCR, "graphql_annotation_updates.yaml") as cassette:
        outcomes = t.send([ann(0, SPANS[0], label="incorrect"), ann(1, SPANS[3])])
    assert [o.status for o in outcomes] == [Status.SYNCED, Status.REJECTED]
    assert outcomes[1].message.startswith(f"Arize: record {SPANS[3]} not found")
    [body] = graphql_bodies(cassette)
    assert document_errors(body["query"]) == []
    update = body["variables"]["a0"]["annotationUpdates"][0]
    assert update["annotationConfigId"] == CONFIG_ID


def test_rest_sync(url: str) -> None:
    t = target(url, api="rest", project_id=PROJECT, model_id=None, start_time=None)
    with replay(VCR, "rest_sync.yaml") as cassette:
        outcomes = t.send([ann(0, SPANS[0]), ann(1, SPANS[3]), ann(2, SPANS[1], score=1.0)])
    assert [o.status for o in outcomes] == [Status.SYNCED, Status.REJECTED, Status.SYNCED]
    assert outcomes[1].message.startswith(f"Arize has no span '{SPANS[3]}'")
    sizes = [len(r.body["annotations"]) for r in cassette.sent]
    assert sizes == [3, 1, 2, 1, 1]  # the all-or-nothing 404, split until alone


def test_auth_refused(url: str) -> None:
    with replay(VCR, "auth_refused.yaml"):
        with pytest.raises(AuthRefused) as err:
            target(url, key=WRONG_KEY).check()
    assert WRONG_KEY not in str(err.value)
    assert "ARIZE_API_KEY" in str(err.value)


def test_cassettes_hold_no_key() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert [f.name for f in files] == [
        "auth_refused.yaml",
        "graphql_annotation_updates.yaml",
        "graphql_sync.yaml",
        "rest_sync.yaml",
    ]
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert RECORDING_KEY not in text and WRONG_KEY not in text, path.name
        cassette = vcr.serializers.yamlserializer.deserialize(text)
        for interaction in cassette["interactions"]:
            names = {h.lower() for h in interaction["request"]["headers"]}
            assert not names & {"x-api-key", "authorization"}, path.name
