"""The small things of issue 13, item 10: each said once, in good English, with the fix."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from bridge.cli import app
from bridge.errors import MappingError, SourceUnavailable
from bridge.mapping import load_mapping
from bridge.sources.gsheets.source import GSheetsSource, RetryPolicy
from bridge.state import RunLock
from tests.servers import free_port
from tests.sheets_standin import SheetsStandIn
from tests.test_cli import SPAN, make_book, make_mapping
from tests.test_gsheets_auth import KEY, SPEC, private_key, service_account, write_json

__all__ = ["private_key"]  # the module-scoped fixture, used below
runner = CliRunner()


def mlflow_book(path: Path, column: str, ids: list[str]) -> None:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Labels"
    ws.append([column, "label", "helpfulness"])
    for i in ids:
        ws.append([i, "correct", 4])
    book.save(path)


def mlflow_mapping(tmp_path: Path, id_kind: str, column: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target:
  type: mlflow
  url: http://127.0.0.1:{free_port()}
  experiment: exp
  id_kind: {id_kind}
annotations:
  - name: correctness
    id_column: {column}
    label_column: label
    rules: {{labels: [correct, incorrect]}}
  - name: helpfulness
    id_column: {column}
    score_column: helpfulness
    rules: {{score_min: 1, score_max: 5}}
"""
    )
    return path


def test_a_problem_every_entry_of_a_row_finds_is_said_once(tmp_path: Path) -> None:
    mlflow_book(tmp_path / "labels.xlsx", "trace_id", ["tr-123"])
    path = mlflow_mapping(tmp_path, "trace_id", "trace_id")
    result = runner.invoke(app, ["validate", str(path), "--json"])
    [issue] = json.loads(result.stdout)["issues"]
    assert issue["sheet_row"] == 2 and issue["status"] == "invalid"
    assert issue["message"].count("'tr-123'") == 1, issue["message"]
    assert "is not an MLflow trace id" in issue["message"]  # not "a MLflow"


def test_one_row_is_one_row(tmp_path: Path) -> None:
    make_book(tmp_path / "labels.xlsx", [[SPAN, "correct", 1, "fine", "alice"]])
    result = runner.invoke(app, ["validate", str(make_mapping(tmp_path))])
    assert "validated labels.xlsx/Labels -> phoenix: 1 row\n" in result.stdout


