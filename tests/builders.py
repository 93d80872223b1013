"""Small builders shared by the source and rules tests: workbooks, CSV files, read specs."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import python_calamine

from bridge.records import Row, StatusColumns, StatusUpdate
from bridge.sources.base import ReadSpec
from tests.sheets_standin import column_letter

SPAN = "67f6740bbe1ddc3f"
SPAN2 = "0a1b2c3d4e5f6071"
TRACE = "6c4d3e1b8a0f47c2a9e5d1b7c3f0a2e4"

HEADER = ["span_id", "label", "score", "explanation", "annotator"]


def span(n: int) -> str:
    """A valid, distinct span id for row number ``n``."""
    return f"{n:016x}"


def read_spec(
    columns: Sequence[str] = ("span_id", "label", "score", "explanation", "annotator"),
    key_columns: Sequence[str] = ("span_id", "annotator"),
    status: StatusColumns | None = None,
) -> ReadSpec:
    return ReadSpec(
        columns=list(columns), key_columns=list(key_columns), status=status or StatusColumns()
    )


def make_book(
    path: Path,
    rows: Iterable[Sequence[Any]],
    *,
    header: Sequence[Any] | None = HEADER,
    sheet: str = "Labels",
    before: Iterable[Sequence[Any]] = (),
    other_sheets: Sequence[str] = (),
) -> Path:
    """An .xlsx with ``before`` rows (a title, say), then ``header``, then ``rows``."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for r in before:
        ws.append(list(r))
    if header is not None:
        ws.append(list(header))
    for r in rows:
        ws.append(list(r))
    for name in other_sheets:
        wb.create_sheet(name)["A1"] = f"{name} data"
    wb.save(path)
    return path


def update(row: Row, status: str = "synced", message: str = "", **more: str) -> StatusUpdate:
    """The status update the pipeline would make for ``row``."""
    values = {"sync_status": status, "sync_message": message, **more}
    return StatusUpdate(
        sheet_row=row.sheet_row, key=row.key, occurrence=row.occurrence, values=values
    )


def sheet_values(path: Path, sheet: str | None = None) -> list[list[Any]]:
    """Every row of a worksheet as plain values (openpyxl, formulas as their text)."""
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet] if sheet else wb.active
    return [list(r) for r in ws.iter_rows(values_only=True)]


def sheet_records(path: Path, sheet: str | None = "Labels") -> list[dict[str, Any]]:
    """Every data row of a worksheet as {header: value} (the header in row 1)."""
    rows = sheet_values(path, sheet)
    header = [str(h) for h in rows[0]]
    return [dict(zip(header, r, strict=False)) for r in rows[1:]]


def column_of(
    path: Path, name: str, sheet: str | None = None, header_row: int = 1
) -> dict[Any, Any]:
    """{value of the first column: value of column ``name``} for every data row."""
    rows = sheet_values(path, sheet)
    header = rows[header_row - 1]
    at = header.index(name)
    return {r[0]: r[at] for r in rows[header_row:] if r[0] is not None}


def tab_links(book: Path) -> dict[str, str]:
    """The Disagreements tab's link column, by record id."""
    rows = list(openpyxl.load_workbook(book)["Disagreements"].iter_rows(values_only=True))
    at, link = rows[0].index("record_id"), rows[0].index("link")
    return {str(r[at]): str(r[link]) for r in rows[1:]}


# --- workbooks the way Excel writes them ------------------------------------------------------
# openpyxl writes no cached formula results, no shared strings in the first place and no
# row spans; Excel does all three. ``raw_book`` writes the XML parts itself, so tests (and the
# bulk benchmark) can check what a write-back keeps of a workbook saved by Excel.

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"


@dataclass(frozen=True)
class Formula:
    """A formula cell; ``cached`` is the result Excel stored with it (None: none stored)."""

    text: str
    cached: Any = None


@dataclass(frozen=True)
class ErrorValue:
    """A cell holding an error value, as Excel stores #N/A or #REF!."""

    code: str


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# cell styles of ``raw_book``: 0 plain, 1 bold header with a fill, 2 a date, 3 a yellow fill
STYLE_HEADER, STYLE_DATE, STYLE_FILL = 1, 2, 3
_STYLES = "".join(
    [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n',
        f'<styleSheet xmlns="{MAIN_NS}">',
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/></numFmts>',
        '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>',
        '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>',
        '<fills count="4"><fill><patternFill patternType="none"/></fill>',
        '<fill><patternFill patternType="gray125"/></fill>',
        '<fill><patternFill patternType="solid"><fgColor rgb="FF305496"/></patternFill></fill>',
        '<fill><patternFill patternType="solid"><fgColor rgb="FFFFFF00"/></patternFill></fill>',
        "</fills>",
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>',
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>',
        '</cellStyleXfs><cellXfs count="4">',
        '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>',
        '<xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" ',
        'applyFill="1"/>',
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>',
        '<xf numFmtId="0" fontId="0" fillId="3" borderId="0" xfId="0" applyFill="1"/></cellXfs>',
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>',
        "</styleSheet>",
    ]
)


