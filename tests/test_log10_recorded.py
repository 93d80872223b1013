"""log10 requests replayed from vcrpy cassettes.

The cassettes in tests/cassettes/log10 were recorded from the local stand-in
(tests/log10_standin.py), NOT from log10, which cannot be reached from here. Replays use
record mode "none" and match on everything but the host and port. ``ANNOBRIDGE_RECORD=1``
re-records them against a fresh stand-in.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import vcr

from bridge.errors import AuthRefused
from bridge.records import Annotation, Status
from bridge.targets.log10.config import Log10Config
from bridge.targets.log10.target import Log10Target
from tests.log10_standin import Log10StandIn
from tests.replay import recorder, replay

RECORD = os.environ.get("ANNOBRIDGE_RECORD") == "1"
CASSETTES = Path(__file__).parent / "cassettes" / "log10"
REPLAY_URL = "http://127.0.0.1:9"
# Fake credentials for the stand-in; the cassettes must not hold the tokens.
RECORDING_TOKEN = "log10-recording-token-must-not-leak-8e2a"
WRONG_TOKEN = "log10-wrong-token-must-not-leak-5d90"
ORG = "org-recorded"
TASK = "5f0c2d7e-3b1a-4c6d-9e8f-0a1b2c3d4e5f"  # fixed, so replayed requests match
NOW_MS = 1_732_000_000_000.0
SCHEMA = {
    "type": "object",
    "properties": {"feedback": {"type": "string", "enum": ["😀", "😬", "😐", "🙁", "😫"]}},
    "required": ["feedback"],
}

# Strict replay: method, scheme, host, port, path, query and (parsed) body must match, every
# interaction must be played, and assertions read what the code sent (tests/replay.py).
VCR = recorder(str(CASSETTES), REPLAY_URL, filter_headers=["x-log10-token"])


@pytest.fixture(scope="module")
def server() -> Iterator[Log10StandIn | None]:
    if not RECORD:
        yield None
        return
    with Log10StandIn(token=RECORDING_TOKEN, org_id=ORG, now_ms=lambda: NOW_MS) as standin:
        standin.tasks[TASK] = {
            "id": TASK,
            "created_at_ms": int(NOW_MS),
            "name": "emoji_feedback_task",
            "instruction": "Provide feedback using emojis",
            "json_schema": SCHEMA,
            "completion_tags_selector": ["unique-tag"],
            "organization_id": ORG,
        }
        standin.add_completion("unique-tag", "session-1")
        standin.add_completion("unique-tag", "session-2")
        CASSETTES.mkdir(parents=True, exist_ok=True)
        for old in CASSETTES.glob("*.yaml"):  # record mode "all" appends: start afresh
            old.unlink()
        yield standin


@pytest.fixture(scope="module")
def url(server: Log10StandIn | None) -> str:
    return server.url if server else REPLAY_URL


def target(url: str, token: str = RECORDING_TOKEN, **kw: Any) -> Log10Target:
    config = Log10Config(
        type="log10", url=url, task_id=TASK, json_values={"feedback": "label"}, **kw
    )
    env = {"LOG10_TOKEN": token, "LOG10_ORG_ID": ORG}
    return Log10Target(config, env=env, now_ms=lambda: NOW_MS)


def ann(i: int, tags: str, label: str = "😀") -> Annotation:
    return Annotation(
        row_index=i,
        name="feedback",
        kind="tag",
        target_id=tags,
        label=label,
        score=None,
        explanation="recorded" if i % 2 == 0 else None,
        annotator="alice",
        annotator_kind="HUMAN",
        identifier="annobridge:alice",
        metadata={"row": i + 2},
    )


def is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def test_feedback_sync(url: str) -> None:
    batch = [ann(0, "session-1"), ann(1, "session-2", label="meh"), ann(2, "nobody")]
    with replay(VCR, "feedback_sync.yaml") as cassette:
        t = target(url)
        t.check()
        outcomes = t.send(batch)
    assert [o.status for o in outcomes] == [Status.SYNCED, Status.REJECTED, Status.REJECTED]
    assert is_uuid(outcomes[0].remote_id)
    assert outcomes[1].message.startswith("not sent: feedback (from label): 'meh' is not one")
    assert outcomes[2].message.startswith("log10 answered 400: no completions matched")
    requests = cassette.sent
    assert [(r.method, r.path) for r in requests] == [
        ("GET", f"/api/v1/feedback_task/{TASK}"),
        ("POST", "/api/v1/feedback"),
        ("POST", "/api/v1/feedback"),
    ]
    assert requests[0].query == [("organization_id", ORG)]
    assert requests[1].body == {
        "task_id": TASK,
        "json_values": {"feedback": "😀"},
        "completion_tags_selector": ["session-1"],
        "comment": "recorded",
        "organization_id": ORG,
    }


def test_a_lost_answer_is_read_back(url: str, server: Log10StandIn | None) -> None:
    if server is not None:
        server.store_then_fail = 1
    with replay(VCR, "lost_answer.yaml") as cassette:
        t = target(url, page_size=1)
        outcomes = t.send([ann(0, "session-2", label="😐")])
    assert outcomes[0].status == Status.SYNCED and is_uuid(outcomes[0].remote_id)
    methods = [(r.method, r.path) for r in cassette.sent]
    assert methods.count(("POST", "/api/v1/feedback")) == 1  # never retried blindly
    assert methods.count(("GET", "/api/v1/feedback")) == 2  # page by page, one item each


def test_auth_refused(url: str) -> None:
    with replay(VCR, "auth_refused.yaml"):
        with pytest.raises(AuthRefused) as err:
            target(url, token=WRONG_TOKEN).check()
    assert WRONG_TOKEN not in str(err.value)


def test_cassettes_hold_no_token() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert [f.name for f in files] == [
        "auth_refused.yaml",
        "feedback_sync.yaml",
        "lost_answer.yaml",
    ]
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert RECORDING_TOKEN not in text and WRONG_TOKEN not in text, path.name
        cassette = vcr.serializers.yamlserializer.deserialize(text)
        for interaction in cassette["interactions"]:
            names = {h.lower() for h in interaction["request"]["headers"]}
            assert "x-log10-token" not in names, path.name
            assert "x-log10-organization-id" in names  # not a secret: kept for review
