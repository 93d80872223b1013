"""The ``source:`` section of a mapping for a Google Sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from bridge.configs import SourceConfigBase
from bridge.sources.gsheets.data import parse_spreadsheet


class GSheetConfig(SourceConfigBase):
    """A Google Sheet, by key or URL; the tab by title (``worksheet``) or id (``gid``).

    Without either, the tab in the URL's ``#gid=`` is used, else the first sheet (which costs
    one metadata request more per sync). ``credentials`` is a service-account key or an
    OAuth file; without it, GOOGLE_APPLICATION_CREDENTIALS, then gspread's own files.
    """

    type: Literal["gsheet"]
    spreadsheet: str
    worksheet: str | None = None
    gid: int | None = Field(default=None, ge=0)
    header_row: int = Field(default=1, ge=1)
    credentials: Path | None = None
    timeout: float = Field(default=60.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _title_as_text(cls, data: Any) -> Any:
        # YAML reads `worksheet: 2024` as a number; a tab titled 2024 is meant
        if isinstance(data, dict):
            title = data.get("worksheet")
            if isinstance(title, int | float) and not isinstance(title, bool):
                data = {**data, "worksheet": f"{title:g}"}
        return data

    @model_validator(mode="after")
    def _check(self) -> GSheetConfig:
        parse_spreadsheet(self.spreadsheet)  # ValueError says what is wrong and the fix
        if self.worksheet is not None and self.gid is not None:
            raise ValueError(
                "give worksheet (the tab's title) or gid (the number after #gid= in the "
                "tab's URL), not both"
            )
        return self
