"""The whole loop on a real Phoenix: export the spans to label into a workbook, label them the
way an SME would, sync, and read back that every label landed on the right span; and the
rules taken from Phoenix's own annotation configs."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from bridge.cli import app
from bridge.mapping import load_mapping
from tests.builders import sheet_records as table
from tests.servers import PhoenixServer

pytestmark = pytest.mark.phoenix
runner = CliRunner()
PROJECT = "tests"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def write_mapping(
    directory: Path,
    server: PhoenixServer,
    name: str,
    *,
    annotate: str = "span",
    id_column: str = "span_id",
    project: str = PROJECT,
    rules: str = "labels: [correct, incorrect]\n      score_min: 0\n      score_max: 1",
) -> Path:
    path = directory / "mapping.yaml"
    path.write_text(
        f"""# the SMEs' labels for {name}
source:
  type: excel
  path: labels.xlsx   # created by annobridge export
  worksheet: Labels
target:
  type: phoenix
  url: {server.url}
  annotate: {annotate}
  project: {project}
annotations:
  - name: {name}
    id_column: {id_column}
    label_column: label
    score_column: score
    explanation_column: explanation
    annotator_column: annotator
    rules:  # kept in step with Phoenix by 'annobridge rules pull'
      {rules}
      require: label
"""
    )
    return path


def cli(*args: str) -> tuple[int, dict[str, Any], str]:
    result = runner.invoke(app, [*args, "--json"])
    out = result.stdout.strip().splitlines()
    assert out, result.stderr
    return result.exit_code, json.loads(out[-1]), result.stderr


def cells(path: Path) -> dict[str, Any]:
    ws = openpyxl.load_workbook(path)["Labels"]
    return {c.coordinate: c.value for row in ws.iter_rows() for c in row if c.value is not None}


def test_whole_loop_export_label_sync_read_back(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    name = unique("loop")
    mapping = write_mapping(tmp_path, phoenix, name)
    book = tmp_path / "labels.xlsx"
    seeded = {s["span_id"]: s for s in seeded_spans}

    started = time.monotonic()
    code, summary, _ = cli("export", str(mapping))
    seconds = time.monotonic() - started
    assert code == 0, summary
    print(f"export of {summary['appended']} spans took {seconds:.2f} s")

    rows = table(book)
    assert summary["appended"] == len(rows) >= len(seeded)
    assert summary["first_row"] == 2 and summary["last_row"] == len(rows) + 1
    by_id = {r["span_id"]: r for r in rows}
    assert len(by_id) == len(rows)  # no id twice
    assert set(seeded) <= set(by_id)  # every seeded root span, and no child span
    assert not {s["llm_span_id"] for s in seeded_spans} & set(by_id)
    for span_id, s in seeded.items():
        row = by_id[span_id]
        assert row["input"] == s["question"]
        assert row["output"] == s["answer"]
        assert row["start_time"].endswith("Z")
        assert f"/traces/{s['trace_id']}?selectedSpanNodeId=" in row["link"]
        assert row["link"].startswith(f"{phoenix.url}/projects/")
    ws = openpyxl.load_workbook(book)["Labels"]
    rules = {
        str(dv.sqref): (dv.type, dv.formula1, dv.formula2)
        for dv in ws.data_validations.dataValidation
    }
    assert rules == {
        "D2:D1048576": ("list", '"correct,incorrect"', None),
        "E2:E1048576": ("decimal", "0.0", "1.0"),
    }
    assert summary["validations"] == [
        "label: one of correct, incorrect",
        "score: a number from 0 to 1",
    ]

    # The SME reads each answer and labels it; wrong facts are incorrect.
    wrong = ("Jupiter", "van Gogh")
    wb = openpyxl.load_workbook(book)
    ws = wb["Labels"]
    header = [c.value for c in ws[1]]
    col = {h: i + 1 for i, h in enumerate(header)}
    expected: dict[str, str] = {}
    for r in range(2, ws.max_row + 1):
        span_id = ws.cell(r, col["span_id"]).value
        answer = ws.cell(r, col["output"]).value or ""
        label = "incorrect" if any(w in answer for w in wrong) else "correct"
        ws.cell(r, col["label"]).value = label
        ws.cell(r, col["score"]).value = 0 if label == "incorrect" else 1
        ws.cell(r, col["annotator"]).value = "sme@example.com"
        expected[span_id] = label
    wb.save(book)

    code, synced, _ = cli("sync", str(mapping))
    assert code == 0, synced
    assert synced["counts"]["synced"] == len(expected)
    landed = [
        a for a in phoenix.span_annotations(sorted(expected), project=PROJECT) if a["name"] == name
    ]
    assert len(landed) == len(expected)
    assert {a["span_id"]: a["result"]["label"] for a in landed} == expected
    assert sum(1 for v in expected.values() if v == "incorrect") >= 2 * len(seeded) // 8

    # Export again: everything is in the sheet and labelled; no row is added or changed.
    before = cells(book)
    code, again, _ = cli("export", str(mapping))
    assert code == 0
    assert again["appended"] == 0
    assert again["skipped"]["in_sheet"] + again["skipped"]["annotated"] >= len(expected)
    assert cells(book) == before


def test_export_skips_spans_already_labelled_by_humans_not_by_llm_judges(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    name = unique("skip")
    human = [s["span_id"] for s in seeded_spans[:3]]
    judged = seeded_spans[3]["span_id"]
    phoenix.post(
        "/v1/span_annotations?sync=true",
        {
            "data": [
                {"span_id": s, "name": name, "annotator_kind": "HUMAN", "result": {"label": "x"}}
                for s in human
            ]
            + [{"span_id": judged, "name": name, "annotator_kind": "LLM", "result": {"label": "x"}}]
        },
    )
    mapping = write_mapping(tmp_path, phoenix, name)

    code, summary, _ = cli("export", str(mapping))

    assert code == 0
    exported = {r["span_id"] for r in table(tmp_path / "labels.xlsx")}
    assert not set(human) & exported
    assert judged in exported
    assert summary["skipped"]["annotated"] == 3


def test_export_appends_below_existing_rows_without_touching_a_cell(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    name = unique("append")
    book = tmp_path / "labels.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Labels"
    ws.append(["span_id", "input", "output", "label", "score", "explanation", "annotator", "notes"])
    already = seeded_spans[5]["span_id"]
    ws.append([already, "typed by hand", None, "correct", 1, "fine", "ann", "keep"])
    ws.append([None, None, None, None, None, None, None, "a note row without an id"])
    ws["H3"].font = openpyxl.styles.Font(bold=True)
    wb.save(book)
    before = cells(book)
    mapping = write_mapping(tmp_path, phoenix, name)

    code, summary, _ = cli("export", str(mapping), "--limit", "5")

    assert code == 0
    assert summary["appended"] == 5
    assert summary["first_row"] == 4 and summary["last_row"] == 8
    after = cells(book)
    assert {k: after[k] for k in before} == before  # every existing cell as it was
    assert openpyxl.load_workbook(book)["Labels"]["H3"].font.bold
    rows = table(book)
    ids = [r["span_id"] for r in rows if r["span_id"]]
    assert ids.count(already) == 1
    assert summary["added_columns"] == ["start_time", "link"]

    code, more, _ = cli("export", str(mapping), "--limit", "5")
    assert more["first_row"] == 9
    ids = [r["span_id"] for r in table(book) if r["span_id"]]
    assert len(ids) == len(set(ids)) == 11


def test_export_since_until_and_filters(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    mapping = write_mapping(tmp_path, phoenix, unique("window"))

    code, future, _ = cli("export", str(mapping), "--since", "2999-01-01", "--dry-run")
    assert code == 0 and future["appended"] == 0
    code, past, _ = cli("export", str(mapping), "--until", "2000-01-01", "--dry-run")
    assert code == 0 and past["appended"] == 0
    code, recent, _ = cli("export", str(mapping), "--since", "30d", "--dry-run")
    assert recent["appended"] >= len(seeded_spans)
    assert not (tmp_path / "labels.xlsx").exists()  # a dry run writes nothing

    code, session, _ = cli(
        "export", str(mapping), "--filter", "session.id:session-0001", "--dry-run"
    )
    assert code == 0
    wanted = {s["span_id"] for s in seeded_spans if s["session_id"] == "session-0001"}
    assert {r["span_id"] for r in session["rows"]} == wanted

    code, bad, stderr = cli("export", str(mapping), "--filter", "no-colon-here")
    assert code == 2
    assert "key:value" in bad["error"]["message"]
    code, bad, _ = cli("export", str(mapping), "--since", "last tuesday")
    assert code == 2 and "is not a time" in bad["error"]["message"]


def test_export_traces_and_unknown_project(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    mapping = write_mapping(
        tmp_path, phoenix, unique("traces"), annotate="trace", id_column="trace_id"
    )
    code, summary, _ = cli("export", str(mapping), "--dry-run")
    assert code == 0
    ids = {r["trace_id"] for r in summary["rows"]}
    assert {s["trace_id"] for s in seeded_spans} <= ids
    labelled = seeded_spans[0]["trace_id"]
    name = load_mapping(mapping).annotations[0].name
    phoenix.post(
        "/v1/trace_annotations?sync=true",
        {"data": [{"trace_id": labelled, "name": name, "annotator_kind": "HUMAN"}]},
    )
    code, again, _ = cli("export", str(mapping), "--dry-run")
    assert labelled not in {r["trace_id"] for r in again["rows"]}
    assert again["skipped"]["annotated"] == 1

    mapping = write_mapping(tmp_path, phoenix, unique("nowhere"), project="no-such-project")
    code, summary, _ = cli("export", str(mapping))
    assert code == 2
    assert "no project 'no-such-project'" in summary["error"]["message"]
    assert PROJECT in summary["error"]["message"]  # the projects it has


def test_rules_pull_writes_phoenix_configs_into_the_mapping(
    phoenix: PhoenixServer, tmp_path: Path
) -> None:
    name = unique("quality")
    phoenix.post(
        "/v1/annotation_configs",
        {
            "type": "CATEGORICAL",
            "name": name,
            "optimization_direction": "MAXIMIZE",
            "values": [
                {"label": "good", "score": 1},
                {"label": "okay", "score": 0.5},
                {"label": "bad", "score": 0},
            ],
        },
    )
    mapping = write_mapping(tmp_path, phoenix, name)
    original = mapping.read_text()

    code, shown, _ = cli("rules", "pull", str(mapping), "--dry-run")
    assert code == 0
    assert shown["changes"] == [
        {"annotation": name, "key": "labels", "mapping": ["correct", "incorrect"],
         "platform": ["good", "okay", "bad"]}
    ]  # fmt: skip
    assert "-      labels: [correct, incorrect]" in shown["diff"]
    assert "+      labels: [good, okay, bad]" in shown["diff"]
    assert mapping.read_text() == original

    code, check, _ = cli("rules", "pull", str(mapping), "--check")
    assert code == 1 and mapping.read_text() == original

    code, done, _ = cli("rules", "pull", str(mapping))
    assert code == 0 and done["written"]
    text = mapping.read_text()
    assert text == original.replace("labels: [correct, incorrect]", "labels: [good, okay, bad]")
    assert "# kept in step with Phoenix" in text  # comments survive
    assert load_mapping(mapping).annotations[0].rules.labels == ["good", "okay", "bad"]

    code, again, _ = cli("rules", "pull", str(mapping))
    assert code == 0 and again["changes"] == [] and not again["written"]


def test_rules_pull_continuous_bounds_and_missing_configs(
    phoenix: PhoenixServer, tmp_path: Path
) -> None:
    name = unique("helpfulness")
    phoenix.post(
        "/v1/annotation_configs",
        {
            "type": "CONTINUOUS",
            "name": name,
            "optimization_direction": "MAXIMIZE",
            "lower_bound": 1,
            "upper_bound": 5,
        },
    )
    mapping = write_mapping(tmp_path, phoenix, name, rules="score_min: 0\n      score_max: 1")
    code, done, _ = cli("rules", "pull", str(mapping))
    assert code == 0
    rules = load_mapping(mapping).annotations[0].rules
    assert (rules.score_min, rules.score_max) == (1, 5)
    assert "score_min: 1\n      score_max: 5\n" in mapping.read_text()

    absent = write_mapping(tmp_path, phoenix, unique("no_config"))
    code, summary, _ = cli("rules", "pull", str(absent))
    assert code == 0
    assert summary["missing"] == [load_mapping(absent).annotations[0].name]
    assert summary["changes"] == []


def test_sync_rules_from_platform_validates_against_the_live_config(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    name = unique("tone")
    phoenix.post(
        "/v1/annotation_configs",
        {
            "type": "CATEGORICAL",
            "name": name,
            "optimization_direction": "NONE",
            "values": [{"label": "polite"}, {"label": "rude"}],
        },
    )
    mapping = write_mapping(tmp_path, phoenix, name)
    span = seeded_spans[20]["span_id"]
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Labels"
    ws.append(["span_id", "label", "score", "explanation", "annotator"])
    ws.append([span, "polite", 1, None, "sme"])
    wb.save(tmp_path / "labels.xlsx")

    code, summary, _ = cli("sync", str(mapping), "--dry-run")
    assert code == 1  # the mapping's own rules refuse 'polite'
    result = runner.invoke(app, ["sync", str(mapping), "--rules-from-platform", "--json"])
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout.strip().splitlines()[-1])["counts"]["synced"] == 1
    assert "+      labels: [polite, rude]" in result.stderr
    assert "Phoenix annotation config" in result.stderr
    got = [a for a in phoenix.span_annotations([span], project=PROJECT) if a["name"] == name]
    assert [a["result"]["label"] for a in got] == ["polite"]
