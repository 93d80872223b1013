"""Unattended runs: run lock, journal recovery, Ctrl-C, several mappings, JSON logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bridge import pipeline
from bridge.cli import app
from bridge.errors import SourceUnavailable, UnavailableError
from bridge.mapping import load_mapping
from bridge.pipeline import run
from bridge.records import Annotation, Outcome, StatusUpdate, WriteReport
from bridge.registry import open_source
from bridge.sources.base import ReadSpec
from bridge.state import Journal, RunLock, row_ref, run_id, state_dir
from tests.test_pipeline import SPANS, RecordingTarget, cells, workbook

runner = CliRunner()


@pytest.fixture
def mapping_path(tmp_path: Path) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        """
source: {type: excel, path: labels.xlsx}
target: {type: phoenix, url: "http://127.0.0.1:9"}
annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    annotator_column: annotator
    rules: {labels: [correct, incorrect]}
"""
    )
    workbook(tmp_path / "labels.xlsx", [[s, "correct", None, None, "a"] for s in SPANS])
    return path


def test_a_second_run_of_the_same_mapping_exits_3_at_once(mapping_path: Path) -> None:
    mapping = load_mapping(mapping_path)
    directory = state_dir()
    with RunLock(directory, run_id(mapping.path, ""), "x"):
        result = runner.invoke(app, ["sync", str(mapping_path)])
    assert result.exit_code == 3
    assert f"another sync of {mapping_path} is running, pid {os.getpid()}" in result.stderr


def test_a_lock_left_by_a_dead_process_is_taken_over(mapping_path: Path) -> None:
    mapping = load_mapping(mapping_path)
    lock_file = state_dir() / f"{run_id(mapping.path, '')}.lock"
    # A process that took the lock and died: the file and its pid stay, the lock does not.
    code = (
        "import fcntl, os, sys; f = open(sys.argv[1], 'a+'); "
        "fcntl.flock(f, fcntl.LOCK_EX); f.write(str(os.getpid())); f.flush(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(lock_file)], check=True)
    assert lock_file.read_text().strip()
    target = RecordingTarget()
    assert run(mapping, target=target).exit_code == 0
    assert len(target.sent[0]) == len(SPANS)


def test_confirmed_sends_survive_a_failed_write_and_are_not_sent_again(
    mapping_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mapping = load_mapping(mapping_path)
    real = open_source(mapping)

    class DiesWhileWriting:
        label = real.label

        def read(self, spec: ReadSpec) -> Any:
            return real.read(spec)

        def check_writable(self) -> None:
            real.check_writable()

        def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport:
            raise SourceUnavailable("disk full")

    first = RecordingTarget()
    with pytest.raises(SourceUnavailable):
        run(mapping, target=first, source=DiesWhileWriting())
    assert len(first.sent[0]) == len(SPANS)
    journal = Journal(state_dir(), run_id(mapping.path, real.label))
    assert len(journal.confirmed_rows()) == len(SPANS)
    journal.close()

    second = RecordingTarget()
    result = run(mapping, target=second)
    assert second.sent == []  # nothing resent: the journal knew they had landed
    assert result.recovered == len(SPANS)
    rows = cells(mapping_path.parent / "labels.xlsx")
    assert {r["sync_status"] for r in rows} == {"synced"}
    assert rows[0]["sync_id"] == f"id-{SPANS[0]}-correctness"
    journal = Journal(state_dir(), run_id(mapping.path, real.label))
    assert journal.confirmed_rows() == {}  # cleared once the sheet holds the statuses
    journal.close()


def test_an_edit_after_a_crash_is_sent_not_recovered(mapping_path: Path) -> None:
    mapping = load_mapping(mapping_path)
    journal = Journal(state_dir(), run_id(mapping.path, ""))
    journal.confirmed([(row_ref((SPANS[0], "a"), 0), "stale-hash", "old-id")])
    journal.close()
    target = RecordingTarget()
    result = run(mapping, target=target)
    assert result.recovered == 0
    assert len(target.sent[0]) == len(SPANS)


def test_stop_finishes_the_chunk_in_flight_writes_and_exits_130(
    mapping_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "SEND_CHUNK_ROWS", 2)
    stop = threading.Event()

    class InterruptedAfterFirstChunk(RecordingTarget):
        def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
            stop.set()  # Ctrl-C arrives while the first chunk is in flight
            return super().send(annotations, progress)

    mapping = load_mapping(mapping_path)
    target = InterruptedAfterFirstChunk()
    result = run(mapping, target=target, stop=stop)
    assert result.interrupted and result.exit_code == 130
    assert len(target.sent) == 1 and len(target.sent[0]) == 2
    statuses = [r["sync_status"] for r in cells(mapping_path.parent / "labels.xlsx")]
    assert statuses == ["synced", "synced"] + [None] * (len(SPANS) - 2)
    rest = RecordingTarget()
    run(mapping, target=rest)
    assert [a.target_id for chunk in rest.sent for a in chunk] == SPANS[2:]


def test_several_mappings_run_on_when_one_fails(tmp_path: Path, mapping_path: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    good = folder / "a-good.yaml"
    good.write_text(mapping_path.read_text().replace("labels.xlsx", "../labels.xlsx"))
    (folder / "b-broken.yml").write_text("source: {type: excel, path: nope.xlsx}\n")
    (folder / "notes.txt").write_text("not a mapping")
    result = runner.invoke(app, ["sync", str(folder), "--dry-run", "--json"])
    body = json.loads(result.stdout)
    assert result.exit_code == 2 == body["exit_code"]
    assert [m["mapping"] for m in body["mappings"]] == [str(good), str(folder / "b-broken.yml")]
    assert body["mappings"][0]["counts"]["pending"] == len(SPANS)
    assert body["mappings"][1]["error"]["type"] == "MappingError"
    text = runner.invoke(app, ["sync", str(good), str(folder / "b-broken.yml"), "--dry-run"])
    assert text.exit_code == 2
    assert "2 mappings: 1 exited 0, 1 exited 2" in text.stdout


def test_an_empty_folder_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sync", str(tmp_path)])
    assert result.exit_code == 2
    assert "the folder has no mapping files" in result.stderr


def test_json_logs_are_one_object_per_line(mapping_path: Path) -> None:
    result = runner.invoke(app, ["sync", str(mapping_path), "--log-format", "json", "--quiet"])
    assert result.exit_code == 3  # the target port is closed
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines[0]["level"] == "info"
    assert lines[0]["message"] == f"read {len(SPANS)} rows from labels.xlsx/Labels"
    assert {"time", "logger"} <= set(lines[0])


def test_the_state_dir_comes_from_the_mapping_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert state_dir(tmp_path / "mine") == tmp_path / "mine"
    monkeypatch.setenv("ANNOBRIDGE_STATE_DIR", str(tmp_path / "env"))
    assert state_dir() == tmp_path / "env"
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(Exception, match="cannot create the state directory"):
        state_dir(blocked / "sub")


def test_lock_message_names_the_holder(tmp_path: Path) -> None:
    with RunLock(tmp_path, "x", "m.yaml"):
        with pytest.raises(UnavailableError, match=f"pid {os.getpid()}"):
            with RunLock(tmp_path, "x", "m.yaml"):
                pass
    with RunLock(tmp_path, "x", "m.yaml"):
        pass  # released: taken again
