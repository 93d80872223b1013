"""Retraction on a real Phoenix: an SME clears a synced row and only that row's annotation is
removed (another SME's on the same span, and the app's own, stay); the guard sends nothing;
dry-run lists; killed after Phoenix removed it and before the sheet said so, the next run
finishes and removes nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import openpyxl
import pytest

from bridge.errors import ConfigError
from bridge.mapping import load_mapping
from bridge.pipeline import run
from tests.builders import make_book, sheet_records
from tests.servers import PhoenixServer

pytestmark = pytest.mark.phoenix
PROJECT = "tests"
ROOT = Path(__file__).resolve().parents[1]


def setup(tmp_path: Path, server: PhoenixServer, spans: list[str], extra: str = "") -> Path:
    name = f"retract_{uuid.uuid4().hex[:8]}"
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target: {{type: phoenix, url: "{server.url}", project: {PROJECT}}}
state_dir: state
{extra}
annotations:
  - name: {name}
    id_column: span_id
    label_column: label
    annotator_column: annotator
    rules: {{labels: [correct, incorrect], require: label}}
""",
        encoding="utf-8",
    )
    rows = [
        [s, label, who]
        for s in spans
        for label, who in (("correct", "alice"), ("incorrect", "bob"))
    ]
    make_book(tmp_path / "labels.xlsx", rows, header=["span_id", "label", "annotator"])
    result = run(load_mapping(mapping))
    assert result.exit_code == 0 and result.counts["synced"] == 2 * len(spans)
    # the app's own LLM annotation of the same name on the first span
    server.post(
        "/v1/span_annotations?sync=true",
        {
            "data": [
                {
                    "span_id": spans[0],
                    "name": name,
                    "annotator_kind": "LLM",
                    "identifier": "the-app",
                    "result": {"label": "correct"},
                }
            ]
        },
    )
    return mapping


def held(server: PhoenixServer, mapping: Path, spans: list[str]) -> set[tuple[str, str]]:
    name = load_mapping(mapping).annotations[0].name
    return {
        (a["span_id"], a["identifier"])
        for a in server.span_annotations(spans, project=PROJECT)
        if a["name"] == name
    }


def clear_alice(book: Path, spans: list[str]) -> None:
    wb = openpyxl.load_workbook(book)
    ws = wb["Labels"]
    for r in range(2, ws.max_row + 1):
        if ws.cell(r, 3).value == "alice" and ws.cell(r, 1).value in spans:
            ws.cell(r, 2).value = None
    wb.save(book)


def test_only_the_cleared_rows_annotation_is_removed(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    spans = [s["span_id"] for s in seeded_spans[:2]]
    mapping = setup(tmp_path, phoenix, spans)
    assert held(phoenix, mapping, spans) == {
        (spans[0], "annobridge:alice"),
        (spans[0], "annobridge:bob"),
        (spans[0], "the-app"),
        (spans[1], "annobridge:alice"),
        (spans[1], "annobridge:bob"),
    }
    clear_alice(tmp_path / "labels.xlsx", spans[:1])  # alice takes back her label on span 0

    planned = run(load_mapping(mapping), dry_run=True).planned
    assert [p["retract"]["id"] for p in planned if "retract" in p] == [spans[0]]
    assert len(held(phoenix, mapping, spans)) == 5  # the dry run removed nothing

    result = run(load_mapping(mapping))
    assert result.exit_code == 0 and result.counts["retracted"] == 1
    assert held(phoenix, mapping, spans) == {
        (spans[0], "annobridge:bob"),
        (spans[0], "the-app"),
        (spans[1], "annobridge:alice"),
        (spans[1], "annobridge:bob"),
    }
    statuses = [r["sync_status"] for r in sheet_records(tmp_path / "labels.xlsx")]
    assert statuses == ["retracted", "synced", "synced", "synced"]
    assert run(load_mapping(mapping)).counts["unchanged"] == 4  # nothing more to do


def test_the_guard_sends_nothing(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    spans = [s["span_id"] for s in seeded_spans[2:4]]
    mapping = setup(tmp_path, phoenix, spans, "max_retractions: 1")
    clear_alice(tmp_path / "labels.xlsx", spans)
    with pytest.raises(ConfigError, match="more than max_retractions"):
        run(load_mapping(mapping))
    assert len(held(phoenix, mapping, spans)) == 5  # alice, bob and the app: all still there


def test_killed_after_phoenix_removed_it_the_next_run_finishes(
    phoenix: PhoenixServer, seeded_spans: list[dict[str, str]], tmp_path: Path
) -> None:
    spans = [s["span_id"] for s in seeded_spans[4:6]]
    mapping = setup(tmp_path, phoenix, spans)
    clear_alice(tmp_path / "labels.xlsx", spans)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOENIX_")}
    done = subprocess.run(
        [sys.executable, "-m", "tests.crash_driver", "after-send", "1", "sync", str(mapping)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    # Phoenix removed alice's two; the sheet does not say so yet
    assert held(phoenix, mapping, spans) == {
        (spans[0], "annobridge:bob"),
        (spans[0], "the-app"),
        (spans[1], "annobridge:bob"),
    }
    assert [r["sync_status"] for r in sheet_records(tmp_path / "labels.xlsx")] == ["synced"] * 4
    again = run(load_mapping(mapping))
    assert again.exit_code == 0 and again.counts["retracted"] == 2
    assert held(phoenix, mapping, spans) == {
        (spans[0], "annobridge:bob"),
        (spans[0], "the-app"),
        (spans[1], "annobridge:bob"),
    }
    rows = sheet_records(tmp_path / "labels.xlsx")
    assert [r["sync_status"] for r in rows] == ["retracted", "synced", "retracted", "synced"]
    assert "holds nothing of this row" in rows[0]["sync_message"]
