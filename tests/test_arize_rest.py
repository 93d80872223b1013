"""Arize over REST (POST /v2/spans/annotate), against a local stand-in of the documented API.

Arize itself cannot be reached from here: these tests check annobridge against the documented
contract (reference/log10-arize.md, tests/arize_standin.py), not against the live service.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import AuthRefused, ConfigError, MappingError
from bridge.mapping import parse_mapping
from bridge.records import Annotation, Status
from bridge.targets.arize.config import ArizeConfig
from bridge.targets.arize.target import ArizeTarget
from tests.arize_standin import ArizeStandIn, RowAnnotation

KEY = "arize-rest-key-61e0"
PROJECT = "UHJvamVjdDoxMjM0"
NOW = datetime(2024, 11, 20, tzinfo=UTC)
RECENT = NOW - timedelta(days=2)


def span(n: int) -> str:
    return f"{n:016x}"


@pytest.fixture
def arize() -> Iterator[ArizeStandIn]:
    with ArizeStandIn(api_key=KEY, now=lambda: NOW) as server:
        server.config_names.update({"correctness", "helpfulness"})
        yield server


def target(server: ArizeStandIn, *, env: dict[str, str] | None = None, **kw: Any) -> ArizeTarget:
    values: dict[str, Any] = {"type": "arize", "api": "rest", "url": server.url}
    values["project_id"] = PROJECT
    values.update(kw)
    return ArizeTarget(
        ArizeConfig(**values),
        env={"ARIZE_API_KEY": KEY} if env is None else env,
        now=lambda: NOW,
    )


def ann(
    i: int,
    record: str,
    *,
    name: str = "correctness",
    label: str | None = "correct",
    score: float | None = 1.0,
    explanation: str | None = None,
    annotator: str | None = "alice",
    cls: type[Annotation] = Annotation,
    **kw: Any,
) -> Annotation:
    return cls(
        row_index=i,
        name=name,
        kind="span",
        target_id=record,
        label=label,
        score=score,
        explanation=explanation,
        annotator=annotator,
        annotator_kind="HUMAN",
        identifier=f"annobridge:{annotator}",
        metadata={"row": i + 2},
        **kw,
    )


def seed(server: ArizeStandIn, *records: str, start: datetime = RECENT) -> None:
    for record in records:
        server.add_span(PROJECT, record, start)


def posts(server: ArizeStandIn) -> list[dict[str, Any]]:
    return [c.body for c in server.calls if c.path == "/v2/spans/annotate"]


def test_records_carry_all_their_annotations_with_bearer_auth(arize: ArizeStandIn) -> None:
    seed(arize, span(1), span(2))
    batch = [
        ann(0, span(1), explanation="right on"),
        ann(1, span(1), name="helpfulness", label="yes", score=None),
        ann(2, span(2), label=None, score=0.0),
    ]
    outcomes = target(arize).send(batch)
    assert [o.status for o in outcomes] == [Status.SYNCED] * 3
    assert [o.remote_id for o in outcomes] == [
        f"{span(1)}:correctness",
        f"{span(1)}:helpfulness",
        f"{span(2)}:correctness",
    ]
    [call] = arize.calls
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in call.headers
    assert call.status == 202
    assert call.body == {
        "project_id": PROJECT,
        "granularity": "SPAN",
        "annotations": [
            {
                "record_id": span(1),
                "values": [
                    # label and score together are allowed here, unlike GraphQL
                    {"name": "correctness", "label": "correct", "score": 1.0, "text": "right on"},
                    {"name": "helpfulness", "label": "yes"},
                ],
            },
            {"record_id": span(2), "values": [{"name": "correctness", "score": 0.0}]},
        ],
    }
    assert arize.annotations[(PROJECT, span(1), "helpfulness")] == {
        "name": "helpfulness",
        "label": "yes",
    }


def test_requests_hold_at_most_1000_records(arize: ArizeStandIn) -> None:
    n = 2300
    seed(arize, *(span(i) for i in range(n)))
    progress: list[int] = []
    outcomes = target(arize).send([ann(i, span(i)) for i in range(n)], progress.append)
    assert all(o.status == Status.SYNCED for o in outcomes)
    assert [len(b["annotations"]) for b in posts(arize)] == [1000, 1000, 300]
    assert sum(progress) == n


def test_the_documented_limit_is_enforced_by_the_mapping() -> None:
    with pytest.raises(ValueError, match="less than or equal to 1000"):
        ArizeConfig(type="arize", api="rest", project_id=PROJECT, records_per_request=1001)
    with pytest.raises(ValueError, match="at most 100 session records"):
        ArizeConfig(type="arize", api="rest", project_id=PROJECT, granularity="session")


def test_a_missing_span_is_isolated_from_the_all_or_nothing_404(arize: ArizeStandIn) -> None:
    seed(arize, *(span(i) for i in range(8) if i != 5))
    outcomes = target(arize).send([ann(i, span(i)) for i in range(8)])
    assert [o.status for o in outcomes] == [Status.SYNCED] * 5 + [Status.REJECTED] + [
        Status.SYNCED
    ] * 2
    assert outcomes[5].message.startswith(
        f"Arize has no span '{span(5)}' in project {PROJECT} between 31 days before end_time "
        "and now (Not Found: records not found in the window"
    )
    # 8 refused; 0-3 pass; 4-7 refused; 4-5 refused; 4 passes; 5 refused alone; 6-7 pass
    assert [len(b["annotations"]) for b in posts(arize)] == [8, 4, 4, 2, 1, 1, 2]


def test_an_unknown_annotation_config_is_rejected_with_the_problem_detail(
    arize: ArizeStandIn,
) -> None:
    seed(arize, span(1))
    [outcome] = target(arize).send([ann(0, span(1), name="tone")])
    assert outcome.status == Status.REJECTED
    assert outcome.message == (
        "Arize answered 400: Bad Request: no annotation config named tone in the space"
    )


def test_two_rows_writing_one_annotation_are_refused_before_sending(
    arize: ArizeStandIn,
) -> None:
    seed(arize, span(1))
    outcomes = target(arize).send([ann(0, span(1)), ann(1, span(1), annotator="bob")])
    assert [o.status for o in outcomes] == [Status.REJECTED] * 2
    assert "keeps one per span and name" in outcomes[0].message
    assert arize.calls == []


def test_a_window_from_the_mapping_is_sent_and_checked(arize: ArizeStandIn) -> None:
    seed(arize, span(1))
    start, end = NOW - timedelta(days=10), NOW - timedelta(days=1)
    t = target(arize, start_time=start, end_time=end)
    t.check()
    [outcome] = t.send([ann(0, span(1))])
    assert outcome.status == Status.SYNCED
    body = posts(arize)[0]
    assert (body["start_time"], body["end_time"]) == (
        "2024-11-10T00:00:00Z",
        "2024-11-19T00:00:00Z",
    )
    with pytest.raises(ConfigError, match="is in the future"):
        target(arize, end_time=NOW + timedelta(hours=1)).check()
    with pytest.raises(ConfigError, match="more than 31 days ago"):
        target(arize, start_time=NOW - timedelta(days=32)).check()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"project_id": None}, "api: rest needs project_id"),
        ({"model_id": "m"}, "model_id is read by api: graphql only"),
        (
            {"start_time": "2024-10-01T00:00:00Z", "end_time": "2024-11-02T00:00:00Z"},
            "at most 31 days",
        ),
        (
            {
                "granularity": "session",
                "records_per_request": 100,
                "start_time": "2024-11-01T00:00:00Z",
                "end_time": "2024-11-09T00:00:00Z",
            },
            "at most 7 days for session annotations",
        ),
        ({"end_time": "2024-11-01T00:00:00Z", "start_time": "2024-11-02T00:00:00Z"}, "after"),
    ],
)
def test_the_mapping_refuses_windows_and_keys_arize_does_not_take(
    keys: dict[str, Any], message: str
) -> None:
    target_keys = {"type": "arize", "api": "rest", "project_id": PROJECT} | keys
    data = {
        "source": {"type": "csv", "path": "labels.csv"},
        "target": {k: v for k, v in target_keys.items() if v is not None},
        "annotations": [{"name": "correctness", "id_column": "span_id", "label_column": "l"}],
    }
    with pytest.raises(MappingError, match=message):
        parse_mapping(data, Path("m.yaml"))


def test_windows_around_record_starts_never_exceed_31_days(
    arize: ArizeStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = {
        span(1): NOW - timedelta(days=60),
        span(2): NOW - timedelta(days=45),
        span(3): NOW - timedelta(days=2),
    }
    for record, began in starts.items():
        seed(arize, record, start=began)
    t = target(arize, start_time_column="started_at")
    batch = [
        ann(i, record, cls=RowAnnotation, extra={"started_at": began.isoformat()})
        for i, (record, began) in enumerate(starts.items())
    ]
    outcomes = t.send(batch)
    assert [o.status for o in outcomes] == [Status.SYNCED] * 3
    windows = [(b["start_time"], b["end_time"], len(b["annotations"])) for b in posts(arize)]
    assert windows == [
        ("2024-09-20T23:00:00Z", "2024-10-06T01:00:00Z", 2),  # 60 and 45 days ago, +- 1 h
        ("2024-11-17T23:00:00Z", "2024-11-18T01:00:00Z", 1),
    ]


def test_a_refused_key_raises_auth_refused_without_the_key(arize: ArizeStandIn) -> None:
    wrong = "rest-wrong-key-never-print-92ad"
    seed(arize, span(1))
    with pytest.raises(AuthRefused) as err:
        target(arize, env={"ARIZE_API_KEY": wrong}).send([ann(0, span(1))])
    assert wrong not in str(err.value)
    assert "ARIZE_API_KEY" in str(err.value)


def test_a_rate_limited_request_is_retried_after_retry_after(arize: ArizeStandIn) -> None:
    seed(arize, span(1))
    arize.script.append((429, {"title": "Too Many Requests"}, {"Retry-After": "0"}))
    [outcome] = target(arize).send([ann(0, span(1))])
    assert outcome.status == Status.SYNCED
    assert [c.status for c in arize.calls] == [429, 202]


def test_check_needs_the_key_but_sends_nothing(arize: ArizeStandIn) -> None:
    with pytest.raises(ConfigError, match="ARIZE_API_KEY is not set"):
        target(arize, env={}).check()
    target(arize).check()
    assert arize.calls == []
