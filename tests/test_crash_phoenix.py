"""Crash safety on a real Phoenix: kill -9 at chosen points, Ctrl-C, then run again.

Each kill trial syncs 5,000 rows (80 seeded spans x 63 annotators: one annotation each) in a
separate process that SIGKILLs itself at a chosen point (tests/crash_driver.py: while a send
is in flight, after the platform answered, after the journal recorded the confirmation),
checks that the journal shows the send that was cut off, runs the sync again to completion
and checks that every row has exactly one annotation with its label, the right status, and
that the workbook opens.

The undo case is only right with the journal: the killed run's edit landed, the SME then
restores the old labels and status cells, and only the journal tells the next run that
Phoenix holds something else than the sheet says.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.servers import PhoenixServer

pytestmark = pytest.mark.phoenix

ROWS = 5000
UNDO_ROWS = 2500  # two send chunks: the kill lands in the second, the first is confirmed
CLI = str(Path(sys.executable).parent / "annobridge")
ROOT = Path(__file__).resolve().parent.parent


def write_job(
    tmp_path: Path, server: PhoenixServer, spans: list[str], name: str, rows: int = ROWS
) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Labels"
    ws.append(["span_id", "label", "score", "annotator"])
    for i in range(rows):
        span, annotator = spans[i % len(spans)], f"sme{i // len(spans):02d}"
        ws.append([span, ("correct", "incorrect")[i % 2], (i % 7) / 7, annotator])
    book.save(tmp_path / "labels.xlsx")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        f"""
source: {{type: excel, path: labels.xlsx, worksheet: Labels}}
target: {{type: phoenix, url: "{server.url}", project: tests}}
state_dir: state
annotations:
  - name: {name}
    id_column: span_id
    label_column: label
    score_column: score
    annotator_column: annotator
    rules: {{labels: [correct, incorrect], score_min: 0, score_max: 1}}
