"""`validate --online` and auth refusal's own `error.code` (issue 13, item 4), against a
closed port, the log10, Arize and Google Sheets stand-ins (127.0.0.1 only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from bridge.checking import validate_online
from bridge.cli import app
from bridge.errors import AuthRefused, SourceError, TargetUnreachable
from bridge.mapping import load_mapping
from bridge.sources.gsheets.source import GSheetsSource, RetryPolicy
from tests.arize_standin import ArizeStandIn
from tests.log10_standin import Log10StandIn
from tests.servers import free_port
from tests.sheets_standin import SheetsStandIn
from tests.test_cli import SPAN, make_book, make_mapping

runner = CliRunner()
TOKEN = "log10-right-token"
WRONG = "log10-wrong-token-never-print-77aa"


@pytest.fixture
def log10() -> Iterator[Log10StandIn]:
    with Log10StandIn(token=TOKEN, org_id="org-1") as server:
        yield server


def log10_mapping(tmp_path: Path, server: Log10StandIn) -> Path:
    task = server.add_task("feedback", {"type": "object", "properties": {"f": {"type": "string"}}})
    make_book(tmp_path / "labels.xlsx", [["tag-1", "correct", 1, "fine", "alice"]])
    path = tmp_path / "log10.yaml"
    path.write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target:
  type: log10
  url: {server.url}
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


def test_online_names_an_unreachable_platform_and_still_checks_the_sheet(tmp_path: Path) -> None:
    make_book(tmp_path / "labels.xlsx", [[SPAN, "correct", 1, "fine", "alice"]])
    port = free_port()
    mapping = make_mapping(tmp_path, url=f"http://127.0.0.1:{port}")
    result = runner.invoke(app, ["validate", str(mapping), "--online"])
    assert result.exit_code == 3, result.output
    assert "  sheet labels.xlsx/Labels: ok (read 1 row; writable)" in result.stdout
    assert f"platform phoenix at http://127.0.0.1:{port} (project default): TargetUnreachable" in (
        result.stdout
    )
    plain = runner.invoke(app, ["validate", str(mapping)])
    assert plain.exit_code == 0  # offline validate never contacts the platform


def test_online_reports_a_refused_key_as_auth_refused(
    tmp_path: Path, log10: Log10StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = log10_mapping(tmp_path, log10)
    monkeypatch.setenv("LOG10_ORG_ID", "org-1")
    monkeypatch.setenv("LOG10_TOKEN", WRONG)
    result = runner.invoke(app, ["validate", str(path), "--online", "--json"])
    assert result.exit_code == 3
    body = json.loads(result.stdout)
    sheet, platform = body["online"]
    assert sheet["ok"] and sheet["part"] == "sheet"
    assert platform["part"] == "platform" and not platform["ok"]
    assert platform["error"]["type"] == "AuthRefused"
    assert platform["error"]["code"] == "auth_refused"
    assert body["exit_code"] == 3
    assert WRONG not in result.stdout + result.stderr

    monkeypatch.setenv("LOG10_TOKEN", TOKEN)
    good = runner.invoke(app, ["validate", str(path), "--online"])
    assert good.exit_code == 0, good.output
    assert f"platform log10 at {log10.url}" in good.stdout
    assert "ok (reachable; credentials accepted)" in good.stdout


def test_a_sync_refused_by_the_platform_says_auth_refused_in_json(
    tmp_path: Path, log10: Log10StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = log10_mapping(tmp_path, log10)
    monkeypatch.setenv("LOG10_ORG_ID", "org-1")
    monkeypatch.setenv("LOG10_TOKEN", WRONG)
    monkeypatch.setenv("ANNOBRIDGE_STATE_DIR", str(tmp_path / "state"))
    result = runner.invoke(app, ["sync", str(path), "--json"])
    assert result.exit_code == 3  # the documented contract: exit 3 stays
    error = json.loads(result.stdout)["error"]
    assert (error["type"], error["code"]) == ("AuthRefused", "auth_refused")
    many = runner.invoke(app, ["sync", str(path), str(path), "--json"])
    assert [m["error"]["code"] for m in json.loads(many.stdout)["mappings"]] == [
        "auth_refused",
        "auth_refused",
    ]


def test_every_error_class_has_its_own_code() -> None:
    import bridge.errors as errors

    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    codes = [c.code for c in classes]  # type: ignore[attr-defined]
    assert len(set(codes)) == len(codes)
    assert AuthRefused.code == "auth_refused" != TargetUnreachable.code


def test_online_with_the_arize_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_book(tmp_path / "labels.xlsx", [[SPAN, "correct", None, "fine", "alice"]])
    with ArizeStandIn(api_key="arize-right") as server:
        path = tmp_path / "arize.yaml"
        path.write_text(
            f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target:
  type: arize
  url: {server.url}
  model_id: m1
  start_time: 2024-11-15T00:00:00Z
annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    rules: {{labels: [correct, incorrect]}}
"""
        )
        monkeypatch.setenv("ARIZE_API_KEY", "arize-wrong")
        refused = runner.invoke(app, ["validate", str(path), "--online", "--json"])
        monkeypatch.setenv("ARIZE_API_KEY", "arize-right")
        accepted = runner.invoke(app, ["validate", str(path), "--online", "--json"])
        url = server.url
    assert refused.exit_code == 3, refused.output
    assert json.loads(refused.stdout)["online"][1]["error"]["code"] == "auth_refused"
    assert accepted.exit_code == 0, accepted.output
    platform = json.loads(accepted.stdout)["online"][1]
    assert platform["ok"] and platform["where"] == f"arize at {url} (project m1)"


def test_online_names_a_sheet_it_cannot_open_and_still_checks_the_platform(
    tmp_path: Path,
) -> None:
    key = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
    path = tmp_path / "g.yaml"
    path.write_text(
        make_mapping(tmp_path)
        .read_text()
        .replace(
            "type: excel\n  path: labels.xlsx",
            f"type: gsheet\n  spreadsheet: {key}",
        )
    )
    with SheetsStandIn() as server:  # the spreadsheet is not there (or not shared)
        sheet = GSheetsSource(
            key,
            "Labels",
            api_base=server.url,
            session=requests.Session(),
            retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5),
        )
        report = validate_online(load_mapping(path), source=sheet)
        sheet.close()
    sheet_check, platform = report.checks
    assert sheet_check.part == "sheet" and isinstance(sheet_check.error, SourceError)
    assert isinstance(platform.error, TargetUnreachable)
    assert report.exit_code == 3
