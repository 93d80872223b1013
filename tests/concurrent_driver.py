"""Run the annobridge CLI against an accept-everything platform, lined up with other runs
(concurrency tests only).

    python -m tests.concurrent_driver BARRIER_DIR PARTIES sync mapping.yaml --json

The platform is in memory (every annotation is confirmed at once). Before writing its
statuses, each run waits until PARTIES runs have reached that point (files in BARRIER_DIR),
so that their status writes to one workbook start together; the write lock, if any, is
taken after that. Nothing in ``bridge`` knows about this: it is monkeypatched here.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge import pipeline
from bridge.records import Annotation, Outcome


class AcceptAll:
    name = "memory"
    kind = "span"

    def fingerprint(self) -> str:
        return "memory|concurrent"

    def payload(self, annotation: Annotation) -> dict[str, Any]:
        return {"id": annotation.target_id}

    def check(self) -> None:
        pass

    def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
        if progress:
            progress(len(annotations))
        return [Outcome.ok(f"id-{a.target_id}") for a in annotations]

    def close(self) -> None:
        pass


def barrier(directory: Path, parties: int, timeout: float = 120.0) -> None:
    (directory / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + timeout
    while len(list(directory.glob("ready-*"))) < parties:
        if time.monotonic() > deadline:
            raise SystemExit("the other runs never reached the write")
        time.sleep(0.01)


def main() -> None:
    directory, parties, *args = sys.argv[1:]
    pipeline.open_target = lambda mapping, **kw: AcceptAll()  # type: ignore[assignment,return-value]
    updates = pipeline._status_updates

    def lined_up(*a: Any, **kw: Any) -> Any:
        found = updates(*a, **kw)
        barrier(Path(directory), int(parties))
        return found

    pipeline._status_updates = lined_up  # type: ignore[assignment]
    from bridge.cli import app

    app(args, prog_name="annobridge")


if __name__ == "__main__":
    main()
