"""The journal of an interrupted run is read by the next one, whatever the sheet says since.

Issue 16, item 1: a sync sends edited rows, the platform confirms, the process dies before
the statuses are saved; an SME then undoes the edit, status cells included. The sheet says
every row is synced and unchanged, the platform holds the interrupted run's labels. The next
run must send those rows again (the journal says what was sent), and a run that finishes
clears the journal, so nothing is sent again for ever.

Here the platform is in memory and the "kill" is an exception no code catches (BaseException),
raised right after the platform answered (journal: ``sending``) or while the statuses are
written (journal: ``confirmed``). tests/test_crash_live.py does it with SIGKILL on real servers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bridge.mapping import load_mapping
from bridge.pipeline import run
from bridge.records import Annotation, Outcome, StatusUpdate, WriteReport
from bridge.registry import open_source
from bridge.sources.base import ReadSpec
from bridge.state import Journal, run_id, state_dir
from tests.test_pipeline import SPANS, RecordingTarget, cells, workbook


class Killed(BaseException):
    """The process died here: nothing after it runs, no handler sees it."""


class Platform(RecordingTarget):
    """The in-memory platform; ``die_after_send`` kills the run once the platform answered."""

    die_after_send = False

    def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
        outcomes = super().send(annotations, progress)
        if self.die_after_send:
            raise Killed
        return outcomes

    def labels(self) -> list[str]:
        return [self.store[(s, "correctness", "annobridge:a")]["label"] for s in SPANS]


@pytest.fixture(autouse=True)
def own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANNOBRIDGE_STATE_DIR", str(tmp_path / "state"))


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


def relabel(book: Path, label: str, rows: range | None = None) -> None:
    wb = openpyxl.load_workbook(book)
    ws = wb.active
    assert ws is not None
    for r in rows or range(2, len(SPANS) + 2):
        ws.cell(row=r, column=2, value=label)
    wb.save(book)


def synced_then_killed_after_an_edit(
    mapping_path: Path, platform: Platform, where: str
) -> tuple[Path, bytes]:
    """Sync everything as 'correct'; relabel 'incorrect'; a sync that is killed after the
    platform took the edit. Returns the workbook and its bytes before the edit."""
    mapping = load_mapping(mapping_path)
    book = mapping_path.parent / "labels.xlsx"
    assert run(mapping, target=platform).counts["synced"] == len(SPANS)
    before = book.read_bytes()
    relabel(book, "incorrect")
    if where == "after-send":
        platform.die_after_send = True
        with pytest.raises(Killed):
            run(mapping, target=platform)
        platform.die_after_send = False
    else:
        real = open_source(mapping)

        class DiesWhileWriting:
            label = real.label

            def read(self, spec: ReadSpec) -> Any:
                return real.read(spec)

            def check_writable(self) -> None:
                real.check_writable()

            def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport:
                raise Killed

        with pytest.raises(Killed):
            run(mapping, target=platform, source=DiesWhileWriting())
    assert platform.labels() == ["incorrect"] * len(SPANS)  # the edit landed
    assert {r["label"] for r in cells(book)} == {"incorrect"}  # statuses: the old ones
    return book, before


def journal_states(mapping_path: Path) -> list[str]:
    mapping = load_mapping(mapping_path)
    journal = Journal(state_dir(), run_id(mapping.path, ""))
    try:
        return sorted(e.state for e in journal.earlier().values())
    finally:
        journal.close()


@pytest.mark.parametrize("where", ["after-send", "while-writing"])
def test_an_undo_after_a_crash_is_sent_again(mapping_path: Path, where: str) -> None:
    platform = Platform()
    book, before = synced_then_killed_after_an_edit(mapping_path, platform, where)
    expected = "sending" if where == "after-send" else "confirmed"
    assert journal_states(mapping_path) == [expected] * len(SPANS)
    book.write_bytes(before)  # the SME undoes: old labels, old status cells
    assert {r["sync_status"] for r in cells(book)} == {"synced"}

    platform.sent.clear()
    result = run(load_mapping(mapping_path), target=platform)
    assert result.exit_code == 0 and result.counts["synced"] == len(SPANS)
    assert [(a.label, a.is_update) for a in platform.sent[0]] == [("correct", True)] * len(SPANS)
    assert platform.labels() == ["correct"] * len(SPANS)  # what the sheet says
    assert journal_states(mapping_path) == []  # a finished run clears the journal

    platform.sent.clear()
    again = run(load_mapping(mapping_path), target=platform)
    assert platform.sent == [] and again.counts["unchanged"] == len(SPANS)


def test_a_crash_then_nothing_undone_recovers_or_resends_without_duplicates(
    mapping_path: Path,
) -> None:
    platform = Platform()
    synced_then_killed_after_an_edit(mapping_path, platform, "while-writing")
    platform.sent.clear()
    result = run(load_mapping(mapping_path), target=platform)
    assert platform.sent == [] and result.recovered == len(SPANS)  # confirmed: not resent
    assert platform.labels() == ["incorrect"] * len(SPANS)


def test_a_row_emptied_after_a_crash_no_longer_claims_the_old_content(
    mapping_path: Path,
) -> None:
    # with on_clear: keep (an emptied synced row is not taken back on the platform)
    text = mapping_path.read_text(encoding="utf-8")
    mapping_path.write_text(text.replace("annotations:", "on_clear: keep\nannotations:", 1))
    platform = Platform()
    book, before = synced_then_killed_after_an_edit(mapping_path, platform, "after-send")
    book.write_bytes(before)
    relabel(book, "", range(2, 3))  # row 2: label emptied (skipped)
    platform.sent.clear()
    run(load_mapping(mapping_path), target=platform)
    first = cells(book)[0]
    assert first["sync_status"] == "skipped" and first["sync_hash"] in ("", None)
    assert platform.labels()[0] == "incorrect"  # nothing sent for it, the platform keeps it

    relabel(book, "correct", range(2, 3))  # and then back to what the sheet had before
    platform.sent.clear()
    run(load_mapping(mapping_path), target=platform)
    assert [a.target_id for a in platform.sent[0]] == [SPANS[0]]
    assert platform.labels() == ["correct"] * len(SPANS)


def test_rows_to_resend_past_the_limit_stay_in_the_journal(mapping_path: Path) -> None:
    platform = Platform()
    book, before = synced_then_killed_after_an_edit(mapping_path, platform, "after-send")
    book.write_bytes(before)
    platform.sent.clear()
    first = run(load_mapping(mapping_path), target=platform, limit=2)
    assert len(platform.sent[0]) == 2 and first.counts["pending"] == len(SPANS) - 2
    assert journal_states(mapping_path) == ["sending"] * (len(SPANS) - 2)
    platform.sent.clear()
    run(load_mapping(mapping_path), target=platform)
    assert len(platform.sent[0]) == len(SPANS) - 2
    assert platform.labels() == ["correct"] * len(SPANS)
    assert journal_states(mapping_path) == []


def test_a_first_sync_killed_then_edited_is_sent_as_an_update(mapping_path: Path) -> None:
    # never synced before: no sync_hash, but the platform may hold the killed run's labels
    platform = Platform()
    platform.die_after_send = True
    with pytest.raises(Killed):
        run(load_mapping(mapping_path), target=platform)
    platform.die_after_send = False
    book = mapping_path.parent / "labels.xlsx"
    relabel(book, "incorrect")
    platform.sent.clear()
    run(load_mapping(mapping_path), target=platform)
    assert [(a.label, a.is_update) for a in platform.sent[0]] == [("incorrect", True)] * len(SPANS)
    assert platform.labels() == ["incorrect"] * len(SPANS)
