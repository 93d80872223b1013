"""Tabs annobridge owns in a workbook (``Agreement``, ``Disagreements``): replaced whole.

The workbook is loaded with openpyxl and saved atomically beside itself (``save_beside``),
the same trade-off as export's appends: every other sheet keeps its cells, formatting,
formulas, comments and validations; cached formula results are recomputed when Excel or
LibreOffice opens the file. Only the named tab is touched: a tab of that name that the SMEs
made is refused rather than overwritten (annobridge marks its own tabs in cell A1's comment).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from bridge.errors import SourceError, SourceUnavailable
from bridge.records import safe_text, web_address
from bridge.sources.base import WritesOwnedTabs
from bridge.sources.excel.source import ExcelSource, save_beside

OWNED_MARK = "annobridge owns this tab and replaces it on each run"


def replace_tab(path: Path, title: str, rows: Sequence[Sequence[Any]]) -> None:
    """Replace (or add, last) the tab ``title`` of the workbook with ``rows``."""
    # openpyxl loads here, not at import: reading and validating a workbook never need it
    import openpyxl
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.comments import Comment
    from openpyxl.styles import Font
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, rich_text=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise SourceError(
            f"{path}: not a readable .xlsx workbook ({type(exc).__name__}); open it in Excel "
            "and save it as an Excel Workbook (.xlsx)"
        ) from None
    except OSError as exc:
        raise SourceUnavailable(f"{path}: cannot open the workbook ({exc.strerror})") from exc
    if title in book.sheetnames:
        old = book[title]
        mark = old["A1"].comment
        if old.max_row > 1 or old["A1"].value is not None:
            if mark is None or OWNED_MARK not in mark.text:
                raise SourceError(
                    f"{path}: the workbook has a tab '{title}' that annobridge did not write; "
                    "rename that tab (annobridge replaces its own tabs of that name on each run)"
                )
        index = book.sheetnames.index(title)
        book.remove(old)
        sheet = book.create_sheet(title, index)
    else:
        sheet = book.create_sheet(title)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c)
            if isinstance(value, bool) or not isinstance(value, int | float):
                cell.value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", safe_text(value))
                cell.data_type = "s"  # text, never a formula
                url = web_address(cell.value) if r > 1 else None
                if url:  # a record's link: clickable, as export writes it
                    cell.hyperlink = url
                    cell.style = "Hyperlink"
            else:
                cell.value = value
            if r == 1:
                cell.font = Font(bold=True)
    first = sheet.cell(row=1, column=1)
    first.comment = Comment(OWNED_MARK, "annobridge")
    sheet.freeze_panes = "A2"

    def write(fh: IO[bytes]) -> None:
        book.save(fh)

    save_beside(path, write, "cannot save the workbook ({reason}); close it in Excel and retry")


class ExcelWorkbookSource(ExcelSource, WritesOwnedTabs):
    """An Excel worksheet of labels, in a workbook that can also hold annobridge's own tabs."""

    def replace_tab(self, title: str, rows: Sequence[Sequence[Any]]) -> None:
        replace_tab(self.path, title, rows)
