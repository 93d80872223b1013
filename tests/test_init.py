"""`annobridge init` for every platform, and export into the sheet it writes (issue 13, item 2)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
import requests
import yaml
from typer.testing import CliRunner

from bridge.cli import app
from bridge.errors import SourceError
from bridge.exporting import export
from bridge.mapping import load_mapping, parse_mapping
from bridge.records import ExportQuery, ExportRecord
from bridge.scaffold import starter_mapping
from bridge.sources.excel.export_sink import ExcelExportSink
from bridge.sources.gsheets.source import GSheetsSource, RetryPolicy
from tests.sheets_standin import SheetsStandIn

runner = CliRunner()
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

COMBINATIONS = [
    ("phoenix", ["--annotate", "span"], "span_id"),
    ("phoenix", ["--annotate", "trace"], "trace_id"),
    ("phoenix", ["--annotate", "session"], "session_id"),
    ("phoenix", ["--annotate", "document"], "span_id"),
    ("phoenix", [], "span_id"),
    ("mlflow", ["--id-kind", "trace_id"], "trace_id"),
    ("mlflow", ["--id-kind", "client_request_id"], "request_id"),
    ("mlflow", [], "trace_id"),
    ("arize", [], "span_id"),
    ("log10", [], "tags"),
]
ENV_VARS = {
    "phoenix": ["PHOENIX_COLLECTOR_ENDPOINT", "PHOENIX_BASE_URL", "PHOENIX_API_KEY"],
    "mlflow": [
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
    ],
    "arize": ["ARIZE_API_KEY"],
    "log10": ["LOG10_TOKEN", "LOG10_ORG_ID"],
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated mappings load with none of the platforms' variables set."""
    for names in ENV_VARS.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    for name in ("MLFLOW_EXPERIMENT_NAME", "ARIZE_MODEL_ID", "ARIZE_APP_URL", "LOG10_TASK_ID"):
        monkeypatch.delenv(name, raising=False)


def test_init_of_a_document_round_has_the_position_column_and_relevance_labels(
    tmp_path: Path,
) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--annotate", "document"])
    assert result.exit_code == 0, result.output
    mapping = load_mapping(tmp_path / "p" / "annobridge.yaml")
    assert mapping.target.record_kind() == "span"
    assert mapping.target.identity_columns() == ["document_position"]
    (entry,) = mapping.annotations
    assert entry.rules.labels == ["relevant", "irrelevant"]
    header = [c.value for c in openpyxl.load_workbook(tmp_path / "p" / "labels.xlsx")["Labels"][1]]
    assert header[0] == "span_id" and "document_position" in header


@pytest.mark.parametrize(("target", "options", "id_column"), COMBINATIONS)
def test_init_writes_a_mapping_that_loads_and_a_template_for_each_platform(
    tmp_path: Path, target: str, options: list[str], id_column: str
) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--target", target, *options])
    assert result.exit_code == 0, result.output
    path = tmp_path / "p" / "annobridge.yaml"
    mapping = load_mapping(path)
    assert mapping.target.type == target
    assert {a.id_column for a in mapping.annotations} == {id_column}
    text = path.read_text(encoding="utf-8")
    for name in ENV_VARS[target]:
        assert name in text, name
    header = [c.value for c in openpyxl.load_workbook(tmp_path / "p" / "labels.xlsx")["Labels"][1]]
    assert header[0] == id_column
    for a in mapping.annotations:
        assert set(a.used_columns()) <= set(header)
    assert set(mapping.target.extra_columns()) <= set(header)
    # the starter validates as it is: the template has no rows yet
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0


@pytest.mark.parametrize(("target", "options", "_"), COMBINATIONS)
def test_the_gsheet_starter_loads_once_the_url_is_pasted(
    tmp_path: Path, target: str, options: list[str], _: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    result = runner.invoke(
        app, ["init", str(tmp_path / "p"), "--source", "gsheet", "--target", target, *options]
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / "p" / "annobridge.yaml"
    path.write_text(
        path.read_text().replace(
            "<paste the sheet's URL here>", "https://docs.google.com/spreadsheets/d/" + "k" * 44
        )
    )
    assert load_mapping(path).target.type == target


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "arize", "--annotate", "trace"], "--annotate is for --target phoenix"),
        (["--target", "phoenix", "--id-kind", "trace_id"], "--id-kind is for --target mlflow"),
        (["--target", "splunk"], "'splunk' is not one of"),
    ],
)
def test_init_refuses_an_option_the_target_does_not_take(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "p"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "p" / "annobridge.yaml").exists()


