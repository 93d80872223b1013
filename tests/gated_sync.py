"""``python -m tests.gated_sync DIR annobridge-args...``: the real CLI, with a target that
holds each send until DIR/go exists, for tests of signals and the progress bar.

Each send writes DIR/sending-N (the ids it carries) the moment it starts, so a test knows a
send is in flight before it signals; chunks are two rows, so a run has several. No network.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bridge.pipeline as pipeline
from bridge.records import Annotation, Outcome


class GatedTarget:
    name = "memory"
    kind = "span"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def fingerprint(self) -> str:
        return "memory|gated"

    def payload(self, a: Annotation) -> dict[str, Any]:
        return {"span_id": a.target_id, "label": a.label}

    def check(self) -> None:
        pass

    def send(self, annotations: Sequence[Annotation], progress: Any = None) -> list[Outcome]:
        n = len(list(self.directory.glob("sending-*")))
        ids = [a.target_id for a in annotations]
        (self.directory / f"sending-{n}").write_text(json.dumps(ids))
        while not (self.directory / "go").exists():
            time.sleep(0.02)
        for _ in annotations:
            if progress:
                progress(1)
        return [Outcome.ok(f"id-{i}") for i in ids]

    def close(self) -> None:
        pass


def main() -> None:
    directory = Path(sys.argv[1])
    pipeline.SEND_CHUNK_ROWS = 2
    pipeline.open_target = lambda mapping, **kw: GatedTarget(directory)  # type: ignore[assignment]
    from bridge.cli import main as cli

    sys.argv = ["annobridge", *sys.argv[2:]]
    cli()


if __name__ == "__main__":
    main()
