"""log10 feedback (experimental), against a local stand-in of the documented endpoints.

log10 cannot be reached from here: these tests check annobridge against the documented
contract (the official client's requests, the OpenAPI description; tests/log10_standin.py),
not against the live service.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import http
from bridge.errors import AuthRefused, ConfigError, MappingError
from bridge.mapping import parse_mapping
from bridge.pipeline import run
from bridge.records import Annotation, Status
from bridge.registry import open_target
from bridge.targets.log10.config import Log10Config
from bridge.targets.log10.target import Log10Target, coerce, headers_from_env
from tests.arize_standin import RowAnnotation
from tests.log10_standin import Log10StandIn

TOKEN = "log10-test-token-5c2e"
ORG = "org-7d1f"
ENV = {"LOG10_TOKEN": TOKEN, "LOG10_ORG_ID": ORG}
EMOJI = ["😀", "😬", "😐", "🙁", "😫"]
SCHEMA = {
    "type": "object",
    "properties": {
        "feedback": {"type": "string", "enum": EMOJI},
        "coverage": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["feedback"],
    "additionalProperties": False,
}
VALUES = {"feedback": "label", "coverage": "score"}


class Clock:
    """Milliseconds since the epoch, moved by hand."""

    def __init__(self) -> None:
        self.ms = 1_732_000_000_000.0

    def __call__(self) -> float:
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log10(clock: Clock) -> Iterator[Log10StandIn]:
    with Log10StandIn(token=TOKEN, org_id=ORG, now_ms=clock) as server:
        yield server


@pytest.fixture
def task(log10: Log10StandIn) -> str:
    return log10.add_task("emoji_feedback_task", SCHEMA, ["unique-tag"], "Use emojis")


def target(
    server: Log10StandIn,
    task_id: str,
    clock: Clock,
    *,
    env: dict[str, str] | None = None,
    session: Any = None,
    **kw: Any,
) -> Log10Target:
    values: dict[str, Any] = {"type": "log10", "url": server.url, "task_id": task_id}
    values["json_values"] = VALUES
    values.update(kw)
    return Log10Target(
        Log10Config(**values), env=ENV if env is None else env, now_ms=clock, session=session
    )


def ann(
    i: int,
    ids: str,
    *,
    label: str | None = "😀",
    score: float | None = 4.0,
    explanation: str | None = "clear answer",
    annotator: str | None = "alice",
    kind: str = "tag",
    cls: type[Annotation] = Annotation,
    **kw: Any,
) -> Annotation:
    return cls(
        row_index=i,
        name="feedback",
        kind=kind,
        target_id=ids,
        label=label,
        score=score,
        explanation=explanation,
        annotator=annotator,
        annotator_kind="HUMAN",
        identifier=f"annobridge:{annotator}",
        metadata={"row": i + 2},
        **kw,
    )


# -- the task -----------------------------------------------------------------------------


def test_check_reads_the_task_with_the_official_clients_headers(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    target(log10, task, clock).check()
    [call] = log10.calls
    assert call.path == f"/api/v1/feedback_task/{task}?organization_id={ORG}"
    assert call.headers["x-log10-token"] == TOKEN
    assert call.headers["x-log10-organization-id"] == ORG
    assert call.headers["X-Log10-Organization"] == ORG  # the OpenAPI spelling, too


def test_the_url_comes_from_log10_url(log10: Log10StandIn, task: str, clock: Clock) -> None:
    config = Log10Config(type="log10", task_id=task, json_values=VALUES)
    t = Log10Target(config, env={**ENV, "LOG10_URL": log10.url + "/"}, now_ms=clock)
    assert t.base_url == log10.url
    t.check()
    default = Log10Target(config, env=ENV)
    assert default.base_url == "https://log10.io"
    assert headers_from_env({}) == {"Content-Type": "application/json"}


def test_an_unknown_task_is_a_configuration_error(log10: Log10StandIn, clock: Clock) -> None:
    with pytest.raises(ConfigError, match="log10 has no feedback task 'nope' in organization"):
        target(log10, "nope", clock).check()


def test_missing_credentials_are_a_configuration_error_before_any_request(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    with pytest.raises(ConfigError, match="LOG10_TOKEN or LOG10_ORG_ID is not set"):
        target(log10, task, clock, env={"LOG10_TOKEN": TOKEN}).check()
    assert log10.calls == []


def test_a_refused_token_raises_auth_refused_without_the_token(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    wrong = "log10-wrong-token-never-print-1f0b"
    with pytest.raises(AuthRefused) as err:
        target(log10, task, clock, env={"LOG10_TOKEN": wrong, "LOG10_ORG_ID": ORG}).check()
    assert wrong not in str(err.value)
    assert "LOG10_TOKEN" in str(err.value)


@pytest.mark.parametrize(
    ("schema", "values", "message"),
    [
        (SCHEMA, {"coverage": "score"}, "requires feedback; map it in target.json_values"),
        (SCHEMA, {"feedback": "label", "tone": "score"}, "has no field tone"),
        ({"type": "objekt"}, {"feedback": "label"}, "is not a valid JSON schema"),
    ],
)
def test_the_mapping_is_checked_against_the_tasks_fields(
    log10: Log10StandIn,
    clock: Clock,
    schema: dict[str, Any],
    values: dict[str, str],
    message: str,
) -> None:
    task = log10.add_task("t", schema)
    with pytest.raises(ConfigError, match=message):
        target(log10, task, clock, json_values=values).check()


# -- values and the task's JSON schema ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "schema", "expected"),
    [
        ("4", {"type": "integer"}, 4),
        (4.0, {"type": "integer"}, 4),
        (4.5, {"type": "integer"}, 4.5),  # left as is: the schema check says why
        ("4.5", {"type": "number"}, 4.5),
        ("x", {"type": "number"}, "x"),
        ("Yes", {"type": "boolean"}, True),
        (0.0, {"type": "boolean"}, False),
        (3.0, {"type": "string"}, "3"),
        (True, {"type": "string"}, "true"),
        ("😀", {"type": ["integer", "string"]}, "😀"),
        ("5", {}, "5"),
    ],
)
def test_values_are_coerced_to_the_types_the_schema_names(
    value: Any, schema: dict[str, Any], expected: Any
) -> None:
    got = coerce(value, schema)
    assert got == expected and type(got) is type(expected)


def test_feedback_is_created_with_tags_values_and_comment(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    completion = log10.add_completion("unique-tag", "session-1")
    log10.add_completion("unique-tag")
    outcomes = target(log10, task, clock).send([ann(0, "unique-tag, session-1")])
    [stored] = log10.feedback
    assert [(o.status, o.remote_id) for o in outcomes] == [(Status.SYNCED, stored["id"])]
    [post] = log10.posts()
    assert post.body == {
        "task_id": task,
        "json_values": {"feedback": "😀", "coverage": 4},
        "completion_tags_selector": ["unique-tag", "session-1"],
        "comment": "clear answer",
        "organization_id": ORG,
    }
    assert stored["matched_completion_ids"] == [completion]


def test_feedback_can_name_completions_by_id(log10: Log10StandIn, task: str, clock: Clock) -> None:
    a, b = log10.add_completion("x"), log10.add_completion("y")
    t = target(log10, task, clock, match="completion_ids")
    assert t.kind == "completion"
    outcomes = t.send(
        [
            ann(0, f"{a}, {b}", kind="completion", explanation=None, score=None),
            ann(1, "0b6e4b1c-2f43-4e7a-9d55-1a2b3c4d5e6f", kind="completion"),
        ]
    )
    assert [o.status for o in outcomes] == [Status.SYNCED, Status.REJECTED]
    body = log10.posts()[0].body
    assert body["completion_ids"] == [a, b]
    assert "completion_tags_selector" not in body
    assert body["comment"] is None and body["json_values"] == {"feedback": "😀"}
    assert outcomes[1].message.startswith("log10 answered 400: unknown completion ids")
    assert outcomes[1].message.endswith("check the completion ids")


def test_values_the_schema_refuses_are_reported_per_row_and_never_sent(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    log10.add_completion("unique-tag")
    outcomes = target(log10, task, clock).send(
        [
            ann(0, "unique-tag", label="meh", score=7.0),
            ann(1, "unique-tag", label=None),
            ann(2, "unique-tag", score=4.5),
            ann(3, "unique-tag"),
        ]
    )
    assert [o.status for o in outcomes] == [Status.REJECTED] * 3 + [Status.SYNCED]
    assert outcomes[0].message == (
        "not sent: coverage (from score): 7 is greater than the maximum of 5; "
        "feedback (from label): 'meh' is not one of ['😀', '😬', '😐', '🙁', '😫']"
    )
    assert outcomes[1].message == (
        "not sent: log10 task 'emoji_feedback_task': 'feedback' is a required property"
    )
    assert outcomes[2].message == "not sent: coverage (from score): 4.5 is not of type 'integer'"
    assert len(log10.posts()) == 1


def test_the_server_validates_against_the_task_schema_too(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    log10.add_completion("unique-tag")
    t = target(log10, task, clock)
    t.check()
    log10.tasks[task]["json_schema"]["properties"]["feedback"]["enum"] = ["😫"]  # edited since
    [outcome] = t.send([ann(0, "unique-tag")])
    assert outcome.status == Status.REJECTED
    assert outcome.message == (
        "log10 answered 422: json_values do not match the task schema: "
        "json_values.feedback '😀' is not an allowed value (allowed: ['😫'])"
    )
    assert log10.feedback == []


def test_unmatched_tags_are_rejected_with_a_hint(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    [outcome] = target(log10, task, clock).send([ann(0, "nobody-has-this-tag")])
    assert outcome.status == Status.REJECTED
    assert outcome.message == (
        "log10 answered 400: no completions matched the tags selector; check the tags or "
        "ids: feedback must match at least one completion"
    )


def test_max_matched_completions_is_sent_when_set(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    for _ in range(3):
        log10.add_completion("wide")
    [outcome] = target(log10, task, clock, max_matched_completions=2).send([ann(0, "wide")])
    assert log10.posts()[0].body["max_matched_completions"] == 2
    assert outcome.status == Status.REJECTED
    assert "3 completions matched, more than 2" in outcome.message


# -- no upsert: edits, and creates whose answer was lost ---------------------------------


def test_an_edited_row_is_refused_unless_on_edit_resend(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    log10.add_completion("unique-tag")
    [refused] = target(log10, task, clock).send([ann(0, "unique-tag", is_update=True)])
    assert refused.status == Status.REJECTED
    assert "log10 cannot update or delete feedback, so the edit was not sent" in refused.message
    assert log10.posts() == []
    [resent] = target(log10, task, clock, on_edit="resend").send(
        [ann(0, "unique-tag", is_update=True)]
    )
    assert resent.status == Status.SYNCED
    assert len(log10.feedback) == 1


def test_a_create_whose_answer_was_lost_is_found_by_reading_back_page_by_page(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    log10.add_completion("unique-tag")
    # Older feedback from earlier runs: an identical one from an hour ago is not ours.
    target(log10, task, clock).send([ann(0, "unique-tag")])
    for i in range(5):
        target(log10, task, clock).send([ann(i, "unique-tag", label=EMOJI[i])])
    clock.ms += 60 * 60 * 1000
    t = target(log10, task, clock, page_size=3)
    log10.store_then_fail = 1
    outcomes = t.send([ann(0, "unique-tag"), ann(1, "unique-tag", label="😐")])
    ours = log10.feedback[-1]
    assert len(log10.feedback) == 7  # stored once: the create was not retried
    assert outcomes[0].status == Status.SYNCED and outcomes[0].remote_id == ours["id"]
    assert outcomes[1].status == Status.FAILED
    assert outcomes[1].message.startswith("not sent: log10 stopped answering")
    reads = [c.path for c in log10.calls if c.path.startswith("/api/v1/feedback?")]
    assert [p.split("offset=")[1].split("&")[0] for p in reads] == ["0", "3", "6"]
    assert all(f"task_id={task}" in p and "limit=3" in p for p in reads)


def test_a_create_that_was_not_stored_fails_for_the_next_run(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    log10.add_completion("unique-tag")
    t = target(log10, task, clock)
    t.check()
    log10.script.append((503, {"error": "maintenance"}))
    [outcome] = t.send([ann(0, "unique-tag")])
    assert outcome.status == Status.FAILED
    assert outcome.message.startswith("log10 did not store this feedback (log10 answered 503")
    assert len(log10.posts()) == 1 and log10.feedback == []


def test_when_reading_back_fails_too_the_row_says_it_may_exist(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    log10.add_completion("unique-tag")
    session = http.make_session(headers=headers_from_env(ENV), retries=0)
    t = target(log10, task, clock, session=session)
    t.check()
    log10.store_then_fail = 1
    log10.script += [None, (500, {"error": "down"})]
    [outcome] = t.send([ann(0, "unique-tag")])
    assert outcome.status == Status.FAILED
    assert "it may have stored it: check the task's feedback before the next run" in (
        outcome.message
    )


def test_a_token_refused_mid_run_keeps_what_was_created(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    log10.add_completion("unique-tag")
    t = target(log10, task, clock)
    log10.script += [None, None, (401, {"error": "token revoked"})]
    outcomes = t.send([ann(i, "unique-tag", label=EMOJI[i]) for i in range(3)])
    assert [o.status for o in outcomes] == [Status.SYNCED, Status.FAILED, Status.FAILED]
    assert outcomes[2].message.startswith("not sent: log10 refused the request (401")
    fresh = target(log10, task, clock)
    fresh.check()
    log10.script.append((401, {"error": "token revoked"}))
    with pytest.raises(AuthRefused):  # nothing created yet in this run: stop it
        fresh.send([ann(0, "unique-tag")])
    assert len(log10.feedback) == 1


def test_creates_are_never_retried_by_the_session(log10: Log10StandIn, task: str) -> None:
    t = target(log10, task, Clock())
    retry = t.session.get_adapter(log10.url).max_retries
    assert not retry.is_retry("POST", 502) and not retry.is_retry("POST", 429, True)
    assert retry.is_retry("GET", 502)


# -- the mapping and the pipeline -----------------------------------------------------------


def test_json_values_sources_are_checked_when_the_mapping_is_read() -> None:
    data = {
        "source": {"type": "csv", "path": "labels.csv"},
        "target": {"type": "log10", "task_id": "t", "json_values": {"feedback": "lable"}},
        "annotations": [{"name": "feedback", "id_column": "tag", "label_column": "emoji"}],
    }
    with pytest.raises(MappingError, match="use label, score, explanation, annotator or column:"):
        parse_mapping(data, Path("m.yaml"))


def test_json_values_from_other_columns_wait_for_the_pipeline(
    log10: Log10StandIn, task: str, clock: Clock
) -> None:
    values = {"feedback": "label", "coverage": "column:Coverage"}
    assert target(log10, task, clock, json_values=values).config.extra_columns() == ["Coverage"]


def test_json_values_from_other_columns(
    log10: Log10StandIn, task: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    log10.add_completion("unique-tag")
    t = target(log10, task, clock, json_values={"feedback": "label", "coverage": "column:Cov"})
    outcomes = t.send(
        [
            ann(0, "unique-tag", cls=RowAnnotation, extra={"Cov": "3"}),
            ann(1, "unique-tag", cls=RowAnnotation, extra={"Cov": "three"}),
        ]
    )
    assert [o.status for o in outcomes] == [Status.SYNCED, Status.REJECTED]
    assert log10.feedback[0]["json_values"] == {"feedback": "😀", "coverage": 3}
    assert outcomes[1].message == (
        "not sent: coverage (from column:Cov): 'three' is not of type 'integer'"
    )


def test_a_sync_never_resends_a_synced_row_and_refuses_edits(
    log10: Log10StandIn, task: str, clock: Clock, tmp_path: Path
) -> None:
    log10.add_completion("unique-tag", "s1")
    log10.add_completion("unique-tag", "s2")
    sheet = tmp_path / "labels.csv"
    sheet.write_text(
        "session_tag,emoji,coverage,comment,reviewer\n"
        "s1,😀,4,clear,alice\n"
        "s2,😫,1,,alice\n"
        "s3,😐,3,,alice\n",
        encoding="utf-8",
    )
    mapping = parse_mapping(
        {
            "source": {"type": "csv", "path": str(sheet)},
            "target": {
                "type": "log10",
                "url": log10.url,
                "task_id": task,
                "json_values": {"feedback": "label", "coverage": "score"},
            },
            "annotations": [
                {
                    "name": "feedback",
                    "id_column": "session_tag",
                    "label_column": "emoji",
                    "score_column": "coverage",
                    "explanation_column": "comment",
                    "annotator_column": "reviewer",
                }
            ],
        },
        tmp_path / "m.yaml",
    )

    def sync() -> Any:
        return run(mapping, target=open_target(mapping, env=ENV, now_ms=clock))

    def rows() -> list[dict[str, str]]:
        with sheet.open(encoding="utf-8-sig", newline="") as f:
            return list(csv.DictReader(f))

    first = sync()
    assert first.exit_code == 1
    got = rows()
    assert [r["sync_status"] for r in got] == ["synced", "synced", "rejected"]
    assert [r["sync_id"] for r in got[:2]] == [f["id"] for f in log10.feedback]
    assert "no completions matched" in got[2]["sync_message"]

    sync()
    assert len(log10.posts()) == 4  # only the rejected row went again

    text = sheet.read_text(encoding="utf-8").replace("s1,😀,4,clear", "s1,🙁,4,clear")
    sheet.write_text(text, encoding="utf-8")
    sync()
    edited = rows()[0]
    assert edited["sync_status"] == "rejected"
    assert "log10 cannot update or delete feedback" in edited["sync_message"]
    assert edited["sync_id"] == log10.feedback[0]["id"]  # the feedback it stays linked to
    assert len(log10.posts()) == 5 and len(log10.feedback) == 2


def test_the_shipped_log10_mapping_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.mapping import load_mapping

    monkeypatch.setenv("LOG10_TASK_ID", "5f0c2d7e-3b1a-4c6d-9e8f-0a1b2c3d4e5f")
    path = Path(__file__).resolve().parent.parent / "mappings" / "log10-feedback.yaml"
    mapping = load_mapping(path)
    t = open_target(mapping, env={})
    assert (t.kind, t.fingerprint()) == (
        "tag",
        "log10|https://log10.io||5f0c2d7e-3b1a-4c6d-9e8f-0a1b2c3d4e5f",
    )


def test_the_pipeline_passes_json_values_columns(
    log10: Log10StandIn, task: str, clock: Clock, tmp_path: Path
) -> None:
    log10.add_completion("s1")
    sheet = tmp_path / "labels.csv"
    sheet.write_text("tag,emoji,Coverage\ns1,😀,3\n", encoding="utf-8")
    mapping = parse_mapping(
        {
            "source": {"type": "csv", "path": str(sheet)},
            "target": {
                "type": "log10",
                "url": log10.url,
                "task_id": task,
                "json_values": {"feedback": "label", "coverage": "column:Coverage"},
            },
            "annotations": [{"name": "feedback", "id_column": "tag", "label_column": "emoji"}],
        },
        tmp_path / "m.yaml",
    )
    result = run(mapping, target=open_target(mapping, env=ENV, now_ms=clock))
    assert result.counts["synced"] == 1
    assert log10.feedback[0]["json_values"] == {"feedback": "😀", "coverage": 3}


@pytest.mark.parametrize(
    ("match", "cell", "problem"),
    [
        ("completion_ids", "0b6e4b1c-2f43-4e7a-9d55-1a2b3c4d5e6f", None),
        (
            "completion_ids",
            "0b6e4b1c-2f43-4e7a-9d55-1a2b3c4d5e6f , 1c7f5c2d-3a54-4f8b-8e66-2b3c4d5e6f70",
            None,
        ),
        (
            "completion_ids",
            "0B6E4B1C-2F43-4E7A-9D55-1A2B3C4D5E6F",
            "has capital letters; completion ids are lowercase",
        ),
        ("completion_ids", "session-1", "is not a completion id (a lowercase UUID like"),
        ("tags", "session-1, unique-tag", None),
        ("tags", "session-1,,x", "is not a tag id (one or more tags separated by commas)"),
    ],
)
def test_the_rules_check_completion_ids_and_tags(
    tmp_path: Path, match: str, cell: str, problem: str | None
) -> None:
    sheet = tmp_path / "labels.csv"
    sheet.write_text(f'ref,emoji\n"{cell}",😀\n', encoding="utf-8")
    mapping = parse_mapping(
        {
            "source": {"type": "csv", "path": str(sheet)},
            "target": {"type": "log10", "task_id": "t", "match": match, "json_values": VALUES},
            "annotations": [{"name": "feedback", "id_column": "ref", "label_column": "emoji"}],
        },
        tmp_path / "m.yaml",
    )
    result = run(mapping, send=False, target=open_target(mapping, env={}))
    if problem is None:
        assert result.counts["invalid"] == 0 and result.exit_code == 0
    else:
        [issue] = result.issues
        assert problem in issue.message