def test_starter_mapping_names_the_phoenix_kind_in_the_id_column() -> None:
    assert "id_column: trace_id" in starter_mapping("phoenix", annotate="trace")
    assert "id_kind: client_request_id" in starter_mapping("mlflow", id_kind="client_request_id")


class Traces:
    """An exporting target that lists MLflow-like traces."""

    name = "fake"

    def __init__(self, n: int) -> None:
        self.records = [
            ExportRecord(
                f"tr-{i:032x}",
                input=f"q{i}",
                output=f"a{i}",
                start_time=T0 + timedelta(minutes=i),
                url=f"http://mlflow/{i}",
            )
            for i in range(1, n + 1)
        ]

    def fingerprint(self) -> str:
        return "fake|x"

    def export_records(self, query: ExportQuery) -> Iterator[ExportRecord]:
        yield from self.records

    def close(self) -> None:
        pass


def test_export_into_a_template_without_the_id_column_adds_it(tmp_path: Path) -> None:
    """The issue's case: the Phoenix span template, a trace_id mapping: the id column is added
    right of the last used column, as status columns are, and the ids go in it."""
    assert runner.invoke(app, ["init", str(tmp_path / "span")]).exit_code == 0
    assert runner.invoke(app, ["init", str(tmp_path / "ml"), "--target", "mlflow"]).exit_code == 0
    shutil.copy(tmp_path / "span" / "labels.xlsx", tmp_path / "ml" / "labels.xlsx")
    before = [c.value for c in openpyxl.load_workbook(tmp_path / "ml" / "labels.xlsx")["Labels"][1]]
    assert "trace_id" not in before

    mapping = load_mapping(tmp_path / "ml" / "annobridge.yaml")
    result = export(mapping, target=Traces(3))  # type: ignore[arg-type]
    assert (result.appended, result.first_row, result.last_row) == (3, 2, 4)
    assert "trace_id" in result.added_columns
    ws = openpyxl.load_workbook(tmp_path / "ml" / "labels.xlsx")["Labels"]
    header = [c.value for c in ws[1]]
    assert header[: len(before)] == before  # nothing moved
    col = header.index("trace_id")
    assert col >= len(before)
    assert [r[col] for r in ws.iter_rows(min_row=2, values_only=True)] == [
        f"tr-{i:032x}" for i in (1, 2, 3)
    ]
    # and again: the ids are now in the sheet, nothing is appended twice
    again = export(mapping, target=Traces(4))  # type: ignore[arg-type]
    assert (again.appended, again.in_sheet) == (1, 3)


def test_a_near_miss_of_the_id_column_still_says_did_you_mean(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    book.active.title = "Labels"
    book.active.append(["Trace_ID", "label"])
    book.save(tmp_path / "b.xlsx")
    with pytest.raises(SourceError, match="Did you mean 'trace_id' -> 'Trace_ID'"):
        ExcelExportSink(tmp_path / "b.xlsx", "Labels").existing_ids("trace_id")
    assert ExcelExportSink(tmp_path / "b.xlsx", "Labels").existing_ids("span_id") == set()


def test_export_into_a_google_sheet_without_the_id_column_adds_it(tmp_path: Path) -> None:
    key = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
    text = starter_mapping("mlflow")
    doc = yaml.safe_load(text)
    doc["source"] = {"type": "gsheet", "spreadsheet": key, "worksheet": "Labels"}
    mapping = parse_mapping(doc, tmp_path / "m.yaml")
    with SheetsStandIn() as server:
        server.add_spreadsheet(key, "SME labels", sheets=[("Labels", 0)])
        server.put(key, "Labels", [["span_id", "input", "output", "label", "notes"]])
        sheet = GSheetsSource(
            key,
            "Labels",
            api_base=server.url,
            session=requests.Session(),
            retry=RetryPolicy(sleep=lambda s: None, rand=lambda: 0.5),
        )
        try:
            result = export(mapping, target=Traces(2), sink=sheet)  # type: ignore[arg-type]
        finally:
            sheet.close()
        grid = server.grid(key, "Labels")
    assert result.appended == 2 and "trace_id" in result.added_columns
    header = grid[0]
    assert header[:5] == ["span_id", "input", "output", "label", "notes"]
    col = header.index("trace_id")
    assert [row[col] for row in grid[1:3]] == [f"tr-{i:032x}" for i in (1, 2)]
