"""The ``source:`` section of a mapping for an Excel workbook (.xlsx)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bridge.configs import SourceConfigBase


class ExcelConfig(SourceConfigBase):
    type: Literal["excel"]
    path: Path
    worksheet: str | None = None
    header_row: int = Field(default=1, ge=1)
