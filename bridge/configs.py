"""The base of every source and target config model (the bottom layer).

A platform's or a medium's config model lives beside its adapter (for example
``bridge/targets/phoenix/config.py``); ``bridge.mapping`` puts them together into the mapping
file's contract. They all derive from these bases, so a mapping refuses unknown keys and the
pipeline can ask any target config the same few questions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from bridge.records import PlatformRule


class StrictModel(BaseModel):
    """Unknown keys are errors (with a "did you mean"), and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfigBase(StrictModel):
    """A medium's section of a mapping (``source:``)."""

    type: str


class TargetConfigBase(StrictModel):
    """A platform's section of a mapping (``target:``).

    ``ID_PATTERNS`` says what the ids of each record kind look like on this platform:
    ``kind -> (regex, what it looks like, for the message)``; a row whose id does not match
    is invalid and never sent.
    """

    type: str
    ID_PATTERNS: ClassVar[dict[str, tuple[str, str]]] = {}

    def record_kind(self) -> str:
        """What the id column holds, in words: a key of ``ID_PATTERNS``."""
        raise NotImplementedError

    def id_pattern(self) -> tuple[str, str]:
        """The regex of this config's record ids, and what they look like."""
        return self.ID_PATTERNS[self.record_kind()]

    def extra_columns(self) -> list[str]:
        """Sheet columns the target reads besides the annotation's own (none by default)."""
        return []

    def rule_conflicts(
        self, labels: Mapping[str, list[str] | None], rules: Mapping[str, PlatformRule]
    ) -> list[str]:
        """Where the platform's ``rules`` (pulled into the mapping, giving each annotation
        name the ``labels``) contradict this section's own settings, so that every row
        would be invalid; each with the fix. None by default."""
        return []

    def identity_columns(self) -> list[str]:
        """Sheet columns that, with the record id, the name and the annotator, tell one
        annotation from another (Phoenix's document position); none by default. Two rows
        alike in all of these are duplicates, and these columns find a row again at
        write-back time."""
        return []

    def notes_problem(self) -> str | None:
        """Why this platform cannot take an annotation entry's ``note_column`` (None: it can)."""
        return (
            f"{self.type} has no notes; remove note_column, or map the column as explanation_column"
        )


# OpenTelemetry ids, the same on every platform that stores spans (W3C Trace Context:
# trace-id is 16 bytes, parent-id/span-id 8 bytes, as lowercase hex).
OTEL_ID_PATTERNS: dict[str, tuple[str, str]] = {
    "span": (r"^[0-9a-f]{16}$", "16 lowercase hex characters, like 67f6740bbe1ddc3f"),
    "trace": (
        r"^[0-9a-f]{32}$",
        "32 lowercase hex characters, like 6c4d3e1b8a0f47c2a9e5d1b7c3f0a2e4",
    ),
    "session": (r"^\S(.{0,498}\S)?$", "a session id without leading or trailing spaces"),
}
