"""The Source interface: where rows come from and where their status goes back.

The optional capability of a medium, taking exported rows (``ExportSink``), is a declared
protocol like the targets' capabilities (see ``bridge.targets.base``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bridge.records import AppendReport, Row, StatusColumns, StatusUpdate, Validation, WriteReport


@dataclass(frozen=True)
class ReadSpec:
    """What the pipeline needs from a sheet.

    ``number_columns`` are the columns where numbers are expected (the scores): a source that
    must tell dates from numbers (Google Sheets) looks there only at numbers that could be dates.
    ``optional_columns`` are read when the header has them (into ``Row.values``, as text or
    numbers as read) and are no error when it does not; a row is blank, and left out, by
    ``columns`` alone.
    """

    columns: Sequence[str]
    key_columns: Sequence[str]
    status: StatusColumns
    number_columns: Sequence[str] = ()
    optional_columns: Sequence[str] = ()


@runtime_checkable
class Source(Protocol):
    """A sheet of labels.

    ``read`` returns the data rows (each knowing its sheet position and key);
    ``check_writable`` fails early, before anything is sent, when the status cannot be
    written back; ``write_status`` writes only the status columns, locating each row by
    key at write time, in as few calls as the medium allows; ``close`` lets go of
    connections and files.
    """

    @property
    def label(self) -> str: ...

    def read(self, spec: ReadSpec) -> list[Row]: ...

    def check_writable(self) -> None: ...

    def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport: ...

    def close(self) -> None: ...


@runtime_checkable
class FileMedium(Protocol):
    """A sheet kept in one local file (a workbook, a CSV): runs that write it take a lock on
    the file (``bridge.state.MediumLock``), so two mappings on one workbook never lose each
    other's statuses."""

    path: Path


@runtime_checkable
class ExportSink(Protocol):
    """A sheet that export can append to: new rows below the last, dropdowns on columns."""

    @property
    def label(self) -> str: ...

    cell_limit: int

    def existing_ids(self, id_column: str) -> set[str]: ...

    def append_rows(
        self, header: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> AppendReport: ...

    def add_validations(self, validations: Sequence[Validation]) -> list[str]: ...

    def close(self) -> None: ...


@runtime_checkable
class WritesOwnedTabs(Protocol):
    """Can replace whole tabs that annobridge owns (``Agreement``, ``Disagreements``) in the
    same workbook or spreadsheet, never touching any other tab."""

    def replace_tab(self, title: str, rows: Sequence[Sequence[Any]]) -> None:
        """Create the tab, or clear it, and write ``rows`` (the first is the header) as text
        and numbers, never as formulas."""
        ...
