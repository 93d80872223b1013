"""Export from a Phoenix project with no spans names the projects that have some (issue 13,
item 10), on a real local Phoenix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge.cli import app
from tests.servers import PhoenixServer

pytestmark = pytest.mark.phoenix
runner = CliRunner()


def test_an_empty_project_names_the_projects_with_spans(
    tmp_path: Path, phoenix: object, seeded_spans: list[dict[str, str]]
) -> None:
    assert isinstance(phoenix, PhoenixServer)
    url = phoenix.url
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target: {{type: phoenix, url: {url}, project: default}}
annotations:
  - {{name: correctness, id_column: span_id, label_column: label}}
"""
    )
    text = runner.invoke(app, ["export", str(mapping), "--dry-run"])
    assert text.exit_code == 0, text.output
    assert "project 'default' has no records to list; projects that have some: " in text.stdout
    assert "tests" in text.stdout.split("projects that have some: ")[1]
    body = json.loads(runner.invoke(app, ["export", str(mapping), "--dry-run", "--json"]).stdout)
    assert (
        "tests" in body["projects_with_records"] and "default" not in body["projects_with_records"]
    )
    assert (body["platform"], body["url"], body["project"]) == ("phoenix", url, "default")