class _Strings:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.count = 0

    def add(self, text: str) -> int:
        self.count += 1
        return self.index.setdefault(text, len(self.index))

    def xml(self) -> str:
        items = "".join(
            f'<si><t xml:space="preserve">{_esc(t)}</t></si>'
            if t != t.strip()
            else f"<si><t>{_esc(t)}</t></si>"
            for t in self.index
        )
        return (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<sst xmlns="{MAIN_NS}" count="{self.count}" uniqueCount="{len(self.index)}">'
            f"{items}</sst>"
        )


def _cell_xml(
    ref: str, value: Any, style: int | None, strings: _Strings | None, p: str
) -> tuple[str, bool]:
    """(the <c> element, whether it holds a formula)."""
    s = f' s="{style}"' if style else ""
    if value is None:
        return (f'<{p}c r="{ref}"{s}/>' if style else ""), False
    if isinstance(value, Formula):
        f = f"<{p}f>{_esc(value.text)}</{p}f>"
        if value.cached is None:
            return f'<{p}c r="{ref}"{s}>{f}<{p}v></{p}v></{p}c>', True
        if isinstance(value.cached, str):
            return f'<{p}c r="{ref}"{s} t="str">{f}<{p}v>{_esc(value.cached)}</{p}v></{p}c>', True
        if isinstance(value.cached, ErrorValue):
            v = value.cached.code
            return f'<{p}c r="{ref}"{s} t="e">{f}<{p}v>{v}</{p}v></{p}c>', True
        return f'<{p}c r="{ref}"{s}>{f}<{p}v>{value.cached!r}</{p}v></{p}c>', True
    if isinstance(value, ErrorValue):
        return f'<{p}c r="{ref}"{s} t="e"><{p}v>{value.code}</{p}v></{p}c>', False
    if isinstance(value, bool):
        return f'<{p}c r="{ref}"{s} t="b"><{p}v>{int(value)}</{p}v></{p}c>', False
    if isinstance(value, int | float):
        return f'<{p}c r="{ref}"{s}><{p}v>{value!r}</{p}v></{p}c>', False
    text = str(value)
    if strings is not None:
        return f'<{p}c r="{ref}"{s} t="s"><{p}v>{strings.add(text)}</{p}v></{p}c>', False
    space = ' xml:space="preserve"' if text != text.strip() else ""
    inline = f"<{p}is><{p}t{space}>{_esc(text)}</{p}t></{p}is>"
    return f'<{p}c r="{ref}"{s} t="inlineStr">{inline}</{p}c>', False


