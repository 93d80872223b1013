"""The MLflow target's pure parts: env handling, values by the rules, ids, comparisons."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import requests

from bridge.errors import ConfigError, MappingError
from bridge.mapping import AnnotationSpec, parse_mapping
from bridge.records import Annotation
from bridge.registry import open_target
from bridge.rules import identifier_for
from bridge.targets.mlflow.client import connection_from_env
from bridge.targets.mlflow.config import MlflowConfig
from bridge.targets.mlflow.ids import _quote
from bridge.targets.mlflow.target import MlflowTarget
from bridge.targets.mlflow.values import (
    MAX_ASSESSMENT_ID,
    NotSendable,
    ValueRule,
    assessment_id,
    differences,
    to_value,
)

TRACE = "tr-6513270e269e0d37f2a74de452e6b438"


def annotation(label: str | None = "correct", score: float | None = None, **kw: Any) -> Annotation:
    fields: dict[str, Any] = {
        "row_index": 0,
        "name": "correctness",
        "kind": "MLflow trace",
        "target_id": TRACE,
        "label": label,
        "score": score,
        "explanation": "matches the reference",
        "annotator": "alice@example.com",
        "annotator_kind": "HUMAN",
        "identifier": identifier_for("alice@example.com"),
        "metadata": {"source": "annobridge", "sheet": "labels.xlsx", "row": 2},
    }
    fields.update(kw)
    return Annotation(**fields)


def config(**kw: Any) -> MlflowConfig:
    return MlflowConfig(type="mlflow", url="http://127.0.0.1:5000", **kw)


def spec(name: str = "correctness", labels: list[str] | None = None) -> AnnotationSpec:
    return AnnotationSpec(
        name=name,
        id_column="trace_id",
        label_column="label",
        score_column="score",
        rules={"labels": labels} if labels else {},
    )


# -- where and who: MLflow's own environment variables ------------------------------------


def test_tracking_uri_and_basic_auth_come_from_mlflows_variables() -> None:
    conn = connection_from_env(
        None,
        {
            "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000/",
            "MLFLOW_TRACKING_USERNAME": "labeler",
            "MLFLOW_TRACKING_PASSWORD": "s3cret",
            "MLFLOW_TRACKING_TOKEN": "ignored-when-basic-is-set",
        },
    )
    assert conn.base_url == "http://mlflow.internal:5000"
    assert conn.headers == {"Authorization": "Basic bGFiZWxlcjpzM2NyZXQ="}
    assert conn.verify is True


def test_a_token_is_sent_as_bearer() -> None:
    conn = connection_from_env("https://mlflow.example.com", {"MLFLOW_TRACKING_TOKEN": "tok-1"})
    assert conn.headers == {"Authorization": "Bearer tok-1"}
    assert "MLFLOW_TRACKING_TOKEN" in conn.auth_hint


def test_no_credentials_hint_names_the_variables_to_set() -> None:
    conn = connection_from_env(None, {})
    assert conn.base_url == "http://localhost:5000"
    assert conn.headers == {}
    assert "MLFLOW_TRACKING_USERNAME" in conn.auth_hint
    assert "MLFLOW_TRACKING_TOKEN" in conn.auth_hint


def test_credentials_in_the_uri_become_basic_auth_and_leave_the_url() -> None:
    conn = connection_from_env(None, {"MLFLOW_TRACKING_URI": "http://bob:p%40ss@10.0.0.5:5000"})
    assert conn.base_url == "http://10.0.0.5:5000"
    assert conn.headers["Authorization"] == "Basic Ym9iOnBAc3M="


def test_tls_variables() -> None:
    assert connection_from_env(None, {"MLFLOW_TRACKING_INSECURE_TLS": "true"}).verify is False
    assert connection_from_env(None, {"MLFLOW_TRACKING_INSECURE_TLS": "False"}).verify is True
    ca = connection_from_env(None, {"MLFLOW_TRACKING_SERVER_CERT_PATH": "/etc/ca.pem"})
    assert ca.verify == "/etc/ca.pem"
    cert = connection_from_env(None, {"MLFLOW_TRACKING_CLIENT_CERT_PATH": "/etc/me.pem"})
    assert cert.cert == "/etc/me.pem"
    with pytest.raises(ConfigError, match="exclude each other"):
        connection_from_env(
            None,
            {
                "MLFLOW_TRACKING_INSECURE_TLS": "true",
                "MLFLOW_TRACKING_SERVER_CERT_PATH": "/etc/ca.pem",
            },
        )
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_INSECURE_TLS is 'maybe'"):
        connection_from_env(None, {"MLFLOW_TRACKING_INSECURE_TLS": "maybe"})


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("sqlite:///mlflow.db", "over HTTP"),
        ("./mlruns", "over HTTP"),
        ("databricks", "Databricks is not supported"),
    ],
)
def test_a_tracking_uri_that_is_not_a_server_is_a_config_error(uri: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as err:
        connection_from_env(None, {"MLFLOW_TRACKING_URI": uri})
    assert "MLFLOW_TRACKING_URI" in str(err.value)


def test_half_a_basic_auth_pair_is_a_config_error_that_never_shows_the_password() -> None:
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_USERNAME is not set") as err:
        connection_from_env(None, {"MLFLOW_TRACKING_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in str(err.value)


def test_a_password_in_the_uri_never_shows_in_errors_or_the_fingerprint() -> None:
    with pytest.raises(ConfigError) as err:
        connection_from_env(None, {"MLFLOW_TRACKING_URI": "ftp://bob:hunter2@host"})
    assert "hunter2" not in str(err.value)
    target = MlflowTarget(
        MlflowConfig(type="mlflow"), env={"MLFLOW_TRACKING_URI": "http://bob:hunter2@host:5000"}
    )
    assert "hunter2" not in target.fingerprint()
    assert "hunter2" not in target.base_url


def test_unsupported_auth_plugins_are_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_AWS_SIGV4"):
        connection_from_env(None, {"MLFLOW_TRACKING_AWS_SIGV4": "true"})


# -- values by the rules -------------------------------------------------------------------


def test_pass_fail_labels_become_booleans() -> None:
    rule = ValueRule(value="pass_fail", positive="correct", negative="incorrect")
    assert to_value(annotation("Correct"), rule) == (True, {})
    assert to_value(annotation("incorrect", score=0.0), rule) == (False, {"score": "0"})
    assert to_value(annotation(None, score=1.0), rule) == (True, {})
    with pytest.raises(NotSendable, match="neither 'correct' \\(pass\\) nor 'incorrect'"):
        to_value(annotation("maybe"), rule)
    with pytest.raises(NotSendable, match="give the label 'correct' or 'incorrect'"):
        to_value(annotation(None, score=0.5), rule)


def test_numeric_values_take_the_score_and_keep_a_label_in_metadata() -> None:
    rule = ValueRule(value="numeric", minimum=1, maximum=5)
    assert to_value(annotation(None, score=4.0), rule) == (4.0, {})
    assert to_value(annotation("good", score=4.0), rule) == (4.0, {"label": "good"})
    assert to_value(annotation("3.5"), rule) == (3.5, {})
    with pytest.raises(NotSendable, match="above the maximum 5"):
        to_value(annotation(None, score=9.0), rule)
    with pytest.raises(NotSendable, match="below the minimum 1"):
        to_value(annotation(None, score=0.0), rule)
    with pytest.raises(NotSendable, match="is numeric: give a score"):
        to_value(annotation("great"), rule)


def test_categorical_values_take_the_option_as_written_in_the_schema() -> None:
    rule = ValueRule(value="categorical", options=("Geography", "Math"), schema="topic")
    assert to_value(annotation("geography"), rule) == ("Geography", {})
    with pytest.raises(NotSendable, match="MLflow label schema 'topic'.*Geography, Math"):
        to_value(annotation("history"), rule)
    multi = ValueRule(value="categorical_list", options=("a", "b", "c"))
    assert to_value(annotation("A, c"), multi) == (["a", "c"], {})


def test_text_values_and_their_length_limit() -> None:
    rule = ValueRule(value="text", max_length=10)
    assert to_value(annotation("short", score=0.5), rule) == ("short", {"score": "0.5"})
    with pytest.raises(NotSendable, match="takes at most 10"):
        to_value(annotation("much too long for it"), rule)


def test_auto_sends_the_label_else_the_score() -> None:
    assert to_value(annotation("fine"), ValueRule()) == ("fine", {})
    assert to_value(annotation(None, score=0.25), ValueRule()) == (0.25, {})


# -- what the target sends -----------------------------------------------------------------


def test_payload_is_a_human_feedback_with_string_metadata() -> None:
    target = MlflowTarget(
        config(values={"correctness": "pass_fail"}),
        specs=[spec(labels=["correct", "incorrect"])],
        env={},
    )
    sent = target.payload(annotation("incorrect", score=0.0))
    assessment = sent["assessment"]
    assert sent["trace_id"] == TRACE
    assert assessment["feedback"] == {"value": False}
    assert assessment["source"] == {"source_type": "HUMAN", "source_id": "alice@example.com"}
    assert assessment["rationale"] == "matches the reference"
    assert assessment["metadata"] == {
        "source": "annobridge",
        "sheet": "labels.xlsx",
        "row": "2",
        "score": "0",
    }
    assert all(isinstance(v, str) for v in assessment["metadata"].values())
    assert assessment["assessment_id"] == assessment_id(
        TRACE, "correctness", identifier_for("alice@example.com")
    )


def test_expectations_keep_their_explanation_in_metadata() -> None:
    # MLflow drops the rationale of an expectation without a word.
    target = MlflowTarget(config(expectations=["correctness"]), specs=[spec()], env={})
    assessment = target.payload(annotation("Paris"))["assessment"]
    assert assessment["expectation"] == {"value": "Paris"}
    assert "rationale" not in assessment
    assert assessment["metadata"]["rationale"] == "matches the reference"


@pytest.mark.parametrize(
    ("kind", "source_type"), [("HUMAN", "HUMAN"), ("LLM", "LLM_JUDGE"), ("CODE", "CODE")]
)
def test_annotator_kinds_map_to_mlflow_source_types(kind: str, source_type: str) -> None:
    target = MlflowTarget(config(), specs=[spec()], env={})
    sent = target.payload(annotation(annotator_kind=kind))
    assert sent["assessment"]["source"]["source_type"] == source_type


def test_what_mlflow_would_store_wrongly_is_refused_before_sending() -> None:
    target = MlflowTarget(config(), specs=[spec()], env={})
    unknown_kind = target.payload(annotation(annotator_kind="ROBOT"))
    assert "UNSPECIFIED" in unknown_kind["problem"]
    long_source = target.payload(annotation(annotator="x" * 251))
    assert "at most 250" in long_source["problem"]


def test_request_id_mode_records_the_request_id_and_has_no_trace_yet() -> None:
    target = MlflowTarget(
        config(id_kind="client_request_id", experiment="demo"), specs=[spec()], env={}
    )
    assert target.kind == "client request"
    sent = target.payload(annotation(target_id="req-0001", kind="client request"))
    assert sent["client_request_id"] == "req-0001"
    assert "assessment_id" not in sent["assessment"]
    assert sent["assessment"]["metadata"]["client_request_id"] == "req-0001"


def test_assessment_ids_are_stable_short_and_distinct() -> None:
    a = assessment_id(TRACE, "correctness", "annobridge:alice")
    assert a == assessment_id(TRACE, "correctness", "annobridge:alice")
    assert len(a) <= MAX_ASSESSMENT_ID
    assert a.startswith("a-")
    others = {
        assessment_id(TRACE, "helpfulness", "annobridge:alice"),
        assessment_id(TRACE, "correctness", "annobridge:bob"),
        assessment_id("tr-" + "1" * 32, "correctness", "annobridge:alice"),
    }
    assert a not in others and len(others) == 3


def test_filter_literals_escape_quotes_and_backslashes() -> None:
    assert _quote("req-1") == "'req-1'"
    assert _quote("it's") == "'it\\'s'"
    assert _quote("a\\b") == "'a\\\\b'"


def test_differences_ignore_extra_metadata_and_int_vs_float() -> None:
    wanted = {
        "assessment_name": "q",
        "source": {"source_type": "HUMAN", "source_id": "a"},
        "feedback": {"value": 4.0},
        "metadata": {"row": "2"},
    }
    stored = {**wanted, "feedback": {"value": 4}, "metadata": {"row": "2", "by": "ui"}}
    assert differences(wanted, stored) == []
    assert differences(wanted, {**stored, "feedback": {"value": True}}) == ["value"]
    as_expectation = {k: v for k, v in stored.items() if k != "feedback"}
    assert differences(wanted, {**as_expectation, "expectation": {"value": 4}}) == ["kind"]
    moved = {**stored, "source": {"source_type": "SOURCE_TYPE_UNSPECIFIED", "source_id": "a"}}
    assert differences(wanted, moved) == ["source"]
    assert differences(wanted, {**stored, "metadata": {}}) == ["metadata"]


def test_fingerprint_changes_with_how_values_are_sent() -> None:
    plain = MlflowTarget(config(), specs=[spec()], env={})
    as_pass_fail = MlflowTarget(config(values={"correctness": "pass_fail"}), specs=[spec()], env={})
    assert plain.fingerprint() != as_pass_fail.fingerprint()
    assert plain.fingerprint().startswith("mlflow|http://127.0.0.1:5000|")


# -- the mapping ----------------------------------------------------------------------------


def mapping(tmp_path: Path, target: dict[str, Any], name: str = "correctness") -> Any:
    return parse_mapping(
        {
            "source": {"type": "csv", "path": "labels.csv"},
            "target": {"type": "mlflow", "url": "http://127.0.0.1:5000", **target},
            "annotations": [{"name": name, "id_column": "trace_id", "label_column": "label"}],
        },
        tmp_path / "mapping.yaml",
    )


def test_the_mapping_opens_an_mlflow_target(tmp_path: Path) -> None:
    target = open_target(mapping(tmp_path, {"experiment": "demo"}), env={})
    assert isinstance(target, MlflowTarget)
    assert target.experiment == "demo"


def test_settings_for_unknown_annotations_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="target.values.*'helpfulness' is not the name"):
        open_target(mapping(tmp_path, {"values": {"helpfulness": "numeric"}}), env={})


def test_request_ids_need_an_experiment(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="target.experiment.*MLFLOW_EXPERIMENT_NAME"):
        open_target(mapping(tmp_path, {"id_kind": "client_request_id"}), env={})
    target = open_target(
        mapping(tmp_path, {"id_kind": "client_request_id"}),
        env={"MLFLOW_EXPERIMENT_NAME": "from-env"},
    )
    assert isinstance(target, MlflowTarget) and target.experiment == "from-env"


def test_names_longer_than_mlflow_keeps_are_a_mapping_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="annotations\\[0\\].name.*at most 250"):
        open_target(mapping(tmp_path, {}, name="n" * 251), env={})


def test_pass_fail_labels_must_differ(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="the two labels must differ"):
        mapping(tmp_path, {"pass_fail": {"correctness": ["Yes", "yes"]}})


def test_mlflow_id_patterns() -> None:
    import re

    trace = MlflowConfig.ID_PATTERNS["MLflow trace"][0]
    assert re.match(trace, TRACE)
    assert re.match(trace, "6513270e269e0d37f2a74de452e6b438")  # logged by MLflow 2
    assert not re.match(trace, "tr-6513270e")
    assert not re.match(trace, TRACE.upper())
    request = MlflowConfig.ID_PATTERNS["client request"][0]
    assert re.match(request, "req-0001") and re.match(request, "it's")
    assert not re.match(request, "x" * 51)
    assert not re.match(request, " req")


def test_problems_make_rows_invalid_before_anything_is_sent() -> None:
    # The pipeline calls problems() while planning: rows with any are invalid, never sent.
    target = MlflowTarget(
        config(values={"correctness": "pass_fail"}),
        specs=[spec(labels=["correct", "incorrect"])],
        env={},
    )
    assert target.problems(annotation("correct")) == []
    assert target.problems(annotation("maybe")) == [
        "label 'maybe' is neither 'correct' (pass) nor 'incorrect' (fail) for 'correctness'"
    ]
    assert "UNSPECIFIED" in target.problems(annotation(annotator_kind="robot"))[0]


# -- secrets: a server that echoes credentials ----------------------------------------------


class _EchoingMlflow:
    """An MLflow stand-in whose errors echo the Authorization header, decoded too."""

    def __init__(self, refuse: bool) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _echo(self) -> str:
                auth = self.headers.get("Authorization", "")
                scheme, _, value = auth.partition(" ")
                decoded = base64.b64decode(value).decode() if scheme == "Basic" else ""
                return f"you sent {auth} ({decoded})"

            def do_GET(self) -> None:
                if refuse:
                    return self._send(
                        401, {"error_code": "UNAUTHENTICATED", "message": self._echo()}
                    )
                return self._send(200, {"experiment": {"experiment_id": "1"}})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": self._echo()})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("refuse", [True, False], ids=["auth-refused", "row-rejected"])
@pytest.mark.parametrize("scheme", ["basic", "token"])
def test_credentials_echoed_by_the_server_never_reach_output_or_the_sheet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refuse: bool, scheme: str
) -> None:
    from typer.testing import CliRunner

    from bridge.cli import app

    password, token = "planted-mlflow-password-77x", "planted-mlflow-token-31q"
    if scheme == "basic":
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "labeler")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    server = _EchoingMlflow(refuse)
    try:
        book = openpyxl.Workbook()
        ws = book.active
        assert ws is not None
        ws.title = "Labels"
        ws.append(["trace_id", "label"])
        ws.append([TRACE, "correct"])
        book.save(tmp_path / "labels.xlsx")
        mapping = tmp_path / "m.yaml"
        mapping.write_text(
            "source: {type: excel, path: labels.xlsx}\n"
            f'target: {{type: mlflow, url: "{server.url}", experiment: demo}}\n'
            "annotations:\n"
            "  - {name: correctness, id_column: trace_id, label_column: label, annotator: sme}\n"
        )
        outputs = []
        for args in (["--json"], []):
            result = CliRunner().invoke(app, ["sync", str(mapping), *args])
            assert result.exit_code == (3 if refuse else 1), result.output
            outputs.append(result.stdout + result.stderr)
    finally:
        server.close()
    cells = [str(v) for row in openpyxl.load_workbook(tmp_path / "labels.xlsx").active.iter_rows(
        values_only=True) for v in row]  # fmt: skip
    everything = "\n".join(outputs + cells)
    assert "***" in everything  # the server did echo, and it was blanked
    basic = base64.b64encode(f"labeler:{password}".encode()).decode()
    for secret in (password, token, basic):
        assert secret not in everything


def test_mlflow_keys_get_did_you_mean_hints(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="'experment'; did you mean 'experiment'"):
        mapping(tmp_path, {"experment": "demo"})
    with pytest.raises(MappingError, match="set MLFLOW_TRACKING_PASSWORD in the environment"):
        mapping(tmp_path, {"password": "x"})


def test_a_refused_trace_batch_names_what_and_the_fix() -> None:
    from bridge.targets.mlflow.export import _full_texts, full_traces

    class Refusing:
        def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
            response = requests.Response()
            response.status_code = 500
            response._content = b'{"message": "database is locked"}'
            return response

    with pytest.raises(ConfigError) as err:
        _full_texts(Refusing(), ["t1"])  # type: ignore[arg-type]
    assert str(err.value) == (
        "MLflow did not return the full traces (500 database is locked); export without "
        "--full-text to use the previews"
    )
    with pytest.raises(ConfigError, match=r"^MLflow did not return the queue's traces \(500 "):
        list(full_traces(Refusing(), ["t1"], "the queue's traces"))  # type: ignore[arg-type]
    assert list(full_traces(Refusing(), [], "nothing")) == []  # type: ignore[arg-type]
