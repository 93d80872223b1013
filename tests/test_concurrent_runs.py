"""Runs of different mappings at the same time (issue 16, item 6).

Two mappings on two tabs of one workbook each re-read the file and replace it whole: run
together, the second replaced the first's statuses with its older copy, and both said
"status written". Two mappings sharing the state folder's journal could die on "database is
locked". Here: real processes, lined up so that their status writes start together
(tests/concurrent_driver.py), and the lock and journal in-process.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bridge import state
from bridge.errors import EXIT_UNAVAILABLE, UnavailableError
from bridge.mapping import load_mapping
from bridge.pipeline import run
from bridge.state import Journal, MediumLock, run_id, state_dir
from tests.test_pipeline import SPANS, RecordingTarget, cells, workbook

ROOT = Path(__file__).resolve().parent.parent
ROWS = 3000


@pytest.fixture(autouse=True)
def own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("ANNOBRIDGE_STATE_DIR", str(path))
    return path


def two_tab_job(tmp_path: Path) -> list[Path]:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    for ws, tab in ((first, "A"), (book.create_sheet(), "B")):
        ws.title = tab
        ws.append(["span_id", "label"])
        for i in range(ROWS):
            ws.append([f"{i + 1:016x}", "correct"])
    book.save(tmp_path / "labels.xlsx")
    mappings = []
    for tab in ("A", "B"):
        path = tmp_path / f"tab-{tab}.yaml"
        path.write_text(
            f"source: {{type: excel, path: labels.xlsx, worksheet: {tab}}}\n"
            'target: {type: phoenix, url: "http://127.0.0.1:9"}\n'
            "annotations:\n"
            f"  - {{name: tab_{tab}, id_column: span_id, label_column: label, annotator: sme}}\n"
        )
        mappings.append(path)
    return mappings


def test_two_mappings_on_two_tabs_of_one_workbook_both_keep_their_statuses(
    tmp_path: Path, own_state: Path
) -> None:
    mappings = two_tab_job(tmp_path)
    lineup = tmp_path / "lineup"
    lineup.mkdir()
    env = {**os.environ, "ANNOBRIDGE_STATE_DIR": str(own_state)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.concurrent_driver", str(lineup), "2"]
            + ["sync", str(m), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for m in mappings
    ]
    summaries: list[dict[str, Any]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        summaries.append(json.loads(out))
    assert [s["statuses_written"] for s in summaries] == [ROWS, ROWS]
    book = openpyxl.load_workbook(tmp_path / "labels.xlsx", read_only=True)
    for tab in ("A", "B"):
        rows = list(book[tab].iter_rows(values_only=True))
        at = rows[0].index("sync_status") if "sync_status" in rows[0] else None
        assert at is not None, f"tab {tab} lost its status columns"
        assert {r[at] for r in rows[1:]} == {"synced"}, tab  # what was reported landed
    book.close()


def test_a_write_lock_that_cannot_be_had_is_exit_3_and_the_next_run_sends_nothing(
    tmp_path: Path, own_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "source: {type: excel, path: labels.xlsx}\n"
        'target: {type: phoenix, url: "http://127.0.0.1:9"}\n'
        "annotations:\n"
        "  - {name: c, id_column: span_id, label_column: label, annotator: sme}\n"
    )
    book = workbook(tmp_path / "labels.xlsx", [[s, "correct"] for s in SPANS])
    mapping = load_mapping(path)
    monkeypatch.setattr(state, "WRITE_LOCK_TIMEOUT", 0.2)
    target = RecordingTarget()
    with MediumLock(state_dir(), book), pytest.raises(UnavailableError) as err:
        run(mapping, target=target)  # another sync is writing this workbook
    assert err.value.exit_code == EXIT_UNAVAILABLE == 3
    assert f"{book}: another sync (pid {os.getpid()}) has been writing" in str(err.value)
    assert "the statuses of this run were not written" in str(err.value)
    assert "sync_status" not in cells(book)[0]  # nothing claimed as written
    target.sent.clear()
    again = run(mapping, target=target)
    assert target.sent == [] and again.recovered == len(SPANS)
    assert {r["sync_status"] for r in cells(book)} == {"synced"}


def test_a_journal_in_use_by_another_mapping_does_not_hold_this_one(own_state: Path) -> None:
    directory = state_dir()
    other = Journal(directory, run_id(Path("/elsewhere/a.yaml"), ""))
    other.db.execute("BEGIN EXCLUSIVE")  # mid-write, or starting up at the same moment
    try:
        mine = Journal(directory, run_id(Path("/elsewhere/b.yaml"), ""))
        mine.sending([("row", "hash")])
        assert list(mine.earlier()) == ["row"]
        mine.close()
    finally:
        other.db.execute("ROLLBACK")
        other.close()


def test_a_journal_that_cannot_be_opened_is_exit_3_with_the_path(own_state: Path) -> None:
    directory = state_dir()
    name = run_id(Path("/elsewhere/c.yaml"), "")
    state.journal_path(directory, name).mkdir()  # not a database
    with pytest.raises(UnavailableError) as err:
        Journal(directory, name)
    assert err.value.exit_code == 3
    assert f"cannot open the journal {state.journal_path(directory, name)}" in str(err.value)


def test_the_journal_is_sqlite_in_wal_mode(own_state: Path) -> None:
    journal = Journal(state_dir(), "x")
    journal.close()
    db = sqlite3.connect(state.journal_path(state_dir(), "x"))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
