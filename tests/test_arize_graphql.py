"""Arize over GraphQL, against a local stand-in that executes the documented schema.

Arize itself cannot be reached from here: these tests check annobridge against the documented
contract (tests/arize_schema.graphql, tests/arize_standin.py), not against the live service.
Every document the target sends is validated with graphql-core (the ``arize`` fixture fails a
test that sent an invalid one).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge import http
from bridge.errors import AuthRefused, ConfigError, MappingError
from bridge.mapping import parse_mapping
from bridge.pipeline import run
from bridge.records import Annotation, Status
from bridge.registry import open_target
from bridge.targets.arize.config import ArizeConfig
from bridge.targets.arize.graphql import is_retryable
from bridge.targets.arize.ratelimit import RateLimiter
from bridge.targets.arize.target import ArizeTarget
from tests.arize_standin import (
    COMPLEXITY_DOCUMENTED,
    RATE_LIMIT_DOCUMENTED,
    RATE_LIMITED,
    ArizeStandIn,
    FakeClock,
    RowAnnotation,
    document_errors,
)

KEY = "arize-test-key-4d9a1c"
MODEL = "TW9kZWw6MzExMjk3NjEwaweDpTZXdq"  # the documentation's example model id
NAME = "LLM Response Adequacy"
T0 = datetime(2024, 11, 15, 10, 15, 30, tzinfo=UTC)  # the documentation's example startTime
NOW = datetime(2024, 11, 20, tzinfo=UTC)


def span(n: int) -> str:
    return f"{n + 0xE351B661B957E000:016x}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def arize(clock: FakeClock) -> Iterator[ArizeStandIn]:
    with ArizeStandIn(api_key=KEY, clock=clock, now=lambda: NOW) as server:
        yield server
        assert server.invalid_documents() == []


def config(url: str, **kw: Any) -> ArizeConfig:
    values: dict[str, Any] = {"type": "arize", "url": url, "model_id": MODEL, "start_time": T0}
    values.update(kw)
    return ArizeConfig(**values)


def target(
    server: ArizeStandIn,
    clock: FakeClock,
    *,
    names: tuple[str, ...] = (NAME,),
    env: dict[str, str] | None = None,
    **kw: Any,
) -> ArizeTarget:
    return ArizeTarget(
        config(server.url, **kw),
        names=names,
        env={"ARIZE_API_KEY": KEY} if env is None else env,
        now=lambda: NOW,
        clock=clock,
        sleep=clock.sleep,
    )


def ann(
    i: int,
    record: str,
    *,
    label: str | None = "Needs Improvement",
    score: float | None = None,
    explanation: str | None = None,
    annotator: str | None = "Jane Doe",
    name: str = NAME,
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
        identifier=f"annobridge:{annotator}" if annotator else "annobridge",
        metadata={"source": "annobridge", "row": i + 2},
        **kw,
    )


def seed(server: ArizeStandIn, *records: str, start: datetime = T0 + timedelta(hours=1)) -> None:
    for record in records:
        server.add_record(MODEL, "tracing", record, start)


def statuses(outcomes: list[Any]) -> list[str]:
    return [str(o.status) for o in outcomes]


# -- the documented mutation --------------------------------------------------------------


def test_payload_is_the_documented_variables_of_seed_002(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    note = (
        "Although technically correct, this response lacks detail and does not sufficiently "
        "address the prompt."
    )
    documented = {
        "name": "LLM Response Adequacy",
        "updatedBy": "Jane Doe",
        "label": "Needs Improvement",
        "annotationType": "label",
        "modelId": "TW9kZWw6MzExMjk3NjEwaweDpTZXdq",
        "note": note,
        "modelEnvironment": "tracing",
        "recordId": "e351b661b957e727",
        "startTime": "2024-11-15T10:15:30Z",
    }
    payload = target(arize, clock).payload(ann(0, "e351b661b957e727", explanation=note))
    assert payload == documented
    assert list(payload) == list(documented)


def test_a_batch_is_one_document_of_aliased_documented_mutations(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    seed(arize, span(0), span(1), span(2))
    batch = [
        ann(0, span(0), explanation="too short"),
        ann(1, span(1), label=None, score=0.25, annotator=None),
        ann(2, span(2), label="Satisfactory"),
    ]
    outcomes = target(arize, clock).send(batch)
    assert statuses(outcomes) == ["synced"] * 3
    assert [o.remote_id for o in outcomes] == [f"{span(i)}:{NAME}" for i in range(3)]
    [call] = arize.graphql_calls()
    body = call.body
    assert document_errors(body["query"]) == []
    assert body["operationName"] == "addAnnotations"
    assert call.mutations == 3
    for alias in ("a0", "a1", "a2"):
        assert f"{alias}: updateAnnotations(input: {{modelId: $modelId" in body["query"]
    v = body["variables"]
    assert (v["modelId"], v["modelEnvironment"]) == (MODEL, "tracing")
    assert {k: v[k] for k in v if k.startswith("a0_")} == {
        "a0_note": "too short",
        "a0_name": NAME,
        "a0_updatedBy": "Jane Doe",
        "a0_label": "Needs Improvement",
        "a0_annotationType": "label",
        "a0_recordId": span(0),
        "a0_startTime": "2024-11-15T10:15:30Z",
    }
    # Absent values are left out, not sent as null: "label or score, not both".
    assert {k for k in v if k.startswith("a1_")} == {
        "a1_name",
        "a1_score",
        "a1_annotationType",
        "a1_recordId",
        "a1_startTime",
    }
    assert v["a1_score"] == 0.25 and v["a1_annotationType"] == "score"
    stored = arize.annotations
    assert stored[(MODEL, span(0), NAME)]["note"] == "too short"
    assert stored[(MODEL, span(1), NAME)]["score"] == 0.25
    assert stored[(MODEL, span(2), NAME)]["label"] == "Satisfactory"


def test_requests_hold_at_most_mutations_per_request(arize: ArizeStandIn, clock: FakeClock) -> None:
    seed(arize, *(span(i) for i in range(23)))
    progress: list[int] = []
    outcomes = target(arize, clock, mutations_per_request=10).send(
        [ann(i, span(i)) for i in range(23)], progress.append
    )
    assert statuses(outcomes) == ["synced"] * 23
    assert [c.mutations for c in arize.graphql_calls()] == [10, 10, 3]
    assert sum(progress) == 23


def test_label_and_score_together_are_refused_before_sending(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    seed(arize, span(0), span(1))
    outcomes = target(arize, clock).send(
        [ann(0, span(0), score=1.0), ann(1, span(1), label=None, score=1.0)]
    )
    assert statuses(outcomes) == ["rejected", "synced"]
    assert outcomes[0].message.startswith(
        f"not sent: Arize's GraphQL API takes a label or a score for '{NAME}', not both"
    )
    assert [c.mutations for c in arize.graphql_calls()] == [1]


def test_an_explanation_alone_is_refused_by_the_documented_shape(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    outcomes = target(arize, clock).send([ann(0, span(0), label=None, explanation="why")])
    assert statuses(outcomes) == ["rejected"]
    assert "needs a label or a score" in outcomes[0].message
    assert arize.calls == []


def test_two_rows_writing_one_arize_annotation_are_both_refused(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    seed(arize, span(0), span(1))
    batch = [ann(0, span(0)), ann(1, span(0), annotator="Bob"), ann(2, span(1))]
    outcomes = target(arize, clock).send(batch)
    assert statuses(outcomes) == ["rejected", "rejected", "synced"]
    assert "rows 2, 3 write the same Arize annotation" in outcomes[0].message
    assert "keeps one per span and name" in outcomes[1].message


# -- errors, per row ----------------------------------------------------------------------


def test_an_unknown_record_rejects_its_row_only(arize: ArizeStandIn, clock: FakeClock) -> None:
    seed(arize, span(0), span(2))
    outcomes = target(arize, clock).send([ann(i, span(i)) for i in range(3)])
    assert statuses(outcomes) == ["synced", "rejected", "synced"]
    assert outcomes[1].message.startswith(f"Arize: record {span(1)} not found")
    assert "at most 24 h after startTime" in outcomes[1].message
    assert len(arize.graphql_calls()) == 1


@pytest.mark.parametrize(
    "record_start", [T0 + timedelta(hours=24, seconds=1), T0 - timedelta(seconds=1)]
)
def test_a_start_time_outside_the_documented_24_hours_finds_no_record(
    arize: ArizeStandIn, clock: FakeClock, record_start: datetime
) -> None:
    seed(arize, span(0), start=record_start)
    [outcome] = target(arize, clock).send([ann(0, span(0))])
    assert outcome.status == Status.REJECTED
    assert "not found after startTime" in outcome.message


def test_a_record_exactly_24_hours_after_start_time_is_found(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    seed(arize, span(0), start=T0 + timedelta(hours=24))
    [outcome] = target(arize, clock).send([ann(0, span(0))])
    assert outcome.status == Status.SYNCED


def test_an_error_naming_a_variable_rejects_that_row_and_resends_the_rest(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    seed(arize, span(0), span(1), span(2))
    arize.script.append(
        (
            200,
            {
                "data": None,
                "errors": [{"message": "Variable '$a1_recordId' got invalid value 'x'"}],
            },
        )
    )
    outcomes = target(arize, clock).send([ann(i, span(i)) for i in range(3)])
    assert statuses(outcomes) == ["synced", "rejected", "synced"]
    assert outcomes[1].message == "Arize: Variable '$a1_recordId' got invalid value 'x'"
    assert [c.mutations for c in arize.graphql_calls()] == [3, 2]
    assert arize.graphql_calls()[1].body["variables"]["a1_recordId"] == span(2)


def test_a_document_level_error_splits_the_request_until_the_culprit_is_alone(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    seed(arize, *(span(i) for i in range(4)))
    complexity = {"errors": [{"message": "query complexity 1200 exceeds the limit of 1000"}]}
    arize.script += [(200, complexity)] * 3
    outcomes = target(arize, clock).send([ann(i, span(i)) for i in range(4)])
    # 4 refused -> halves: 2 refused -> halves: 1 refused alone, 1 passes; then 2 pass
    assert [c.mutations for c in arize.graphql_calls()] == [4, 2, 1, 1, 2]
    assert statuses(outcomes) == ["rejected", "synced", "synced", "synced"]
    assert outcomes[0].message == "Arize: query complexity 1200 exceeds the limit of 1000"


def test_a_retryable_error_fails_the_row_for_the_next_run(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    seed(arize, span(0), span(1))
    arize.script.append(
        (
            200,
            {
                "data": {"a0": None, "a1": {"clientMutationId": None}},
                "errors": [{"message": RATE_LIMITED, "path": ["a0"]}],
            },
        )
    )
    outcomes = target(arize, clock).send([ann(0, span(0)), ann(1, span(1))])
    assert statuses(outcomes) == ["failed", "synced"]


@pytest.mark.parametrize(
    ("documented", "later"),
    [
        (RATE_LIMITED, True),
        (RATE_LIMIT_DOCUMENTED, True),
        (f"{RATE_LIMITED}: {RATE_LIMIT_DOCUMENTED}", True),
        ("Service Unavailable", True),  # 503's reason phrase (RFC 9110 section 15.6.4)
        (COMPLEXITY_DOCUMENTED, False),
        ("Not Found", False),
    ],
)
def test_the_retry_rule_reads_the_documented_wording(documented: str, later: bool) -> None:
    # the wording comes from Arize's documentation (tests/arize_standin.py), not the stand-in
    assert is_retryable(documented) is later


def test_a_lost_server_keeps_what_was_confirmed(arize: ArizeStandIn, clock: FakeClock) -> None:
    seed(arize, span(0), span(1))
    t = target(arize, clock, mutations_per_request=1)
    t.session = http.make_session(headers={"x-api-key": KEY}, retries=0)
    arize.script += [None, (503, {"errors": [{"message": "maintenance"}]})]
    outcomes = t.send([ann(0, span(0)), ann(1, span(1))])
    assert statuses(outcomes) == ["synced", "failed"]
    assert outcomes[1].message.startswith("Arize stopped answering during the sync")


# -- auth and checks ----------------------------------------------------------------------


def test_check_sends_a_valid_query_with_the_api_key_header(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    target(arize, clock).check()
    [call] = arize.calls
    assert document_errors(call.body["query"]) == []
    assert call.headers["x-api-key"] == KEY
    assert "Authorization" not in call.headers


def test_a_missing_key_is_a_configuration_error(arize: ArizeStandIn, clock: FakeClock) -> None:
    with pytest.raises(ConfigError, match="ARIZE_API_KEY is not set"):
        target(arize, clock, env={}).check()
    assert arize.calls == []


def test_a_refused_key_raises_auth_refused_without_the_key(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    wrong = "arize-wrong-key-never-print-0b7e"
    seed(arize, span(0))
    with pytest.raises(AuthRefused) as err:
        target(arize, clock, env={"ARIZE_API_KEY": wrong}).send([ann(0, span(0))])
    assert "ARIZE_API_KEY" in str(err.value)
    assert wrong not in str(err.value)
    assert arize.annotations == {}


def test_a_url_that_is_not_graphql_is_a_configuration_error(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    t = ArizeTarget(
        config(arize.url + "/elsewhere"), env={"ARIZE_API_KEY": KEY}, clock=clock, now=lambda: NOW
    )
    with pytest.raises(ConfigError, match="did not answer as a GraphQL API"):
        t.check()


def test_a_start_time_in_the_future_is_a_configuration_error(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    with pytest.raises(ConfigError, match="is in the future"):
        target(arize, clock, start_time=NOW + timedelta(hours=1)).check()
    assert arize.calls == []


# -- the rate limiter ---------------------------------------------------------------------


def test_the_limiter_is_a_sliding_window() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(3, 60.0, clock=clock, sleep=clock.sleep)
    limiter.acquire(1)
    clock.now = 10.0
    limiter.acquire(2)
    assert clock.slept == []
    limiter.acquire(1)  # the window (t-60, t] already holds 3: wait for the first to leave
    assert clock.now == pytest.approx(60.0)
    limiter.acquire(2)  # 2 + 1 still in the window until t=70
    assert clock.now == pytest.approx(70.0)
    assert limiter.waited == pytest.approx(70.0 - 10.0)
    with pytest.raises(ValueError, match="can never fit"):
        limiter.acquire(4)


def test_sends_stay_under_the_documented_300_mutations_a_minute(
    arize: ArizeStandIn, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 700
    seed(arize, *(span(i) for i in range(n)))
    real_sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", real_sleeps.append)
    started = clock.now
    t = target(arize, clock, mutations_per_request=50, mutations_per_minute=300)
    outcomes = t.send([ann(i, span(i)) for i in range(n)])
    assert statuses(outcomes) == ["synced"] * n
    assert arize.rate_limited == 0
    assert arize.max_mutations_in_window() == 300
    assert clock.now - started == pytest.approx(120.0)  # 300 now, 300 at +60 s, 100 at +120 s
    assert real_sleeps == []  # no real waiting: every wait went to the injected clock


def test_without_the_limiter_the_stand_in_refuses_past_300_a_minute(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    # The counter-test: the stand-in does enforce the documented limit.
    n = 400
    seed(arize, *(span(i) for i in range(n)))
    t = target(arize, clock, mutations_per_request=50)
    t.limiter = RateLimiter(10**6, clock=clock, sleep=clock.sleep)
    t.session = http.make_session(headers={"x-api-key": KEY}, retries=0)
    outcomes = t.send([ann(i, span(i)) for i in range(n)])
    assert arize.rate_limited == 1
    assert statuses(outcomes) == ["synced"] * 300 + ["failed"] * 100


# -- the newer input shape ----------------------------------------------------------------


def test_the_newer_input_sends_annotation_updates_with_config_ids(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    config_id = "QW5ub3RhdGlvbkNvbmZpZzox"
    arize.annotation_configs[config_id] = NAME
    seed(arize, span(0), span(1), span(2))
    t = target(
        arize,
        clock,
        input_shape="annotation_updates",
        annotation_config_ids={NAME: config_id},
        start_time=None,
    )
    batch = [
        ann(0, span(0), explanation="short"),
        ann(1, span(1), label=None, explanation="freeform only"),
        ann(2, span(3)),
    ]
    outcomes = t.send(batch)
    assert statuses(outcomes) == ["synced", "synced", "rejected"]
    assert outcomes[2].message.startswith(f"Arize: record {span(3)} not found")
    [call] = arize.graphql_calls()
    assert call.body["operationName"] == "updateAnnotations"
    assert "a0: updateAnnotations(input: $a0)" in call.body["query"]
    v = call.body["variables"]
    assert v["a0"] == {
        "modelId": MODEL,
        "recordId": span(0),
        "modelEnvironment": "tracing",
        "annotationUpdates": [
            {
                "annotationConfigId": config_id,
                "annotation": {
                    "name": NAME,
                    "updatedBy": "Jane Doe",
                    "annotationType": "label",
                    "label": "Needs Improvement",
                },
            }
        ],
        "note": {"text": "short"},
    }
    text_update = v["a1"]["annotationUpdates"][0]["annotation"]
    assert (text_update["annotationType"], text_update["text"]) == ("text", "freeform only")
    assert "note" not in v["a1"]


def test_the_newer_input_needs_a_config_id_for_every_annotation_name(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    shape = {"input_shape": "annotation_updates", "start_time": None}
    with pytest.raises(ConfigError, match="no config id for helpfulness"):
        target(
            arize, clock, names=(NAME, "helpfulness"), annotation_config_ids={NAME: "x"}, **shape
        )
    with pytest.raises(ConfigError, match="names typo, which no annotation"):
        target(arize, clock, annotation_config_ids={NAME: "x", "typo": "y"}, **shape)


# -- the mapping ----------------------------------------------------------------------------


def mapping_data(**target_keys: Any) -> dict[str, Any]:
    return {
        "source": {"type": "csv", "path": "labels.csv"},
        "target": {"type": "arize", "model_id": MODEL, "start_time": "2024-11-15T00:00:00Z"}
        | target_keys,
        "annotations": [{"name": NAME, "id_column": "span_id", "label_column": "label"}],
    }


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"environment": "staging"}, "'production', 'validation', 'training' or 'tracing'"),
        ({"model_id": None}, "api: graphql needs model_id"),
        ({"start_time": None}, "needs a startTime at most 24 h before each record's start"),
        ({"start_time_column": "started_at"}, "give start_time or start_time_column, not both"),
        ({"project_id": "p"}, "project_id is read by api: rest only"),
        ({"input_shape": "annotation_updates"}, "needs annotation_config_ids"),
        ({"mutations_per_minute": 301}, "less than or equal to 300"),
        ({"start_time": "2024-11-15T00:00:00"}, "timezone"),
    ],
)
def test_the_mapping_refuses_what_arize_documents_as_invalid(
    keys: dict[str, Any], message: str
) -> None:
    data = mapping_data(**keys)
    data["target"] = {k: v for k, v in data["target"].items() if v is not None}
    with pytest.raises(MappingError) as err:
        parse_mapping(data, Path("m.yaml"))
    assert message in str(err.value)
    assert "target" in str(err.value)


def test_the_record_kind_follows_the_environment() -> None:
    tracing = parse_mapping(mapping_data(), Path("m.yaml"))
    assert isinstance(tracing.target, ArizeConfig)
    assert tracing.target.record_kind() == "span"
    production = parse_mapping(mapping_data(environment="production"), Path("m.yaml"))
    assert isinstance(production.target, ArizeConfig)
    assert production.target.record_kind() == "record"


# -- start times from a column --------------------------------------------------------------


def test_a_start_time_column_waits_for_the_pipeline_to_carry_extra_columns(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    make = lambda: target(arize, clock, start_time=None, start_time_column="started_at")  # noqa: E731
    assert make().config.extra_columns() == ["started_at"]


def test_start_times_from_a_column_are_a_margin_before_each_record(
    arize: ArizeStandIn, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    began = datetime(2024, 11, 18, 9, 0, 0, tzinfo=UTC)
    seed(arize, span(0), span(1), span(2), start=began)
    t = target(arize, clock, start_time=None, start_time_column="started_at")
    batch = [
        ann(0, span(0), cls=RowAnnotation, extra={"started_at": "2024-11-18T09:00:00Z"}),
        # a date-time cell from Excel, without a zone: read as UTC
        ann(1, span(1), cls=RowAnnotation, extra={"started_at": datetime(2024, 11, 18, 9)}),
        ann(2, span(2), cls=RowAnnotation, extra={"started_at": ""}),
        ann(3, span(3), cls=RowAnnotation, extra={"started_at": "yesterday"}),
    ]
    outcomes = t.send(batch)
    assert statuses(outcomes) == ["synced", "synced", "rejected", "rejected"]
    assert outcomes[2].message.startswith("not sent: started_at is empty")
    assert "started_at 'yesterday' is not a date-time" in outcomes[3].message
    v = arize.graphql_calls()[0].body["variables"]
    assert v["a0_startTime"] == v["a1_startTime"] == "2024-11-18T08:00:00Z"


def test_a_24_hour_margin_never_exceeds_the_documented_limit(
    arize: ArizeStandIn, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    began = datetime(2024, 11, 18, 9, 0, 0, 750000, tzinfo=UTC)
    seed(arize, span(0), start=began)
    t = target(arize, clock, start_time=None, start_time_column="at", start_time_margin_hours=24)
    [outcome] = t.send([ann(0, span(0), cls=RowAnnotation, extra={"at": began.isoformat()})])
    assert outcome.status == Status.SYNCED
    assert arize.graphql_calls()[0].body["variables"]["a0_startTime"] == "2024-11-17T09:00:01Z"


# -- through the pipeline -------------------------------------------------------------------


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    lines = ["span_id,label,score,explanation,annotator"] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_a_sync_through_the_pipeline_writes_statuses_and_sends_nothing_twice(
    arize: ArizeStandIn, clock: FakeClock, tmp_path: Path
) -> None:
    seed(arize, span(0), span(1))
    sheet = write_csv(
        tmp_path / "labels.csv",
        [
            [span(0), "Needs Improvement", "", "too short", "Jane Doe"],
            [span(1), "", "0.5", "", "Jane Doe"],
            [span(2), "Satisfactory", "", "", "Jane Doe"],
        ],
    )
    mapping = parse_mapping(
        {
            "source": {"type": "csv", "path": str(sheet)},
            "target": {
                "type": "arize",
                "url": arize.url,
                "model_id": MODEL,
                "start_time": "2024-11-15T10:15:30Z",
            },
            "annotations": [
                {
                    "name": NAME,
                    "id_column": "span_id",
                    "label_column": "label",
                    "score_column": "score",
                    "explanation_column": "explanation",
                    "annotator_column": "annotator",
                }
            ],
        },
        tmp_path / "m.yaml",
    )
    kwargs = {"env": {"ARIZE_API_KEY": KEY}, "now": lambda: NOW, "clock": clock}

    dry = run(mapping, dry_run=True, target=open_target(mapping, **kwargs))
    assert arize.calls == []
    assert [p["recordId"] for p in dry.planned] == [span(0), span(1), span(2)]

    result = run(mapping, target=open_target(mapping, **kwargs))
    rows = csv_rows(sheet)
    assert [r["sync_status"] for r in rows] == ["synced", "synced", "rejected"]
    assert rows[0]["sync_id"] == f"{span(0)}:{NAME}"
    assert rows[2]["sync_message"].startswith(f"Arize: record {span(2)} not found")
    assert result.exit_code == 1
    calls = len(arize.calls)

    again = run(mapping, target=open_target(mapping, **kwargs))
    assert again.counts["unchanged"] == 2
    # the check, then row 3 again: rejected rows are retried
    assert [c.mutations for c in arize.calls[calls:]] == [0, 1]
    assert arize.calls[-1].body["variables"]["a0_recordId"] == span(2)


def test_the_shipped_arize_mappings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.mapping import load_mapping

    root = Path(__file__).resolve().parent.parent / "mappings"
    monkeypatch.setenv("ARIZE_MODEL_ID", MODEL)
    monkeypatch.setenv("ARIZE_PROJECT_ID", "UHJvamVjdDox")
    graphql = load_mapping(root / "arize-graphql.yaml")
    rest = load_mapping(root / "arize-rest.yaml")
    names = [a.name for a in graphql.annotations]
    g = open_target(graphql, env={})
    r = open_target(rest, env={})
    assert (g.kind, r.kind) == ("span", "span")
    assert g.fingerprint() == f"arize|graphql|https://app.arize.com|{MODEL}|tracing"
    assert r.fingerprint() == "arize|rest|https://api.arize.com|UHJvamVjdDox|span"
    assert names == ["correctness", "correctness_score"]
    assert g.payload(ann(0, span(0), name="correctness"))["startTime"] == "2024-11-15T00:00:00Z"


# -- waiting for pipeline support (see bridge/targets/_extra.py) ----------------------------


def test_the_pipeline_passes_the_start_time_column(
    arize: ArizeStandIn, clock: FakeClock, tmp_path: Path
) -> None:
    seed(arize, span(0), start=datetime(2024, 11, 18, 9, tzinfo=UTC))
    sheet = tmp_path / "labels.csv"
    sheet.write_text(
        f"span_id,label,started_at\n{span(0)},Satisfactory,2024-11-18T09:00:00Z\n",
        encoding="utf-8",
    )
    mapping = parse_mapping(
        {
            "source": {"type": "csv", "path": str(sheet)},
            "target": {
                "type": "arize",
                "url": arize.url,
                "model_id": MODEL,
                "start_time_column": "started_at",
            },
            "annotations": [{"name": NAME, "id_column": "span_id", "label_column": "label"}],
        },
        tmp_path / "m.yaml",
    )
    kwargs = {"env": {"ARIZE_API_KEY": KEY}, "now": lambda: NOW, "clock": clock}
    result = run(mapping, target=open_target(mapping, **kwargs))
    assert result.counts["synced"] == 1
    variables = arize.graphql_calls()[-1].body["variables"]
    assert variables["a0_startTime"] == "2024-11-18T08:00:00Z"


def test_validate_reports_what_arize_documents_as_invalid(
    arize: ArizeStandIn, clock: FakeClock, tmp_path: Path
) -> None:
    sheet = write_csv(tmp_path / "labels.csv", [[span(0), "Satisfactory", "1", "", "Jane Doe"]])
    mapping = parse_mapping(
        {
            "source": {"type": "csv", "path": str(sheet)},
            "target": {"type": "arize", "url": arize.url, "model_id": MODEL, "start_time": T0},
            "annotations": [
                {
                    "name": NAME,
                    "id_column": "span_id",
                    "label_column": "label",
                    "score_column": "score",
                }
            ],
        },
        tmp_path / "m.yaml",
    )
    kwargs = {"env": {"ARIZE_API_KEY": KEY}, "now": lambda: NOW, "clock": clock}
    result = run(mapping, send=False, target=open_target(mapping, **kwargs))
    assert result.counts["invalid"] == 1
    assert "takes a label or a score" in result.issues[0].message


def test_a_misspelt_arize_key_gets_a_did_you_mean() -> None:
    data = mapping_data()
    data["target"]["modle_id"] = data["target"].pop("model_id")
    with pytest.raises(MappingError, match="did you mean 'model_id'"):
        parse_mapping(data, Path("m.yaml"))


def test_a_limit_below_the_request_size_shrinks_the_requests(
    arize: ArizeStandIn, clock: FakeClock
) -> None:
    seed(arize, *(span(i) for i in range(12)))
    t = target(arize, clock, mutations_per_request=10, mutations_per_minute=5)
    outcomes = t.send([ann(i, span(i)) for i in range(12)])
    assert statuses(outcomes) == ["synced"] * 12
    assert [c.mutations for c in arize.graphql_calls()] == [5, 5, 2]
    assert arize.max_mutations_in_window() == 5