@pytest.mark.parametrize(
    "command", [["validate"], ["sync"], ["init"], ["export"], ["rules", "pull"]]
)
def test_help_shows_no_typer_placeholders(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    usage = result.stdout.splitlines()[0]
    assert "{" not in usage and "}" not in usage, usage
    for placeholder in ("<list[", "<path>", "<str>", "<int range>"):
        assert placeholder not in result.stdout, placeholder


@pytest.mark.parametrize(
    ("section", "typo", "meant"),
    [("target", "phoenixx", "phoenix"), ("target", "mlfow", "mlflow"), ("source", "exel", "excel")],
)
def test_a_mistyped_type_gets_did_you_mean(
    tmp_path: Path, section: str, typo: str, meant: str
) -> None:
    path = make_mapping(tmp_path)
    text = path.read_text()
    old = "type: phoenix" if section == "target" else "type: excel"
    path.write_text(text.replace(old, f"type: {typo}"))
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    assert f"key '{section}.type': unknown type '{typo}'; did you mean '{meant}'?" in str(err.value)


def test_the_lock_file_is_removed_when_the_run_ends(tmp_path: Path) -> None:
    with RunLock(tmp_path, "x", "m.yaml") as lock:
        assert lock.path.exists()
    assert not list(tmp_path.iterdir())
    with RunLock(tmp_path, "x", "m.yaml"):  # and it is taken again
        pass
    assert not list(tmp_path.iterdir())


def test_the_lock_file_is_removed_after_a_sync(tmp_path: Path) -> None:
    make_book(tmp_path / "labels.xlsx", [[SPAN, "correct", 1, "fine", "alice"]])
    mapping = make_mapping(tmp_path, extra_source=f"state_dir: {tmp_path / 'state'}")
    text = mapping.read_text().replace("  state_dir:", "state_dir:")
    mapping.write_text(text)
    runner.invoke(app, ["sync", str(mapping)])  # exit 3: the port is closed
    state = tmp_path / "state"
    assert state.is_dir() and list(state.iterdir())  # the run used it (its journal)
    assert not list(state.glob("*.lock"))


def test_json_names_the_platform_url_and_project(tmp_path: Path) -> None:
    make_book(tmp_path / "labels.xlsx", [[SPAN, "correct", 1, "fine", "alice"]])
    port = free_port()
    mapping = make_mapping(tmp_path, url=f"http://127.0.0.1:{port}")
    body = json.loads(runner.invoke(app, ["validate", str(mapping), "--json"]).stdout)
    assert (body["platform"], body["url"], body["project"]) == (
        "phoenix",
        f"http://127.0.0.1:{port}",
        "default",
    )
    assert body["target"].startswith("phoenix|")  # the old key stays
    mlflow_book(tmp_path / "labels.xlsx", "request_id", ["req-1"])
    path = mlflow_mapping(tmp_path, "client_request_id", "request_id")
    body = json.loads(runner.invoke(app, ["validate", str(path), "--json"]).stdout)
    assert (body["platform"], body["project"]) == ("mlflow", "exp")


@pytest.mark.parametrize(
    ("mapping", "env", "expected"),
    [
        (
            "arize-graphql.yaml",
            {"ARIZE_MODEL_ID": "model-7", "ARIZE_APP_URL": "https://user:pw@arize.example"},
            ("arize", "https://***@arize.example", "model-7"),
        ),
        (
            "arize-rest.yaml",
            {"ARIZE_PROJECT_ID": "proj-9", "ARIZE_API_URL": "https://api.arize.example"},
            ("arize", "https://api.arize.example", "proj-9"),
        ),
        (
            "log10-feedback.yaml",
            {"LOG10_TASK_ID": "task-3"},
            ("log10", "https://log10.io", "task-3"),
        ),
    ],
)
def test_json_names_the_place_on_every_platform(
    mapping: str,
    env: dict[str, str],
    expected: tuple[str, str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bridge.registry import open_target
    from bridge.targets.base import describe

    for name, value in {
        **env,
        "ARIZE_API_KEY": "k",
        "LOG10_TOKEN": "t",
        "LOG10_ORG_ID": "o",
    }.items():
        monkeypatch.setenv(name, value)
    target = open_target(load_mapping(Path(__file__).parent.parent / "mappings" / mapping))
    try:
        found = describe(target)
    finally:
        target.close()
    assert (found["platform"], found["url"], found["project"]) == expected


def test_a_target_that_does_not_say_where_it_writes_is_described_by_its_name() -> None:
    from bridge.targets.base import describe

    class Bare:
        name = "custom"

    assert describe(Bare()) == {"platform": "custom", "url": None, "project": None}  # type: ignore[arg-type]


def test_google_sign_in_out_of_reach_names_the_network_not_the_quota(
    tmp_path: Path, private_key: str
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/token"
    key = write_json(tmp_path / "sa.json", service_account(private_key, closed))
    with SheetsStandIn(require_auth=True) as server:
        server.add_spreadsheet(KEY, "SME labels", sheets=[("Labels", 0)])
        source = GSheetsSource(
            KEY,
            "Labels",
            credentials=key,
            api_base=server.url,
            retry=RetryPolicy(retries=2, sleep=lambda s: None, rand=lambda: 0.5),
        )
        with pytest.raises(SourceUnavailable) as err:
            source.read(SPEC)
        source.close()
    text = str(err.value)
    assert "cannot reach Google's sign-in service" in text
    assert "Nothing answered: Google cannot be reached from here" in text
    assert "quota" not in text
