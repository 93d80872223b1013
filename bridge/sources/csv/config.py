"""The ``source:`` section of a mapping for a CSV file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bridge.configs import SourceConfigBase


class CsvConfig(SourceConfigBase):
    type: Literal["csv"]
    path: Path
    header_row: int = Field(default=1, ge=1)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"
