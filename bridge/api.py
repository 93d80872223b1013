"""The library's entry points: typed, keyword-only, one per thing the CLI does.

>>> from bridge import api
>>> mapping = api.load_mapping("mappings/phoenix-excel.yaml")
>>> result = api.validate(mapping)          # read and check every row; send nothing
>>> result = api.sync(mapping, limit=100)   # send new and edited labels, write statuses
>>> result.counts["synced"], result.exit_code

The CLI (``bridge.cli``) parses options, calls these and prints; anything it can do, a
program can do through these with the same results and the same errors
(``bridge.errors.BridgeError`` and its subclasses, each with an ``exit_code``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from bridge import exporting as _export
from bridge import pipeline, platform_rules
from bridge.exporting import ExportResult
from bridge.mapping import MappingConfig, load_mapping
from bridge.pipeline import JobResult, OnProgress, SyncResult
from bridge.platform_rules import PlatformRules
from bridge.sources.base import ExportSink, Source
from bridge.targets.base import Target

__all__ = ["export", "load_mapping", "pull_rules", "run_all", "sync", "validate"]


def sync(
    mapping: MappingConfig,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    on_progress: OnProgress | None = None,
    stop: threading.Event | None = None,
    source: Source | None = None,
    target: Target | None = None,
) -> SyncResult:
    """Validate, send new and edited labels, confirm them, and write each row's status back.

    :param mapping: a loaded mapping (``load_mapping``).
    :param dry_run: send nothing and write nothing; ``result.planned`` holds what would be sent.
    :param limit: send at most this many rows; the others wait for the next run.
    :param on_progress: called with (annotations settled, annotations to send).
    :param stop: when set (e.g. on Ctrl-C), the run stops after the chunk in flight, writes
        the statuses it has, and returns with ``interrupted`` set.
    :param source: a Source to use instead of the mapping's (tests, embedding).
    :param target: a Target to use instead of the mapping's.
    :raises BridgeError: anything that stops the whole run (exit 2 or 3); row problems are
        in the result instead.
    """
    return pipeline.run(
        mapping,
        dry_run=dry_run,
        limit=limit,
        on_progress=on_progress,
        stop=stop,
        source=source,
        target=target,
    )


def validate(
    mapping: MappingConfig,
    *,
    source: Source | None = None,
    target: Target | None = None,
) -> SyncResult:
    """Read and check every row, as a sync would; send nothing, write nothing."""
    return pipeline.run(mapping, send=False, source=source, target=target)


def run_all(
    paths: Sequence[Path],
    *,
    dry_run: bool = False,
    limit: int | None = None,
    on_progress: OnProgress | None = None,
    stop: threading.Event | None = None,
    prepare: Callable[[MappingConfig], MappingConfig] | None = None,
) -> list[JobResult]:
    """Sync several mappings (files, or folders of them) one after the other.

    One that fails does not stop the others; each ``JobResult`` holds its result or the error
    that stopped it. ``prepare`` is called with each loaded mapping and its answer is synced
    instead (e.g. ``lambda m: pull_rules(m, dry_run=True).mapping``).
    """
    return pipeline.run_all(
        paths,
        stop=stop,
        prepare=prepare,
        dry_run=dry_run,
        limit=limit,
        on_progress=on_progress,
    )


def export(
    mapping: MappingConfig,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Sequence[str] = (),
    limit: int | None = None,
    assign: Sequence[str] = (),
    per_record: int = 1,
    queue: str | None = None,
    roots_only: bool = True,
    full_text: bool = False,
    dry_run: bool = False,
    sink: ExportSink | None = None,
    target: Target | None = None,
) -> ExportResult:
    """Append the platform's records that still need labels to the mapping's sheet.

    ``assign`` and ``per_record``: one row per (record, annotator), balanced (see
    README "Labelling rounds"); ``queue``: an MLflow review queue's pending items instead.
    See ``bridge.exporting.export`` for the rules (never a duplicate, cells cut at the medium's
    limit with a visible marker, dropdowns from the rules).
    """
    return _export.export(
        mapping,
        since=since,
        until=until,
        filters=filters,
        limit=limit,
        assign=assign,
        per_record=per_record,
        queue=queue,
        roots_only=roots_only,
        full_text=full_text,
        dry_run=dry_run,
        sink=sink,
        target=target,
    )


def pull_rules(
    mapping: MappingConfig, *, dry_run: bool = False, target: Target | None = None
) -> PlatformRules:
    """Read the annotation rules from the platform's own configs into the mapping file.

    With ``dry_run`` the file is left as it is; ``result.changes`` and ``result.diff`` say
    what would change.
    """
    return platform_rules.pull(mapping, dry_run=dry_run, target=target)