"""
    )
    return mapping


def start(mapping: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOENIX_")}
    return subprocess.Popen(
        [CLI, "sync", str(mapping), "--json", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def killed_at(mapping: Path, point: str, chunk: int = 1) -> None:
    """A sync that SIGKILLs itself at ``point`` of send chunk ``chunk`` (tests/crash_driver.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOENIX_")}
    done = subprocess.run(
        [sys.executable, "-m", "tests.crash_driver", point, str(chunk), "sync", str(mapping)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr  # it died there, not elsewhere


def journal(mapping: Path) -> Counter[str]:
    """What the killed run left in the journal: rows by state (sending, confirmed)."""
    (path,) = (mapping.parent / "state").glob("journal-*.sqlite3")  # the mapping's own
    db = sqlite3.connect(path)
    try:
        return Counter(state for (state,) in db.execute("SELECT state FROM sends"))
    finally:
        db.close()


def finish(mapping: Path) -> dict[str, Any]:
    proc = start(mapping)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary: dict[str, Any] = json.loads(out)
    return summary


def check_everything_landed_once(
    server: PhoenixServer, spans: list[str], name: str, book: Path
) -> None:
    got = [a for a in server.span_annotations(spans, project="tests") if a["name"] == name]
    keys = Counter((a["span_id"], a["identifier"]) for a in got)
    assert len(keys) == ROWS and set(keys.values()) == {1}
    ws = openpyxl.load_workbook(book)["Labels"]  # it opens
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(rows) == ROWS
    by_key = {(a["span_id"], a["identifier"]): a for a in got}
    for span, label, _score, annotator, status, *_ in rows:
        assert status == "synced"
        assert by_key[(span, f"annobridge:{annotator}")]["result"]["label"] == label


@pytest.fixture(scope="module")
def span_ids(seeded_spans: list[dict[str, str]]) -> list[str]:
    return [s["span_id"] for s in seeded_spans] + [s["llm_span_id"] for s in seeded_spans]


@pytest.mark.parametrize(
    ("point", "chunk", "left", "recovered"),
    [
        # half of the second chunk confirmed, the rest in flight; the first chunk confirmed
        ("in-flight", 2, {"confirmed": 2000, "sending": 2000}, 2000),
        # Phoenix answered the whole second chunk; the journal had not recorded it yet
        ("after-send", 2, {"confirmed": 2000, "sending": 2000}, 2000),
        # all three chunks confirmed and journaled; no status written
        ("after-confirmed", 3, {"confirmed": ROWS}, ROWS),
    ],
)
def test_kill_9_at_chosen_points_loses_and_duplicates_nothing(
    phoenix: PhoenixServer,
    span_ids: list[str],
    tmp_path: Path,
    point: str,
    chunk: int,
    left: dict[str, int],
    recovered: int,
) -> None:
    name = f"crash_{point.replace('-', '_')}"
    mapping = write_job(tmp_path, phoenix, span_ids, name)
    killed_at(mapping, point, chunk)
    assert journal(mapping) == left  # a send was cut off where chosen
    assert "sync_status" not in next(
        openpyxl.load_workbook(tmp_path / "labels.xlsx")["Labels"].iter_rows(values_only=True)
    )  # no status was written
    summary = finish(mapping)
    assert summary["recovered"] == recovered  # confirmed rows are not sent again
    assert summary["annotations_sent"] == ROWS - recovered  # "sending" rows are
    check_everything_landed_once(phoenix, span_ids, name, tmp_path / "labels.xlsx")
    assert journal(mapping) == {}  # the finished run cleared it
    again = finish(mapping)  # and a further run sends nothing
    assert again["annotations_sent"] == 0 and again["counts"]["unchanged"] == ROWS


def relabel(book: Path, label: str) -> None:
    wb = openpyxl.load_workbook(book)
    ws = wb["Labels"]
    for (cell,) in ws.iter_rows(min_row=2, min_col=2, max_col=2):
        cell.value = label
    wb.save(book)


def labels_held(server: PhoenixServer, spans: list[str], name: str) -> Counter[str]:
    got = [a for a in server.span_annotations(spans, project="tests") if a["name"] == name]
    assert len({(a["span_id"], a["identifier"]) for a in got}) == len(got)  # one per row
    return Counter(a["result"]["label"] for a in got)


@pytest.mark.parametrize("point", ["after-send", "after-confirmed"])
def test_an_undo_after_a_crash_is_sent_again_so_phoenix_holds_what_the_sheet_says(
    phoenix: PhoenixServer, span_ids: list[str], tmp_path: Path, point: str
) -> None:
    name = f"crash_undo_{point.replace('-', '_')}"
    rows = UNDO_ROWS
    mapping = write_job(tmp_path, phoenix, span_ids, name, rows)
    book = tmp_path / "labels.xlsx"
    relabel(book, "correct")
    assert finish(mapping)["counts"]["synced"] == rows
    before = book.read_bytes()  # labels and status cells as the SMEs see them now

    relabel(book, "incorrect")  # the SMEs relabel everything...
    killed_at(mapping, point, chunk=2)  # ...the sync sends it all and dies before the write
    assert labels_held(phoenix, span_ids, name) == {"incorrect": rows}  # it landed

    book.write_bytes(before)  # an SME undoes the relabel: old labels, old status cells
    summary = finish(mapping)
    assert summary["annotations_sent"] == rows  # the journal said Phoenix holds the edit
    assert labels_held(phoenix, span_ids, name) == {"correct": rows}
    assert {r["sync_status"] for r in sheet_rows(book)} == {"synced"}
    assert journal(mapping) == {}
    again = finish(mapping)
    assert again["annotations_sent"] == 0 and again["counts"]["unchanged"] == rows


def sheet_rows(book: Path) -> list[dict[str, Any]]:
    rows = list(openpyxl.load_workbook(book)["Labels"].iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]


def test_ctrl_c_stops_after_the_batch_and_the_next_run_resumes(
    phoenix: PhoenixServer, span_ids: list[str], tmp_path: Path
) -> None:
    mapping = write_job(tmp_path, phoenix, span_ids, "crash_sigint")
    proc = start(mapping, "--log-format", "json")
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until the first chunk (2,000 rows) is confirmed
        if '"sent 2000 annotations' in line:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    first = json.loads(out)
    assert proc.returncode == 130
    assert first["interrupted"] is True
    sent_first = first["counts"]["synced"]
    assert 2000 <= sent_first < ROWS  # the chunk in flight finished; the last never started
    assert first["counts"]["pending"] == ROWS - sent_first
    rows = list(
        openpyxl.load_workbook(tmp_path / "labels.xlsx")["Labels"].iter_rows(values_only=True)
    )
    at = rows[0].index("sync_status") if "sync_status" in rows[0] else None
    statuses = [r[at] if at is not None and at < len(r) else None for r in rows[1:]]
    assert statuses.count("synced") == sent_first
    second = finish(mapping)
    assert second["counts"]["unchanged"] == sent_first
    assert second["annotations_sent"] == ROWS - sent_first
    check_everything_landed_once(phoenix, span_ids, "crash_sigint", tmp_path / "labels.xlsx")
