"""The MLflow target against HTTP recorded from a real MLflow 3.17.2 server (vcrpy cassettes).

Replays with record mode "none": no test here reaches a server. With ANNOBRIDGE_RECORD=1
(``make cassettes``) a fresh ``mlflow server`` (basic auth on, SQLite in a temp dir) is
started, deterministic traces are seeded through the SDK, label schemas are created, and
every cassette is recorded again. Authorization headers are filtered out of the cassettes.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from vcr.errors import CannotOverwriteExistingCassetteException

from bridge.errors import AuthRefused, TargetUnreachable
from bridge.mapping import AnnotationSpec
from bridge.records import Annotation, Status
from bridge.rules import identifier_for
from bridge.targets.mlflow.config import MlflowConfig
from bridge.targets.mlflow.target import MlflowTarget
from bridge.targets.mlflow.values import assessment_id
from tests.replay import Replay, recorder, replay

RECORD = os.environ.get("ANNOBRIDGE_RECORD") == "1"
CASSETTES = Path(__file__).parent / "cassettes" / "mlflow"
TRACES_FILE = CASSETTES / "traces.json"
REPLAY_URL = "http://127.0.0.1:5000"
EXPERIMENT = "recorded"
# The admin password of the throw-away server used while recording (never in a cassette).
ADMIN_PASSWORD = "recording-admin-password-0123"

# Strict replay: method, scheme, host, port, path, query and (parsed) body must match, every
# interaction must be played, and assertions read what the code sent (tests/replay.py).
VCR = recorder(str(CASSETTES), REPLAY_URL, filter_headers=["authorization"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not RECORD:
        yield None
        return
    from tests.mlflow_server import MlflowServer

    server = MlflowServer(
        tmp_path_factory.mktemp("mlflow-recording"),
        workers=1,
        jobs=False,
        auth=True,
        admin_password=ADMIN_PASSWORD,
    ).start()
    try:
        CASSETTES.mkdir(parents=True, exist_ok=True)
        for old in CASSETTES.glob("*.yaml"):  # vcrpy would append to them, not replace them
            old.unlink()
        traces = server.seed(
            TRACES_FILE, experiment=EXPERIMENT, count=8, seed=31, shared_request_id="req-shared"
        )
        server.call(
            "POST",
            "/label-schemas/create",
            {
                "experiment_id": traces[0]["experiment_id"],
                "name": "recorded_topic",
                "type": "FEEDBACK",
                "input": {"categorical": {"options": ["Geography", "Math"]}},
            },
        )
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def url(server: Any) -> str:
    return str(server.url) if server else REPLAY_URL


@pytest.fixture(scope="module")
def traces(server: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(TRACES_FILE.read_text())
    return records


def admin_env() -> dict[str, str]:
    # while replaying, the password is never checked: the cassettes hold no Authorization
    return {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}


def target(url: str, env: dict[str, str] | None = None, **config: Any) -> MlflowTarget:
    settings: dict[str, Any] = {"experiment": EXPERIMENT, "concurrency": 1, **config}
    return MlflowTarget(
        MlflowConfig(type="mlflow", url=url, **settings),
        specs=[AnnotationSpec(name="recorded_topic", id_column="id", label_column="label")],
        env=admin_env() if env is None else env,
    )


def annotation(i: int, target_id: str, label: str = "correct", **kw: Any) -> Annotation:
    fields: dict[str, Any] = {
        "row_index": i,
        "name": "recorded_correctness",
        "kind": "MLflow trace",
        "target_id": target_id,
        "label": label,
        "score": None,
        "explanation": f"row {i + 2}",
        "annotator": "alice@example.com",
        "annotator_kind": "HUMAN",
        "identifier": identifier_for("alice@example.com"),
        "metadata": {"source": "annobridge", "sheet": "recorded.xlsx", "row": i + 2},
    }
    fields.update(kw)
    return Annotation(**fields)


def made(seen: Replay) -> list[str]:
    return [f"{r.method} {r.path}" for r in seen.sent]


def writes(seen: Replay) -> list[str]:
    return [
        m for m in made(seen) if m.startswith(("POST", "PATCH", "DELETE")) and "/assessments" in m
    ]


def test_unknown_trace_is_rejected_and_the_rest_land(
    url: str, traces: list[dict[str, Any]]
) -> None:
    unknown = "tr-" + "0" * 32
    batch = [
        annotation(0, traces[0]["trace_id"]),
        annotation(1, unknown),
        annotation(2, traces[1]["trace_id"], label="incorrect"),
    ]
    with replay(VCR, "unknown_trace.yaml") as cassette:
        outcomes = target(url).send(batch)
    assert [o.status for o in outcomes] == [Status.SYNCED, Status.REJECTED, Status.SYNCED]
    assert outcomes[1].message.startswith(f"MLflow has no trace '{unknown}'")
    assert outcomes[0].remote_id == assessment_id(
        traces[0]["trace_id"], "recorded_correctness", identifier_for("alice@example.com")
    )
    # by trace id nothing is looked up first: one POST per label
    assert made(cassette) == [
        f"POST /api/3.0/mlflow/traces/{t}/assessments"
        for t in (traces[0]["trace_id"], unknown, traces[1]["trace_id"])
    ]


def test_request_ids_resolve_in_one_search_and_ambiguous_or_unknown_are_rejected(
    url: str, traces: list[dict[str, Any]]
) -> None:
    shared = sorted(t["trace_id"] for t in traces if t["client_request_id"] == "req-shared")
    batch = [
        annotation(0, "req-0002", kind="client request"),
        annotation(1, "req-shared", kind="client request"),
        annotation(2, "req-9999", kind="client request"),
    ]
    with replay(VCR, "ambiguous_request_id.yaml") as cassette:
        outcomes = target(url, id_kind="client_request_id").send(batch)
    assert [o.status for o in outcomes] == [Status.SYNCED, Status.REJECTED, Status.REJECTED]
    assert outcomes[1].message == (
        f"request id 'req-shared' matches 2 traces in experiment '{EXPERIMENT}' "
        f"({shared[0]}, {shared[1]}); label them by trace id instead (id_kind: trace_id)"
    )
    assert outcomes[2].message.startswith("no trace with request id 'req-9999' in experiment")
    searches = cassette.where(lambda r: r.path.endswith("/traces/search"))
    assert len(searches) == 1
    sent = searches[0].body
    assert sent["filter"] == (
        "attributes.client_request_id IN ('req-0002', 'req-shared', 'req-9999')"
    )
    assert sent["locations"][0]["mlflow_experiment"]["experiment_id"] == traces[0]["experiment_id"]
    req_0002 = next(t for t in traces if t["client_request_id"] == "req-0002")["trace_id"]
    assert writes(cassette) == [f"POST /api/3.0/mlflow/traces/{req_0002}/assessments"]


def test_an_edit_is_patched_in_place_with_a_camel_case_mask(
    url: str, traces: list[dict[str, Any]]
) -> None:
    trace = traces[2]["trace_id"]
    with replay(VCR, "edit.yaml") as cassette:
        first = target(url).send([annotation(0, trace, name="recorded_edit")])
        edited = annotation(0, trace, label="wrong", name="recorded_edit", is_update=True)
        second = target(url).send([edited])
    assert first[0].status == second[0].status == Status.SYNCED
    assert first[0].remote_id == second[0].remote_id  # updated, not added
    assert writes(cassette) == [
        f"POST /api/3.0/mlflow/traces/{trace}/assessments",
        f"PATCH /api/3.0/mlflow/traces/{trace}/assessments/{first[0].remote_id}",
    ]
    patch = cassette.sent[1].body
    assert patch["update_mask"] == "feedback,metadata,rationale"
    assert patch["assessment"]["feedback"] == {"value": "wrong"}
    answered = json.loads(cassette.answers[1]["body"]["string"])
    assert answered["assessment"]["feedback"] == {"value": "wrong"}


def test_a_rerun_by_request_id_whose_status_was_lost_sends_no_write(
    url: str, traces: list[dict[str, Any]]
) -> None:
    batch = [annotation(0, "req-0003", kind="client request", name="recorded_rerun")]
    with replay(VCR, "rerun.yaml") as cassette:
        first = target(url, id_kind="client_request_id").send(batch)
        again = target(url, id_kind="client_request_id").send(batch)  # as if never written back
    assert first[0].status == again[0].status == Status.SYNCED
    assert first[0].remote_id == again[0].remote_id
    assert len(writes(cassette)) == 1  # the second run found it as sent, in the search answer


def test_a_create_that_meets_itself_reads_back_instead_of_duplicating(
    url: str, traces: list[dict[str, Any]]
) -> None:
    # The status of the first run was lost (or its answer timed out): the same row again.
    trace = traces[3]["trace_id"]
    item = annotation(0, trace, name="recorded_retry")
    with replay(VCR, "create_twice.yaml") as cassette:
        first = target(url).send([item])
        again = target(url).send([item])
        changed = target(url).send([annotation(0, trace, label="wrong", name="recorded_retry")])
    assert [o.status for o in (*first, *again, *changed)] == [Status.SYNCED] * 3
    assert first[0].remote_id == again[0].remote_id == changed[0].remote_id
    assert cassette.answers[1]["status"]["code"] == 500  # MLflow's "constraint violation"
    aid = first[0].remote_id
    assert made(cassette) == [
        f"POST /api/3.0/mlflow/traces/{trace}/assessments",
        f"POST /api/3.0/mlflow/traces/{trace}/assessments",
        f"GET /api/3.0/mlflow/traces/{trace}/assessments/{aid}",
        f"POST /api/3.0/mlflow/traces/{trace}/assessments",
        f"GET /api/3.0/mlflow/traces/{trace}/assessments/{aid}",
        f"PATCH /api/3.0/mlflow/traces/{trace}/assessments/{aid}",
    ]


def test_label_schemas_give_the_options_and_refuse_the_rest(
    url: str, traces: list[dict[str, Any]]
) -> None:
    batch = [
        annotation(0, traces[4]["trace_id"], label="geography", name="recorded_topic"),
        annotation(1, traces[5]["trace_id"], label="History", name="recorded_topic"),
    ]
    with replay(VCR, "label_schemas.yaml") as cassette:
        outcomes = target(url, label_schemas=True).send(batch)
    assert outcomes[0].status == Status.SYNCED
    assert outcomes[1].status == Status.REJECTED
    assert outcomes[1].message == (
        "label 'History' is not one of the options of 'recorded_topic' (MLflow label schema "
        "'recorded_topic'): Geography, Math"
    )
    [post] = cassette.where(lambda r: r.method == "POST")
    assert post.body["assessment"]["feedback"] == {"value": "Geography"}


def test_auth_refused_names_the_variables_and_never_the_password(url: str) -> None:
    bogus = "not-the-password-do-not-leak-9d1e"
    env = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": bogus}
    with replay(VCR, "auth_refused.yaml") as cassette:
        with pytest.raises(AuthRefused) as err:
            target(url, env=env).check()
    message = str(err.value)
    assert "401" in message
    assert "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in message
    assert bogus not in message
    text = (CASSETTES / "auth_refused.yaml").read_text()
    sent = base64.b64encode(f"admin:{bogus}".encode()).decode()
    assert bogus not in text and sent not in text and "authorization" not in text.lower()
    assert len(cassette.sent) == 1


class _Gone(requests.adapters.HTTPAdapter):
    """Replay: a request the cassette does not hold is one the dead server never answered."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().send(request, *args, **kwargs)
        except CannotOverwriteExistingCassetteException:
            raise requests.exceptions.ConnectionError("connection refused") from None


def test_server_down_mid_run_keeps_what_landed_and_fails_the_rest(
    server: Any, url: str, traces: list[dict[str, Any]]
) -> None:
    batch = [annotation(i, t["trace_id"], name="recorded_down") for i, t in enumerate(traces[:6])]
    settled: list[int] = []

    def crash_after_two(n: int) -> None:
        settled.append(n)
        if sum(settled) >= 2 and server is not None and server.process is not None:
            server.kill()

    sink = target(url)
    sink.session.mount("http://", _Gone())
    try:
        with replay(VCR, "server_down.yaml") as cassette:
            outcomes = sink.send(batch, progress=crash_after_two)
            with pytest.raises(TargetUnreachable, match="cannot reach MLflow"):
                sink.send(batch[:1])  # nothing landed: the run is unreachable (exit 3)
    finally:
        if server is not None:
            server.restart()
    landed = len(writes(cassette))  # what the server answered before it went away
    assert 2 <= landed < len(batch)
    assert [o.status for o in outcomes] == [Status.SYNCED] * landed + [Status.FAILED] * (
        len(batch) - landed
    )
    assert outcomes[-1].message.startswith("MLflow stopped answering during the sync")
