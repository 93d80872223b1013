"""A platform URL that answers 200 with something that is not the platform's JSON: an SSO
sign-in page in front of the server, a proxy's page, a web app at the wrong URL (issue 13: no
traceback for a user error). Every read path says so, exit 3, ``error.code`` unexpected_answer,
naming the URL (no credentials, no query), the status, the content type and the page's title.

Everything runs against a tiny HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openpyxl
import pytest
import requests
from typer.testing import CliRunner

from bridge import http
from bridge.cli import app
from bridge.errors import EXIT_UNAVAILABLE, TargetUnreachable, UnexpectedAnswer
from tests.test_cli import SPAN, make_book, make_mapping

runner = CliRunner()
TRACE = "tr-0123456789abcdef0123456789abcdef"
SIGN_IN = (
    b"<!DOCTYPE html><html><head><meta charset='utf-8'>\n<title>\n  Sign in &middot; Acme SSO"
    b"\n</title></head><body><form action='/login'>password</form></body></html>"
)
# (method, path) -> (status, content type, body)
Answer = Callable[[str, str], tuple[int, str, bytes]]


def sign_in_page(method: str, path: str) -> tuple[int, str, bytes]:
    return 200, "text/html; charset=utf-8", SIGN_IN


class WebPage:
    """Something that is not the platform at the platform's URL: ``answer`` says what each
    request gets (by default, a sign-in page with 200 for every path and method)."""

    def __init__(self, answer: Answer = sign_in_page) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.paths.append(self.path)
                status, kind, body = answer(self.command, self.path)
                self.send_response(status)
                if status in (301, 302, 303):
                    self.send_header("Location", body.decode())
                    body = b""
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def page() -> Iterator[WebPage]:
    server = WebPage()
    yield server
    server.close()


def json_answer(body: object) -> Answer:
    data = json.dumps(body).encode()
    return lambda method, path: (200, "application/json", data)


def assert_says_not_json(output: str, url: str) -> None:
    assert "Traceback" not in output
    assert "UnexpectedAnswer" in output, output
    assert f"at {url}/" in output, output
    assert "answered 200 with text/html" in output, output
    assert '("Sign in · Acme SSO"), not JSON' in output, output


# -- the helper ---------------------------------------------------------------------------


def test_json_of_names_url_status_type_and_title_never_the_query_or_credentials(
    page: WebPage,
) -> None:
    secret = "s3cr3t-query-token-91"
    url = page.url.replace("http://", "http://user:pw-never-shown@")
    response = requests.get(f"{url}/v1/projects?api_key={secret}", timeout=5)
    with pytest.raises(UnexpectedAnswer) as err:
        http.json_of(response, platform="Phoenix", fix="set target.url")
    message = str(err.value)
    assert message == (
        f'Phoenix at {page.url}/v1/projects answered 200 with text/html ("Sign in · Acme SSO"), '
        "not JSON: set target.url"
    )
    assert secret not in message and "pw-never-shown" not in message
    assert err.value.exit_code == EXIT_UNAVAILABLE and err.value.code == "unexpected_answer"
    assert isinstance(err.value, TargetUnreachable)  # send loops keep what was confirmed


def test_a_redirect_to_a_sign_in_page_names_both_addresses() -> None:
    def answer(method: str, path: str) -> tuple[int, str, bytes]:
        if path.startswith("/sso/login"):
            return sign_in_page(method, path)
        return 302, "text/plain", b"/sso/login?state=never-shown-state"

    server = WebPage(answer)
    try:
        response = requests.get(f"{server.url}/api/2.0/mlflow/experiments/get", timeout=5)
        with pytest.raises(UnexpectedAnswer) as err:
            http.json_object(response, platform="MLflow", fix="fix it")
    finally:
        server.close()
    message = str(err.value)
    assert message.startswith(
        f"MLflow at {server.url}/api/2.0/mlflow/experiments/get (redirected to "
        f"{server.url}/sso/login) answered 200 with text/html"
    )
    assert "never-shown-state" not in message


@pytest.mark.parametrize(
    ("content_type", "body", "described"),
    [
        ("text/plain", b"", "an empty body (text/plain)"),
        ("", b"", "an empty body"),
        ("text/plain", b"Bad gateway\n\n  try later " + b"x" * 200, 'text/plain ("Bad gateway'),
        ("text/html", b"<html><body><h1>Oops</h1></body></html>", 'text/html ("Oops")'),
    ],
)
def test_the_excerpt_is_short_and_tells_the_kind_of_page(
    content_type: str, body: bytes, described: str
) -> None:
    server = WebPage(lambda m, p: (200, content_type, body))
    try:
        response = requests.get(f"{server.url}/x", timeout=5)
    finally:
        server.close()
    with pytest.raises(UnexpectedAnswer) as err:
        http.json_of(response, platform="P", fix="f")
    assert f"answered 200 with {described}" in str(err.value)
    assert len(str(err.value)) < 200


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([1, 2], "(a list where an object was expected)"),
        ({"data": "x"}, "(its 'data' is a string where a list was expected)"),
        ({"data": ["x"]}, "(its 'data' holds a string where an object was expected)"),
    ],
)
def test_json_of_the_wrong_shape(body: object, says: str) -> None:
    server = WebPage(json_answer(body))
    try:
        response = requests.get(f"{server.url}/v1/projects", timeout=5)
    finally:
        server.close()
    with pytest.raises(UnexpectedAnswer) as err:
        answer = http.json_object(response, platform="Phoenix", fix="f")
        http.json_items(answer, "data", response, platform="Phoenix", fix="f")
    assert str(err.value) == (
        f"Phoenix at {server.url}/v1/projects answered 200 with JSON that is not what its API "
        f"answers {says}: f"
    )


# -- every read command, Phoenix and MLflow ---------------------------------------------------


def mlflow_mapping(tmp_path: Path, url: str) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = "Labels"
    ws.append(["trace_id", "label", "annotator"])
    ws.append([TRACE, "correct", "alice"])
    ws.append([TRACE, "incorrect", "bob"])
    book.save(tmp_path / "labels.xlsx")
    path = tmp_path / "mlflow.yaml"
    path.write_text(
        "source: {type: excel, path: labels.xlsx, worksheet: Labels}\n"
        f'target: {{type: mlflow, url: "{url}", experiment: demo}}\n'
        "annotations:\n"
        "  - name: correctness\n"
        "    id_column: trace_id\n"
        "    label_column: label\n"
        "    annotator_column: annotator\n"
        "    rules: {labels: [correct, incorrect]}\n"
    )
    return path


def phoenix_mapping(tmp_path: Path, url: str) -> Path:
    make_book(
        tmp_path / "labels.xlsx",
        [[SPAN, "correct", 1, "fine", "alice"], [SPAN, "incorrect", 0, "no", "bob"]],
    )
    return make_mapping(tmp_path, url=url)


MAPPINGS = {"phoenix": phoenix_mapping, "mlflow": mlflow_mapping}
COMMANDS = {  # the command's words, then the options after the mapping
    "sync": (["sync"], []),
    "validate --online": (["validate"], ["--online"]),
    "export": (["export"], []),
    "rules pull": (["rules", "pull"], []),
    "agreement --judge": (["agreement"], ["--no-write", "--judge", "correctness"]),
}


@pytest.mark.parametrize("platform", sorted(MAPPINGS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_read_command_says_the_url_is_not_the_api(
    tmp_path: Path, page: WebPage, platform: str, command: str
) -> None:
    mapping = MAPPINGS[platform](tmp_path, page.url)
    before = (tmp_path / "labels.xlsx").read_bytes()
    head, tail = COMMANDS[command]
    args = [*head, str(mapping), *tail]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert_says_not_json(result.output, page.url)
    assert "reaches something that is not" in result.output and "sign-in page" in result.output
    assert page.paths  # it did ask the server
    if command != "sync":
        assert (tmp_path / "labels.xlsx").read_bytes() == before

    as_json = runner.invoke(app, [*args, "--json"])
    assert as_json.exit_code == EXIT_UNAVAILABLE, as_json.output
    body = json.loads(as_json.stdout)
    error = body["online"][1]["error"] if command == "validate --online" else body["error"]
    assert (error["type"], error["code"]) == ("UnexpectedAnswer", "unexpected_answer")
    assert f"at {page.url}/" in error["message"]


def test_a_sync_into_a_sign_in_page_sends_nothing_and_leaves_rows_pending(
    tmp_path: Path, page: WebPage
) -> None:
    mapping = phoenix_mapping(tmp_path, page.url)
    result = runner.invoke(app, ["sync", str(mapping)])
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    # the check before sending read the answer: nothing was POSTed as annotations
    assert not [p for p in page.paths if "annotations" in p and "sync=" in p]
    ws = openpyxl.load_workbook(tmp_path / "labels.xlsx").active
    assert ws is not None
    header = [c.value for c in ws[1]]
    assert "sync_status" not in header or all(
        row[header.index("sync_status")] in (None, "") for row in ws.iter_rows(2, values_only=True)
    )


# -- JSON of the wrong shape: one read path each ------------------------------------------


def test_phoenix_spans_as_a_list_is_unexpected(tmp_path: Path) -> None:
    def answer(method: str, path: str) -> tuple[int, str, bytes]:
        if path.startswith("/v1/projects/default/spans"):
            return 200, "application/json", b"[]"
        return 200, "application/json", json.dumps({"data": {"id": "UHJvamVjdDox"}}).encode()

    server = WebPage(answer)
    try:
        result = runner.invoke(app, ["export", str(phoenix_mapping(tmp_path, server.url))])
        url = server.url
    finally:
        server.close()
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    assert "Traceback" not in result.output
    assert f"Phoenix at {url}/v1/projects/default/spans answered 200 with JSON" in result.output
    assert "(a list where an object was expected)" in result.output


def test_mlflow_traces_as_a_string_is_unexpected(tmp_path: Path) -> None:
    def answer(method: str, path: str) -> tuple[int, str, bytes]:
        if "experiments/get-by-name" in path:
            body: object = {"experiment": {"experiment_id": "1"}}
        elif "label-schemas" in path:
            body = {"label_schemas": []}
        else:
            body = {"traces": "x"}
        return 200, "application/json", json.dumps(body).encode()

    server = WebPage(answer)
    try:
        result = runner.invoke(app, ["export", str(mlflow_mapping(tmp_path, server.url))])
        url = server.url
    finally:
        server.close()
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    assert "Traceback" not in result.output
    assert f"MLflow at {url}/api/3.0/mlflow/traces/search answered 200 with JSON" in result.output
    assert "(its 'traces' is a string where a list was expected)" in result.output


def test_mlflow_experiment_as_a_list_is_unexpected(tmp_path: Path) -> None:
    server = WebPage(json_answer({"experiment": ["1"]}))
    try:
        result = runner.invoke(
            app, ["validate", str(mlflow_mapping(tmp_path, server.url)), "--online"]
        )
    finally:
        server.close()
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    assert "Traceback" not in result.output
    assert "(its 'experiment' is not an object where one was expected)" in result.output


# -- Arize and log10 ----------------------------------------------------------------------


def arize_mapping(tmp_path: Path, url: str, api: str) -> Path:
    make_book(tmp_path / "labels.xlsx", [[SPAN, "correct", None, "fine", "alice"]])
    where = (
        "model_id: m1\n  start_time: 2024-11-15T00:00:00Z"
        if api == "graphql"
        else (
            "project_id: p1\n  start_time: 2024-11-15T00:00:00Z\n  end_time: 2024-11-16T00:00:00Z"
        )
    )
    path = tmp_path / "arize.yaml"
    path.write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target:
  type: arize
  api: {api}
  url: {url}
  {where}
annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    rules: {{labels: [correct, incorrect]}}
"""
    )
    return path


