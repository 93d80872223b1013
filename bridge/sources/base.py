"""The Source interface: where rows come from and where their status goes back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bridge.records import Row, StatusColumns, StatusUpdate, WriteReport


@dataclass(frozen=True)
class ReadSpec:
    """What the pipeline needs from a sheet.

    ``number_columns`` are the columns where numbers are expected (the scores): a source that
    must tell dates from numbers (Google Sheets) looks there only at numbers that could be dates.
    """

    columns: Sequence[str]
    key_columns: Sequence[str]
    status: StatusColumns
    number_columns: Sequence[str] = ()


class Source(Protocol):
    """A sheet of labels.

    ``read`` returns the data rows (each knowing its sheet position and key);
    ``check_writable`` fails early, before anything is sent, when the status cannot be
    written back; ``write_status`` writes only the status columns, locating each row by
    key at write time, in as few calls as the medium allows.
    """

    @property
    def label(self) -> str: ...

    def read(self, spec: ReadSpec) -> list[Row]: ...

    def check_writable(self) -> None: ...

    def write_status(self, spec: ReadSpec, updates: Sequence[StatusUpdate]) -> WriteReport: ...
