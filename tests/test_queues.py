"""Review queues without a server: which rows complete their queue item, a failure to mark
them is a warning that keeps the statuses, and --queue on a target without queues."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bridge.cli import app
from bridge.errors import ConfigError, TargetUnreachable
from bridge.exporting import export
from bridge.mapping import load_mapping
from bridge.pipeline import run
from bridge.records import Annotation, ExportQuery, ExportRecord, Outcome
from bridge.targets.base import ReviewQueues
from tests.test_export import FakeTarget, mapping_file, rec, span
from tests.test_pipeline import SPANS, RecordingTarget, cells, mapping_path, workbook

__all__ = ["mapping_path"]  # the fixture


class QueueTarget(RecordingTarget):
    """In memory, with one review queue that completes what it is told."""

    def __init__(self, broken: bool = False, **kw: set[str]) -> None:
        super().__init__(**kw)
        self.broken = broken
        self.completed: list[tuple[str, Sequence[tuple[str, str]]]] = []

    def queue_records(self, name: str, query: ExportQuery) -> tuple[list[ExportRecord], list[str]]:
        return [], []

    def completion_queue(self) -> str | None:
        return "q1"

    def complete_queue_items(self, name: str, done: Sequence[tuple[str, str]]) -> int:
        if self.broken:
            raise TargetUnreachable("MLflow answered 503 after retries")
        self.completed.append((name, list(done)))
        return len(done)


def test_synced_rows_complete_their_items_and_failed_or_rejected_ones_do_not(
    tmp_path: Path, mapping_path: Path
) -> None:
    workbook(
        tmp_path / "labels.xlsx",
        [
            [SPANS[0], "correct", 1, "yes", "alice"],
            [SPANS[1], "correct", 1, "yes", "bob"],  # rejected
            [SPANS[2], "correct", 1, "yes", "carol"],  # failed
            [SPANS[3], "", "", "", "dan"],  # nothing yet
        ],
    )
    target = QueueTarget(reject={SPANS[1]}, fail={SPANS[2]})
    assert isinstance(target, ReviewQueues)
    result = run(load_mapping(mapping_path), target=target)
    assert target.completed == [("q1", [(SPANS[0], "alice")])]
    assert result.queue_completed == 1
    assert result.to_json()["queue_completed"] == 1


def test_a_record_with_a_failed_row_stays_pending_though_another_row_synced(
    tmp_path: Path, mapping_path: Path
) -> None:
    class FailsCarol(QueueTarget):
        def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
            out = super().send(annotations, progress)
            return [Outcome.failed("boom") if a.annotator == "carol" else o
                    for a, o in zip(annotations, out, strict=True)]  # fmt: skip

    workbook(
        tmp_path / "labels.xlsx",
        [
            [SPANS[0], "correct", 1, "yes", "alice"],
            [SPANS[0], "correct", 1, "yes", "carol"],  # failed: SPANS[0] stays pending
            [SPANS[1], "correct", 1, "yes", "bob"],
            [SPANS[1], "incorrect", 0, "no", "dan"],  # both synced: the first row's annotator
        ],
    )
    target = FailsCarol()
    run(load_mapping(mapping_path), target=target)
    assert target.completed == [("q1", [(SPANS[1], "bob"), (SPANS[1], "dan")])]


def test_a_queue_that_cannot_be_updated_is_a_warning_and_the_statuses_stand(
    tmp_path: Path, mapping_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    book = workbook(tmp_path / "labels.xlsx", [[SPANS[0], "correct", 1, "yes", "alice"]])
    result = run(load_mapping(mapping_path), target=QueueTarget(broken=True))
    assert result.exit_code == 0
    assert cells(book)[0]["sync_status"] == "synced"
    assert "review queue 'q1' not updated" in result.queue_warning
    assert "503" in result.queue_warning
    assert "review queue 'q1' not updated" in caplog.text


def test_queue_on_a_target_without_queues_is_refused(tmp_path: Path) -> None:
    mapping = load_mapping(mapping_file(tmp_path))
    with pytest.raises(ConfigError, match="review queues are MLflow's"):
        export(mapping, queue="q1", target=FakeTarget([rec(1)]))
    assert not (tmp_path / "labels.xlsx").exists()
    result = CliRunner().invoke(app, ["export", str(tmp_path / "m.yaml"), "--queue", "q1"])
    assert result.exit_code == 2
    assert "phoenix: review queues are MLflow's" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_queues_users_are_the_assignment_unless_assign_is_given(tmp_path: Path) -> None:
    class Queued(FakeTarget):
        def queue_records(
            self, name: str, query: ExportQuery
        ) -> tuple[list[ExportRecord], list[str]]:
            return [rec(1), rec(2)], ["u1", "u2"]

        def completion_queue(self) -> str | None:
            return None

        def complete_queue_items(self, name: str, done: Sequence[tuple[str, str]]) -> int:
            return 0

    mapping = load_mapping(mapping_file(tmp_path))
    target = Queued([rec(9)])  # the experiment's records: not listed with --queue
    plan = export(mapping, queue="q1", target=target, dry_run=True)
    assert [(r["span_id"], r["annotator"]) for r in plan.rows] == [
        (span(1), "u1"), (span(1), "u2"), (span(2), "u1"), (span(2), "u2"),
    ]  # fmt: skip
    assert plan.to_json()["queue"] == {"name": "q1", "users": ["u1", "u2"]}
    mine = export(mapping, queue="q1", target=target, assign=["me"], dry_run=True)
    assert [(r["span_id"], r["annotator"]) for r in mine.rows] == [(span(1), "me"), (span(2), "me")]
