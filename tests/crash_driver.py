"""Run the annobridge CLI and SIGKILL it at a chosen point of a sync (crash tests only).

    python -m tests.crash_driver POINT CHUNK sync mapping.yaml --json

POINT says where, CHUNK in which chunk of ``SEND_CHUNK_ROWS`` rows (1 = the first):

- ``in-flight``: inside the chunk's send, once half of its annotations were confirmed by the
  platform: the rest are on their way, the journal says ``sending``;
- ``after-send``: the platform answered the whole chunk, the pipeline has not journaled the
  confirmation yet: the journal says ``sending`` for rows that all landed;
- ``after-confirmed``: the confirmation is journaled; the statuses are not written.

Nothing in ``bridge`` knows about this: the points are monkeypatched here, in the process that
is killed, so production code has no test hook. SIGKILL runs no handler, no ``finally``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from bridge import pipeline
from bridge.records import Annotation, Outcome


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str, chunk: int) -> None:
    calls = {"send": 0, "confirmed": 0}
    open_target = pipeline.open_target

    def killing_target(mapping: Any, **kwargs: Any) -> Any:
        target = open_target(mapping, **kwargs)
        send = target.send

        def send_then_maybe_die(
            annotations: Sequence[Annotation], progress: Any = None
        ) -> list[Outcome]:
            calls["send"] += 1
            if point != "in-flight" or calls["send"] != chunk:
                return send(annotations, progress=progress)
            settled = 0
            half = max(1, len(annotations) // 2)

            def advance(n: int) -> None:
                nonlocal settled
                settled += n
                if progress:
                    progress(n)
                if settled >= half:
                    die()  # confirmed so far: `settled`; the rest are still being sent

            return send(annotations, progress=advance)

        target.send = send_then_maybe_die  # type: ignore[method-assign]
        return target

    pipeline.open_target = killing_target  # type: ignore[assignment]
    confirmed = pipeline.Journal.confirmed

    def confirmed_then_maybe_die(
        self: pipeline.Journal, rows: Iterable[tuple[str, str, str]]
    ) -> None:
        calls["confirmed"] += 1
        if calls["confirmed"] == chunk and point == "after-send":
            die()  # the platform answered; the journal still says "sending"
        confirmed(self, rows)
        if calls["confirmed"] == chunk and point == "after-confirmed":
            die()  # journaled as confirmed; no status written

    pipeline.Journal.confirmed = confirmed_then_maybe_die  # type: ignore[method-assign]


def main() -> None:
    point, chunk, *args = sys.argv[1:]
    if point not in ("in-flight", "after-send", "after-confirmed"):
        raise SystemExit(f"unknown kill point {point!r}")
    arm(point, int(chunk))
    from bridge.cli import app

    app(args, prog_name="annobridge")


if __name__ == "__main__":
    main()