@pytest.mark.parametrize("command", [["sync"], ["validate", "--online"]])
def test_arize_graphql_behind_a_sign_in_page(
    tmp_path: Path, page: WebPage, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("ARIZE_API_KEY", "arize-key-never-shown")
    mapping = arize_mapping(tmp_path, page.url, "graphql")
    result = runner.invoke(app, [command[0], str(mapping), *command[1:], "--json"])
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    body = json.loads(result.stdout)
    error = body["online"][1]["error"] if len(command) > 1 else body["error"]
    assert error["code"] == "unexpected_answer"
    assert error["message"].startswith(f"Arize at {page.url}/graphql answered 200 with text/html")
    assert "arize-key-never-shown" not in result.output


def test_arize_rest_behind_a_sign_in_page_is_not_synced(
    tmp_path: Path, page: WebPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARIZE_API_KEY", "arize-key-never-shown")
    mapping = arize_mapping(tmp_path, page.url, "rest")
    result = runner.invoke(app, ["sync", str(mapping)])
    assert result.exit_code == EXIT_UNAVAILABLE, result.output  # was 0: every row "synced"
    assert_says_not_json(result.output, page.url)
    assert f"Arize at {page.url}/v2/spans/annotate" in result.output


def test_arize_graphql_that_turns_into_a_sign_in_page_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test query is answered as GraphQL; the mutations get the sign-in page: the rows
    are not taken for rejected by Arize, the run stops as unreachable."""

    def answer(method: str, path: str) -> tuple[int, str, bytes]:
        if answered:
            return sign_in_page(method, path)
        answered.append(path)
        return 200, "application/json", b'{"data": {"__typename": "Query"}}'

    answered: list[str] = []
    server = WebPage(answer)
    try:
        monkeypatch.setenv("ARIZE_API_KEY", "arize-key-never-shown")
        mapping = arize_mapping(tmp_path, server.url, "graphql")
        result = runner.invoke(app, ["sync", str(mapping), "--json"])
    finally:
        server.close()
    assert result.exit_code == EXIT_UNAVAILABLE, result.output  # was 1: rows "rejected"
    assert json.loads(result.stdout)["error"]["code"] == "unexpected_answer"
    assert server.paths == ["/graphql", "/graphql"]


def log10_mapping(tmp_path: Path, url: str, task: str = "t1") -> Path:
    make_book(tmp_path / "labels.xlsx", [["tag-1", "correct", 1, "fine", "alice"]])
    path = tmp_path / "log10.yaml"
    path.write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target:
  type: log10
  url: {url}
  task_id: {task}
  json_values: {{f: label}}
annotations:
  - name: feedback
    id_column: span_id
    label_column: label
    rules: {{labels: [correct, incorrect]}}
"""
    )
    return path


@pytest.mark.parametrize("command", [["sync"], ["validate", "--online"], ["rules", "pull"]])
def test_log10_behind_a_sign_in_page(
    tmp_path: Path, page: WebPage, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("LOG10_ORG_ID", "org-1")
    monkeypatch.setenv("LOG10_TOKEN", "log10-token-never-shown")
    mapping = log10_mapping(tmp_path, page.url)
    head = 2 if command[0] == "rules" else 1
    result = runner.invoke(app, [*command[:head], str(mapping), *command[head:]])
    assert result.exit_code == EXIT_UNAVAILABLE, result.output  # was 2, a "config" error
    assert_says_not_json(result.output, page.url)
    assert f"log10 at {page.url}/api/v1/feedback_task/t1" in result.output
    assert "log10-token-never-shown" not in result.output


def test_log10_feedback_answered_with_a_page_is_not_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task reads fine, then the create answers a page: the row is not "synced" with an
    empty id (as before), and the read-back that follows says it could not confirm it."""
    task = {"id": "t1", "json_schema": {"type": "object", "properties": {"f": {"type": "string"}}}}

    def answer(method: str, path: str) -> tuple[int, str, bytes]:
        if method == "GET" and path.startswith("/api/v1/feedback_task/"):
            return 200, "application/json", json.dumps(task).encode()
        return sign_in_page(method, path)

    server = WebPage(answer)
    try:
        monkeypatch.setenv("LOG10_ORG_ID", "org-1")
        monkeypatch.setenv("LOG10_TOKEN", "log10-token-never-shown")
        result = runner.invoke(app, ["sync", str(log10_mapping(tmp_path, server.url)), "--json"])
    finally:
        server.close()
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert (body["counts"]["synced"], body["counts"]["failed"]) == (0, 1), body
    assert "not JSON" in body["issues"][0]["message"]
    assert "log10-token-never-shown" not in result.output


# -- Google Sheets behind a proxy's page --------------------------------------------------


@pytest.mark.parametrize("by", ["worksheet", "gid"])
def test_a_sheets_api_that_answers_a_page_is_source_unavailable(page: WebPage, by: str) -> None:
    from bridge.errors import SourceUnavailable
    from bridge.sources.gsheets.source import GSheetsSource, RetryPolicy
    from tests.test_gsheets import KEY, SPEC

    where = {"worksheet": "Labels"} if by == "worksheet" else {"gid": 0}
    src = GSheetsSource(
        KEY,
        api_base=page.url,
        session=requests.Session(),
        retry=RetryPolicy(retries=0, sleep=lambda s: None),
        **where,  # type: ignore[arg-type]
    )
    with src, pytest.raises(SourceUnavailable) as err:
        src.read(SPEC)
    message = str(err.value)
    assert message.startswith(f"Google Sheet {KEY}, worksheet ")
    assert "not JSON" in message and "HTTPS_PROXY" in message and "Nothing was sent." in message
    if by == "gid":  # read by annobridge itself: the URL and the page are named
        assert f"at {page.url}/v4/spreadsheets/{KEY}/values:batchGetByDataFilter" in message
        assert '("Sign in · Acme SSO")' in message


def answer_of(body: bytes, kind: str = "application/json") -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = body
    response.url = "http://127.0.0.1:1/v1/projects?token=s3cret"
    response.headers["Content-Type"] = kind
    return response


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"null", "null where an object"),
        (b"true", "a boolean where an object"),
        (b"3.5", "a number where an object"),
        (b'"text"', "a string where an object"),
        (b"[1]", "a list where an object"),
    ],
)
def test_json_of_the_wrong_kind_names_what_came(body: bytes, named: str) -> None:
    with pytest.raises(UnexpectedAnswer) as err:
        http.json_object(answer_of(body), platform="Phoenix", fix="set target.url")
    message = str(err.value)
    assert f"({named} was expected)" in message
    assert "http://127.0.0.1:1/v1/projects answered 200" in message and "s3cret" not in message
    assert message.endswith(": set target.url")


def test_a_long_page_is_cut_to_a_short_excerpt() -> None:
    text = ("word " * 100).encode()
    with pytest.raises(UnexpectedAnswer) as err:
        http.json_of(answer_of(text, "text/plain"), platform="MLflow", fix="fix it")
    excerpt = str(err.value).split('text/plain ("', 1)[1].split('")', 1)[0]
    assert len(excerpt) == http.EXCERPT_CHARS and excerpt.endswith("…")
