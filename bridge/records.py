"""The neutral models shared by every layer: sources, rules, use cases and targets.

Nothing here imports another bridge module: adapters and use cases meet on these types.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# A cell that starts with one of these is read as a formula by Excel, Sheets or LibreOffice
# once the file is exported or retyped (CWE-1236). Nothing annobridge writes may start so.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
# A cell that is nothing but a web address (an export's link column, a record's link).
_WEB_ADDRESS = re.compile(r"https?://\S+")


class Status(enum.StrEnum):
    SYNCED = "synced"
    INVALID = "invalid"
    REJECTED = "rejected"
    FAILED = "failed"
    SKIPPED = "skipped"
    RETRACTED = "retracted"


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


# The key of ``Annotation.extra`` that holds the annotation entry's note (its note_column's
# cell, "" when empty); a key no sheet column is likely to be named.
NOTE_EXTRA = "annobridge:note"


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


def web_address(value: object) -> str | None:
    """The cell's text when it is nothing but an http(s) address (spaces around it trimmed),
    else None: a formula, a number or other text never passes for a link."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text if _WEB_ADDRESS.fullmatch(text) else None


class CellError(str):
    """A spreadsheet error value (#N/A, #REF!, #DIV/0!...) where a value was expected.

    It is text for the rules, which say so in the row's status, but nothing for keys: a value
    reader at write time sees such a cell as empty, so its key part is "" both times.
    """


@dataclass(frozen=True)
class ExportQuery:
    """Which records to list.

    :param names: the mapping's annotation names; records holding all of them are skipped.
    :param annotator_kinds: only annotations of these kinds count as "already labelled".
    :param filters: in the platform's own syntax: Phoenix ``key:value`` attribute filters,
        MLflow search filter expressions (joined with AND).
    :param roots_only: Phoenix spans: root spans only (one per trace).
    :param full_text: MLflow: fetch the full request and response instead of the previews.
    """

    names: tuple[str, ...]
    annotator_kinds: tuple[str, ...] = ("HUMAN",)
    since: datetime | None = None
    until: datetime | None = None
    filters: tuple[str, ...] = ()
    roots_only: bool = True
    full_text: bool = False
    page_size: int = 500


@dataclass(frozen=True)
class ExportDocument:
    """One document a retriever returned (OpenInference ``retrieval.documents``)."""

    position: int
    document_id: str | None = None
    content: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class ExportRecord:
    """One record of the platform, as a row to label.

    A retriever span exported for document annotations gives one record per document it
    returned: the same ``record_id`` (the span), each with its ``document``.
    """

    record_id: str
    input: str | None = None
    output: str | None = None
    start_time: datetime | None = None
    url: str | None = None
    # the query's annotation names this record already holds
    annotated: frozenset[str] = frozenset()
    document: ExportDocument | None = None


@dataclass(frozen=True)
class Validation:
    """A rule for the cells of one column: a list of allowed values, or a number range."""

    column: str
    kind: Literal["list", "number"]
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    title: str = ""

    def describe(self) -> str:
        if self.kind == "list":
            return f"{self.column}: one of {', '.join(self.options)}"
        low = "-inf" if self.minimum is None else _num(self.minimum)
        high = "inf" if self.maximum is None else _num(self.maximum)
        return f"{self.column}: a number from {low} to {high}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def list_problem(options: Sequence[str], max_length: int | None = None) -> str | None:
    """Why these labels cannot be a dropdown (None when they can)."""
    if any(str(o).startswith(FORMULA_TRIGGERS) for o in options):
        return "a label starts with = + - or @, which a spreadsheet reads as a formula"
    if max_length is not None:
        if any("," in o or '"' in o for o in options):
            return "a label contains a comma or a double quote"
        if len(",".join(options)) > max_length:
            return f"the labels are longer than Excel's {max_length} characters for a dropdown"
    return None


@dataclass
class AppendReport:
    """What an append did: the sheet rows written and the header cells added."""

    first_row: int = 0
    last_row: int = 0
    added_columns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlatformRule:
    """What the platform says about one annotation name.

    :param values: the rule keys the platform decides (labels, score_min, score_max); a value
        of None means "no such limit" and removes the key from the mapping.
    """

    name: str
    origin: str
    values: dict[str, Any] = field(default_factory=dict, hash=False)


def finite_number(value: Any) -> float | None:
    """A platform's bound as a float, or None when it is absent, not a number or infinite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class JudgeLabel:
    """An LLM judge's annotation of one record, as the platform holds it."""

    record_id: str
    label: str | None
    score: float | None
    explanation: str = ""
    judge: str = ""  # the platform's name for the judge (identifier, source id)
