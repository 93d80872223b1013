"""The ``target:`` section of a mapping for Arize Phoenix."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from bridge.configs import OTEL_ID_PATTERNS, TargetConfigBase


class PhoenixConfig(TargetConfigBase):
    type: Literal["phoenix"]
    ID_PATTERNS: ClassVar[dict[str, tuple[str, str]]] = OTEL_ID_PATTERNS

    url: str | None = None
    annotate: Literal["span", "trace", "session"] = "span"
    project: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    # At most this many annotations are queued on the server and not yet confirmed: Phoenix
    # merges queued requests into one statement, which SQLite and Postgres refuse past a few
    # thousand rows (docs/platform-notes.md, "Phoenix").
    max_unconfirmed: int = Field(default=2000, ge=1, le=10_000)
    confirm_timeout: float = Field(default=30.0, gt=0)

    def record_kind(self) -> str:
        """What the id column holds: span, trace or session ids."""
        return self.annotate
