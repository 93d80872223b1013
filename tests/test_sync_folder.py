"""`annobridge sync FOLDER`: each error once, and a summary of what ran and what could not
start (issue 13, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge.cli import app
from tests.test_cli import SPAN, make_book, make_mapping

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("ANNOBRIDGE_TEST_UNSET", raising=False)
    make_book(tmp_path / "labels.xlsx", [[SPAN, "correct", 1, "fine", "alice"]])
    good = make_mapping(tmp_path)
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "a-good.yaml").write_text(good.read_text().replace("labels.xlsx", "../labels.xlsx"))
    (jobs / "b-unset.yaml").write_text(
        good.read_text()
        .replace("labels.xlsx", "../labels.xlsx")
        .replace("worksheet: Labels", "worksheet: ${ANNOBRIDGE_TEST_UNSET}")
    )
    (jobs / "c-nofile.yaml").write_text(good.read_text().replace("labels.xlsx", "nope.xlsx"))
    return jobs


ERRORS = ("ANNOBRIDGE_TEST_UNSET is not set", "nope.xlsx: no such workbook")


@pytest.mark.parametrize("options", [[], ["--quiet"], ["--log-format", "text"], ["--json"]])
def test_each_error_is_printed_once(folder: Path, options: list[str]) -> None:
    result = runner.invoke(app, ["sync", str(folder), "--dry-run", *options])
    assert result.exit_code == 2
    for error in ERRORS:
        assert result.stderr.count(error) == 1, (error, result.stderr)
        if "--json" not in options:
            assert error not in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_an_error_names_the_mapping_once(folder: Path) -> None:
    result = runner.invoke(app, ["sync", str(folder), "--dry-run"])
    line = next(x for x in result.stderr.splitlines() if "ANNOBRIDGE_TEST_UNSET" in x)
    assert line.startswith(f"{folder / 'b-unset.yaml'}: MappingError: key 'source.worksheet'")
    assert line.count("b-unset.yaml") == 1


def test_the_summary_says_which_ran_and_which_could_not_start(folder: Path) -> None:
    result = runner.invoke(app, ["sync", str(folder), "--dry-run"])
    lines = result.stdout.splitlines()
    assert "3 mappings: 1 exited 0, 2 exited 2" in lines
    assert f"  ran: {folder / 'a-good.yaml'}" in lines
    assert (
        "  could not start (nothing sent; fix the mapping or the sheet): "
        f"{folder / 'b-unset.yaml'} (MappingError), {folder / 'c-nofile.yaml'} (SourceError)"
    ) in lines


def test_json_errors_stay_in_the_json_object_too(folder: Path) -> None:
    result = runner.invoke(app, ["sync", str(folder), "--dry-run", "--json"])
    body = json.loads(result.stdout)
    assert [m.get("error", {}).get("type") for m in body["mappings"]] == [
        None,
        "MappingError",
        "SourceError",
    ]
    assert body["exit_code"] == 2
