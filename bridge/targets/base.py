"""The Target interface: where annotations go."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bridge.records import Annotation, Outcome

Progress = Callable[[int], None]
"""Called with the number of annotations just settled (synced, rejected or failed)."""


class Target(Protocol):
    """A platform that stores annotations.

    ``send`` returns one Outcome per annotation, in order: synced with the platform's id,
    rejected with the platform's reason, or failed (retryable). It raises only when the
    platform cannot be used at all (unreachable, auth refused).
    """

    name: str
    kind: str

    def fingerprint(self) -> str:
        """Where annotations go (platform, server, project): part of every row's sync_hash."""
        ...

    def payload(self, annotation: Annotation) -> dict[str, Any]:
        """The JSON the platform receives for one annotation (shown by --dry-run)."""
        ...

    def check(self) -> None:
        """Fail fast, before anything is sent, when the platform is unreachable or refuses us."""
        ...

    def send(
        self, annotations: Sequence[Annotation], progress: Progress | None = None
    ) -> list[Outcome]: ...

    def close(self) -> None: ...


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