def raw_book(
    path: Path,
    rows: Iterable[Sequence[Any]],
    *,
    header: Sequence[Any] | None = HEADER,
    sheet: str = "Labels",
    prefix: str = "",
    shared_strings: bool = True,
    spans: bool = True,
    styles: dict[str, int] | None = None,
    head: str = "",
    tail: str = "",
    meta: bool = True,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """An .xlsx written the way Excel writes one: shared strings, row spans, formulas with
    their cached results (``Formula``), a calcChain, a styled header, a second sheet "Meta"
    with a formula and a defined name.

    :param rows: the data rows, below ``header`` (row 1); ``None`` cells are left out.
    :param prefix: write the spreadsheetml elements with this namespace prefix ("x").
    :param styles: {"C3": style id} for cells beyond the header's style.
    :param head: XML put before <sheetData> (e.g. <cols>); ``tail``: after it (mergeCells,
        dataValidations, conditionalFormatting, hyperlinks...).
    """
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="{MAIN_NS}"' if prefix else f'xmlns="{MAIN_NS}"'
    strings = _Strings() if shared_strings else None
    styles = styles or {}
    formulas: list[str] = []
    all_rows = ([list(header)] if header is not None else []) + [list(r) for r in rows]
    width = max((len(r) for r in all_rows), default=1)
    body: list[str] = []
    for i, values in enumerate(all_rows, start=1):
        cells = []
        for j, value in enumerate(values):
            ref = f"{column_letter(j)}{i}"
            style = styles.get(ref, STYLE_HEADER if (i == 1 and header is not None) else None)
            xml, is_formula = _cell_xml(ref, value, style, strings, p)
            cells.append(xml)
            if is_formula:
                formulas.append(ref)
        span = f' spans="1:{width}"' if spans else ""
        body.append(f'<{p}row r="{i}"{span}>{"".join(cells)}</{p}row>')
    last = f"{column_letter(width - 1)}{max(len(all_rows), 1)}"
    sheet_xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<{p}worksheet {xmlns} xmlns:r="{REL_NS}"><{p}dimension ref="A1:{last}"/>{head}'
        f"<{p}sheetData>{''.join(body)}</{p}sheetData>{tail}</{p}worksheet>"
    )
    meta_xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{MAIN_NS}"><dimension ref="A1:B1"/><sheetData><row r="1">'
        '<c r="A1" t="inlineStr"><is><t>rows labelled</t></is></c>'
        f'<c r="B1"><f>COUNTA({sheet}!B2:B1000)</f><v>{len(all_rows) - 1}</v></c>'
        "</row></sheetData></worksheet>"
    )
    overrides = [
        ("/xl/workbook.xml", f"{_CT}.sheet.main+xml"),
        ("/xl/worksheets/sheet1.xml", f"{_CT}.worksheet+xml"),
        ("/xl/styles.xml", f"{_CT}.styles+xml"),
    ]
    rels = [
        ("rId1", "worksheet", "worksheets/sheet1.xml"),
        ("rId3", "styles", "styles.xml"),
    ]
    sheets = f'<sheet name="{_esc(sheet)}" sheetId="1" r:id="rId1"/>'
    if meta:
        overrides.append(("/xl/worksheets/sheet2.xml", f"{_CT}.worksheet+xml"))
        rels.append(("rId2", "worksheet", "worksheets/sheet2.xml"))
        sheets += '<sheet name="Meta" sheetId="2" r:id="rId2"/>'
        formulas.append("B1@2")
    if strings is not None:
        overrides.append(("/xl/sharedStrings.xml", f"{_CT}.sharedStrings+xml"))
        rels.append(("rId4", "sharedStrings", "sharedStrings.xml"))
    if formulas:
        overrides.append(("/xl/calcChain.xml", f"{_CT}.calcChain+xml"))
        rels.append(("rId5", "calcChain", "calcChain.xml"))
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        + "".join(f'<Override PartName="{n}" ContentType="{t}"/>' for n, t in overrides)
        + "</Types>"
    )
    workbook = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><sheets>{sheets}</sheets>'
        f'<definedNames><definedName name="labelled">{_esc(sheet)}!$B$2:$B$1000</definedName>'
        '</definedNames><calcPr calcId="191029"/></workbook>'
    )
    book_rels = "".join(
        f'<Relationship Id="{i}" Type="{REL_NS}/{t}" Target="{target}"/>' for i, t, target in rels
    )
    chain = "".join(
        f'<c r="{ref.split("@")[0]}" i="{ref.split("@")[1] if "@" in ref else 1}"/>'
        for ref in formulas
    )
    with zipfile.ZipFile(path, "w", compression) as z:
        z.writestr("[Content_Types].xml", content_types)
        z.writestr(
            "_rels/.rels",
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships '
            f'xmlns="{_PKG}"><Relationship Id="rId1" Type="{REL_NS}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        )
        z.writestr("xl/workbook.xml", workbook)
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships '
            f'xmlns="{_PKG}">{book_rels}</Relationships>',
        )
        z.writestr("xl/worksheets/sheet1.xml", sheet_xml)
        if meta:
            z.writestr("xl/worksheets/sheet2.xml", meta_xml)
        z.writestr("xl/styles.xml", _STYLES)
        if strings is not None:
            z.writestr("xl/sharedStrings.xml", strings.xml())
        if formulas:
            z.writestr(
                "xl/calcChain.xml",
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                f'<calcChain xmlns="{MAIN_NS}">{chain}</calcChain>',
            )
    return path


def sheet_xml(path: Path, part: str = "xl/worksheets/sheet1.xml") -> str:
    with zipfile.ZipFile(path) as z:
        return z.read(part).decode()


def calamine_grid(path: Path, sheet: str | None = None) -> list[list[Any]]:
    """A worksheet as calamine (the reader annobridge uses) sees it, cached values included."""
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    try:
        ws = book.get_sheet_by_name(sheet) if sheet else book.get_sheet_by_index(0)
        return ws.to_python(skip_empty_area=False)
    finally:
        book.close()
