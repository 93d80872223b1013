"""The neutral model shared by sources, rules, the pipeline and targets."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

# A cell that starts with one of these is read as a formula by Excel, Sheets or LibreOffice
# once the file is exported or retyped (CWE-1236). Nothing annobridge writes may start so.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


class Status(enum.StrEnum):
    SYNCED = "synced"
    INVALID = "invalid"
    REJECTED = "rejected"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class StatusColumns:
    """Header names of the status columns annobridge owns in a sheet."""

    status: str = "sync_status"
    synced_at: str = "synced_at"
    message: str = "sync_message"
    remote_id: str = "sync_id"
    hash: str = "sync_hash"

    def names(self) -> list[str]:
        return [self.status, self.synced_at, self.message, self.remote_id, self.hash]


@dataclass
class Row:
    """One data row of a sheet.

    ``sheet_row`` is the 1-based row number at read time; ``key`` identifies the row again
    at write time even if the SMEs sorted or inserted rows meanwhile; ``occurrence`` tells
    apart rows that share a key (0 for the first such row from the top).
    """

    sheet_row: int
    values: dict[str, Any]
    key: tuple[str, ...] = ()
    occurrence: int = 0
    status: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Annotation:
    """One annotation to send: what it is about, and what it says."""

    row_index: int
    name: str
    kind: str
    target_id: str
    label: str | None
    score: float | None
    explanation: str | None
    annotator: str | None
    annotator_kind: str
    identifier: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # True when this row was synced before, so the platform holds an older version.
    is_update: bool = field(default=False, compare=False)
    # Other columns of the row a target reads (Arize's record start time, log10 values).
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def content(self) -> dict[str, Any]:
        """What the annotation says, without where it came from: the basis of sync_hash."""
        body: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "id": self.target_id,
            "label": self.label,
            "score": self.score,
            "explanation": self.explanation,
            "annotator": self.annotator,
            "annotator_kind": self.annotator_kind,
            "identifier": self.identifier,
        }
        if self.extra:  # only when present, so hashes of rows without extras stay the same
            body["extra"] = {
                k: v if isinstance(v, str | int | float | bool | None) else str(v)
                for k, v in sorted(self.extra.items())
            }
        return body


@dataclass(frozen=True)
class Outcome:
    """What became of one annotation at the platform."""

    status: Status
    message: str = ""
    remote_id: str = ""

    @classmethod
    def ok(cls, remote_id: str) -> Outcome:
        return cls(Status.SYNCED, "", remote_id)

    @classmethod
    def rejected(cls, reason: str) -> Outcome:
        return cls(Status.REJECTED, reason)

    @classmethod
    def failed(cls, reason: str) -> Outcome:
        return cls(Status.FAILED, reason)


@dataclass(frozen=True)
class StatusUpdate:
    """The status cells of one row, located by key (and occurrence) at write time."""

    sheet_row: int
    key: tuple[str, ...]
    occurrence: int
    values: dict[str, str]


@dataclass
class WriteReport:
    """What a write-back did: rows written, and rows that vanished from the sheet."""

    written: int = 0
    vanished: list[StatusUpdate] = field(default_factory=list)
    moved: int = 0


def safe_text(value: object) -> str:
    """Text that no spreadsheet will read as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text
