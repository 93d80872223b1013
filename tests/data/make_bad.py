"""Hostile and broken input for annobridge, generated deterministically.

    python tests/data/make_bad.py tests/data/bad     # write every case there, to look at

Each case is a folder holding the data file, ``mapping.yaml`` and ``expected.json``: what
``annobridge validate`` must exit with and say, and what a sync must send (only the valid
rows) and write back. ``tests/test_hostile_input.py`` builds the cases into a temporary folder
once per session and checks every one through the CLI and the library.

Nothing here needs a tool beyond the test dependencies: workbooks are written XML part by XML
part (``tests.builders.raw_book``) or with openpyxl, and the OLE compound files (an old .xls,
a password-protected workbook) are assembled byte by byte (``ole_file``).
"""

from __future__ import annotations

import json
import random
import struct
import sys
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from tests.builders import (  # noqa: E402
    HEADER,
    STYLE_DATE,
    ErrorValue,
    Formula,
    raw_book,
    span,
)

DATA = "labels.xlsx"


@dataclass
class Case:
    """One hostile input and what annobridge must make of it."""

    name: str
    what: str  # what is wrong with it, in a few words
    source: str  # the data file, relative to the case folder
    exit_code: int  # of `annobridge validate`
    says: list[str]  # in the output of `annobridge validate`
    # span ids a sync sends (each once), in sheet order
    sent: list[str] = field(default_factory=list)
    # sheet row -> sync_status a sync writes back (every data row)
    statuses: dict[int, str] = field(default_factory=dict)
    # a sync stops with this error (after sending ``sent``); the file is left as it was
    error: str = ""


Builder = Callable[[Path], Case]
CASES: dict[str, Builder] = {}


def case(fn: Builder) -> Builder:
    CASES[fn.__name__] = fn
    return fn


def mapping(folder: Path, source: str, extra: str = "", kind: str = "excel") -> None:
    (folder / "mapping.yaml").write_text(
        f"""\
source:
  type: {kind}
  path: {source}
{extra}target:
  type: phoenix
  url: http://127.0.0.1:9
state_dir: .state
annotations:
  - name: correctness
    id_column: span_id
    label_column: label
    score_column: score
    explanation_column: explanation
    annotator_column: annotator
    rules:
      labels: [correct, incorrect]
      score_min: 0
      score_max: 1
"""
    )


def book(folder: Path, rows: list[list[Any]], **kw: Any) -> str:
    raw_book(folder / DATA, rows, **kw)
    mapping(folder, DATA)
    return DATA


def row(
    n: int, label: Any = "correct", score: Any = None, text: Any = None, who: Any = "ann"
) -> list[Any]:
    return [span(n), label, score, text, who]


# --- OLE compound files ----------------------------------------------------------------------

_FREE, _END, _FAT_SECTOR, _NONE = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def _dir_entry(name: str, kind: int, start: int, size: int, right: int, child: int) -> bytes:
    encoded = (name.encode("utf-16-le") + b"\0\0") if name else b""
    return (
        encoded.ljust(64, b"\0")
        + struct.pack("<HBB", len(encoded), kind, 1)  # name length, type, colour black
        + struct.pack("<III", _NONE, right, child)  # left, right, child
        + b"\0" * 16  # CLSID
        + b"\0" * 4  # state bits
        + b"\0" * 16  # creation and modification times
        + struct.pack("<IQ", start, size)
    )


def ole_file(streams: dict[str, bytes]) -> bytes:
    """A minimal compound file (the container of .xls and of encrypted workbooks): a header,
    one FAT sector, one directory sector and the streams (each at least 4 KiB, so that none
    lives in the mini stream)."""
    sector = 512
    names = list(streams)
    data = [streams[n].ljust(4096, b"\0") for n in names]
    fat = [_FAT_SECTOR, _END]  # sector 0: the FAT, sector 1: the directory
    starts = []
    for blob in data:
        count = -(-len(blob) // sector)
        first = len(fat)
        starts.append(first)
        fat.extend(range(first + 1, first + count))
        fat.append(_END)
    if len(fat) > sector // 4:
        raise ValueError("streams too large for one FAT sector")
    fat += [_FREE] * (sector // 4 - len(fat))
    entries = [_dir_entry("Root Entry", 5, _END, 0, _NONE, 1 if names else _NONE)]
    for i, name in enumerate(names):
        right = i + 2 if i + 1 < len(names) else _NONE
        entries.append(_dir_entry(name, 2, starts[i], len(streams[name]), right, _NONE))
    entries += [_dir_entry("", 0, 0, 0, _NONE, _NONE)] * (4 - len(entries) % 4 or 0)
    directory = b"".join(entries)
    if len(directory) > sector:
        raise ValueError("too many streams for one directory sector")
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\0" * 6
        + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, _END, 0, _END, 0)
        + struct.pack("<I", 0)
        + struct.pack("<I", _FREE) * 108
    )
    assert len(header) == sector
    body = b"".join(blob.ljust(-(-len(blob) // sector) * sector, b"\0") for blob in data)
    return header + struct.pack(f"<{sector // 4}I", *fat) + directory.ljust(sector, b"\0") + body


ENCRYPTION_INFO = (
    b"\x04\x00\x04\x00\x40\x00\x00\x00"
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n<encryption '
    b'xmlns="http://schemas.microsoft.com/office/2006/encryption"><keyData saltSize="16" '
    b'blockSize="16" keyBits="256" hashSize="64" cipherAlgorithm="AES" cipherChaining='
    b'"ChainingModeCBC" hashAlgorithm="SHA512"/></encryption>'
)
BIFF8_BOF = bytes.fromhex("0908100000060500bb0dcc07c1000000")


# --- files that are not a readable workbook --------------------------------------------------


@case
def corrupt_zip(folder: Path) -> Case:
    noise = random.Random(1).randbytes(4000)
    (folder / DATA).write_bytes(b"PK\x03\x04" + noise)
    mapping(folder, DATA)
    says = "not an .xlsx workbook (an .xlsx file is a zip archive)"
    return Case("", "zip signature, then noise", DATA, 2, [says], error=says)


@case
def truncated_workbook(folder: Path) -> Case:
    raw_book(folder / DATA, [row(1)])
    whole = (folder / DATA).read_bytes()
    (folder / DATA).write_bytes(whole[: len(whole) // 2])
    mapping(folder, DATA)
    says = "not an .xlsx workbook (an .xlsx file is a zip archive)"
    return Case("", "the first half of a workbook", DATA, 2, [says], error=says)


@case
def zip_without_a_workbook(folder: Path) -> Case:
    with zipfile.ZipFile(folder / DATA, "w") as z:
        z.writestr("notes.txt", "not a workbook")
    mapping(folder, DATA)
    says = "not a readable .xlsx workbook"
    return Case("", "a zip of something else", DATA, 2, [says], error=says)


@case
def old_xls(folder: Path) -> Case:
    (folder / "labels.xls").write_bytes(ole_file({"Workbook": BIFF8_BOF}))
    mapping(folder, "labels.xls")
    says = "this is an old Excel 97-2003 workbook, not an .xlsx workbook"
    return Case("", "an Excel 97-2003 .xls", "labels.xls", 2, [says], error=says)


@case
def xls_renamed_xlsx(folder: Path) -> Case:
    (folder / DATA).write_bytes(ole_file({"Workbook": BIFF8_BOF}))
    mapping(folder, DATA)
    says = "this is an old Excel 97-2003 workbook (.xls) named .xlsx"
    return Case("", "an .xls saved under an .xlsx name", DATA, 2, [says], error=says)


@case
def password_protected(folder: Path) -> Case:
    streams = {
        "EncryptionInfo": ENCRYPTION_INFO,
        "EncryptedPackage": random.Random(2).randbytes(900),
    }
    (folder / DATA).write_bytes(ole_file(streams))
    mapping(folder, DATA)
    says = "the workbook is encrypted with a password"
    return Case("", "Encrypt with Password: an OLE container", DATA, 2, [says], error=says)


@case
def other_ole_file(folder: Path) -> Case:
    (folder / DATA).write_bytes(ole_file({"WordDocument": b"\xec\xa5\xc1\x00"}))
    mapping(folder, DATA)
    says = "this is an older Office file (an OLE compound document), not an .xlsx workbook"
    return Case("", "a Word 97 document named .xlsx", DATA, 2, [says], error=says)


@case
def macro_workbook(folder: Path) -> Case:
    raw_book(folder / "labels.xlsm", [row(1)])
    mapping(folder, "labels.xlsm")
    says = "this is a macro-enabled workbook, not an .xlsx workbook"
    return Case("", "an .xlsm", "labels.xlsm", 2, [says], error=says)


def _ods(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", "<office:document-content/>")


@case
def opendocument(folder: Path) -> Case:
    _ods(folder / "labels.ods")
    mapping(folder, "labels.ods")
    says = "this is an OpenDocument spreadsheet, not an .xlsx workbook"
    return Case("", "an .ods", "labels.ods", 2, [says], error=says)


@case
def ods_renamed_xlsx(folder: Path) -> Case:
    _ods(folder / DATA)
    mapping(folder, DATA)
    says = "this is an OpenDocument spreadsheet (.ods) with an .xlsx name"
    return Case("", "an .ods under an .xlsx name", DATA, 2, [says], error=says)


@case
def empty_file(folder: Path) -> Case:
    (folder / DATA).write_bytes(b"")
    mapping(folder, DATA)
    says = "the file is empty (0 bytes), not a workbook"
    return Case("", "0 bytes", DATA, 2, [says], error=says)


# --- sheets whose shape is wrong -------------------------------------------------------------


@case
def empty_sheet(folder: Path) -> Case:
    source = book(folder, [], header=None)
    says = "the worksheet is empty; it needs a header row and rows"
    return Case("", "a sheet without a cell", source, 2, [says], error=says)


@case
def header_only(folder: Path) -> Case:
    # nothing to do is a success for an unattended run: exit 0, nothing sent, nothing written
    source = book(folder, [])
    return Case("", "a header and no rows", source, 0, ["0 rows", "nothing to do"])


@case
def duplicated_header(folder: Path) -> Case:
    source = book(folder, [[*row(1), "x"]], header=[*HEADER, "label"])
    says = "column 'label' appears twice in header row 1 (columns B and F); rename one of them"
    return Case("", "two columns named label", source, 2, [says], error=says)


@case
def merged_header(folder: Path) -> Case:
    header = ["span_id", "label", None, "explanation", "annotator"]
    tail = '<mergeCells count="1"><mergeCell ref="B1:C1"/></mergeCells>'
    source = book(folder, [row(1, score=0.5)], header=header, tail=tail)
    says = [
        "column 'score' not found in header row 1",
        "Header cells B1:C1 are merged, so only the first column of each has a name",
    ]
    return Case("", "label's header merged over score's", source, 2, says, error=says[1])


@case
def header_below_a_title(folder: Path) -> Case:
    raw_book(folder / DATA, [HEADER, row(1)], header=["Week 12 labels"])
    mapping(folder, DATA)
    says = "or set header_row if the header is on another row"
    return Case("", "a title row above the header", DATA, 2, [says], error=says)


@case
def header_row_empty(folder: Path) -> Case:
    raw_book(folder / DATA, [row(1)])
    mapping(folder, DATA, extra="  header_row: 4\n")
    says = "header row 4 is empty"
    return Case("", "header_row points below the data", DATA, 2, [says], error=says)


@case
def missing_worksheet(folder: Path) -> Case:
    raw_book(folder / DATA, [row(1)])
    mapping(folder, DATA, extra="  worksheet: Lables\n")
    says = "no worksheet 'Lables' (did you mean 'Labels'?). Worksheets: 'Labels', 'Meta'"
    return Case("", "a misspelt worksheet name", DATA, 2, [says], error=says)


@case
def columns_20k(folder: Path) -> Case:
    header = [*HEADER, *[f"c{i}" for i in range(len(HEADER), 20_000)]]
    source = book(folder, [row(1)], header=header)
    says = "the sheet uses columns up to ACOF, so the 5 status columns"
    return Case("", "20,000 columns, past Excel's XFD", source, 2, [says], error=says)


@case
def merged_status_cells(folder: Path) -> Case:
    tail = '<mergeCells count="1"><mergeCell ref="F2:F3"/></mergeCells>'
    source = book(folder, [row(1), row(2)], header=[*HEADER, "sync_status"], tail=tail)
    says = "cannot write the status into merged cells (F3)"
    # validate reads only; a sync sends the valid rows, then cannot write their statuses
    return Case(
        "",
        "the status column merged over two rows",
        source,
        0,
        ["2 to send"],
        sent=[span(1), span(2)],
        error=says,
    )


# --- cells the rules must catch, row by row --------------------------------------------------


@case
def million_character_cells(folder: Path) -> Case:
    rows = [row(1, text="x" * 1_000_000), row(2, label="y" * 1_000_000), row(3)]
    source = book(folder, rows)
    says = [
        "row 2: invalid: explanation is 1,000,000 characters; the limit is 10,000",
        "row 3: invalid: label is 1,000,000 characters; the limit is 200; label "
        "'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy...' is not one of",
    ]
    return Case(
        "",
        "a million characters in a cell",
        source,
        1,
        says,
        sent=[span(3)],
        statuses={2: "invalid", 3: "invalid", 4: "synced"},
    )


@case
def control_characters(folder: Path) -> Case:
    # Excel stores characters XML cannot hold as _x0000_; calamine gives them back as such
    rows = [
        row(1, label="cor_x0000_rect"),
        row(2, who="ann_x0007_"),
        row(3, text="line one\nline two\ttabbed"),
    ]
    source = book(folder, rows)
    says = [
        "row 2: invalid: label holds an invisible control character (\\x00 at character 4); "
        "retype the text without it",
        "row 3: invalid: annotator holds an invisible control character (\\x07 at character 4)",
    ]
    return Case(
        "",
        "NUL and BEL inside cells",
        source,
        1,
        says,
        sent=[span(3)],
        statuses={2: "invalid", 3: "invalid", 4: "synced"},
    )


@case
def error_cells(folder: Path) -> Case:
    rows = [
        [ErrorValue("#REF!"), "correct", None, None, "ann"],
        row(2, label=ErrorValue("#N/A")),
        row(3, score=Formula("1/0", ErrorValue("#DIV/0!"))),
        row(4, text=Formula("VLOOKUP(A5,Meta!A:B,2,0)", ErrorValue("#N/A"))),
        row(5),
    ]
    source = book(folder, rows)
    says = [
        "row 2: invalid: span_id is the error #REF! in the sheet, not a value: fix the formula",
        "row 3: invalid: label is the error #N/A in the sheet",
        "row 4: invalid: score is the error #DIV/0! in the sheet",
        "row 5: invalid: explanation is the error #N/A in the sheet",
    ]
    statuses = {2: "invalid", 3: "invalid", 4: "invalid", 5: "invalid", 6: "synced"}
    return Case("", "#REF!, #N/A, #DIV/0!", source, 1, says, [span(5)], statuses)


@case
def formulas_as_labels(folder: Path) -> Case:
    rows = [
        row(1, label=Formula('IF(C2>0.5,"correct","incorrect")', "correct"), score=0.9),
        row(2, label=Formula('IF(C3>0.5,"correct","maybe")', "maybe"), score=0.1),
        row(3, label=Formula("B2", "incorrect")),
    ]
    source = book(folder, rows)
    says = ["row 3: invalid: label 'maybe' is not one of: correct, incorrect"]
    statuses = {2: "synced", 3: "invalid", 4: "synced"}
    return Case("", "labels computed by formulas", source, 1, says, [span(1), span(3)], statuses)


@case
def formula_like_text(folder: Path) -> Case:
    rows = [
        row(1, label='=HYPERLINK("http://evil.example","correct")'),
        row(2, label="+correct"),
        row(3, text="=1+1 is two", who="@bob"),
    ]
    source = book(folder, rows)
    says = [
        'row 2: invalid: label \'=HYPERLINK("http://evil.example","correct")\' is not one of',
        "row 3: invalid: label '+correct' is not one of",
    ]
    statuses = {2: "invalid", 3: "invalid", 4: "synced"}
    return Case("", "text that a spreadsheet would run", source, 1, says, [span(3)], statuses)


@case
def dates_numbers_and_booleans_as_ids(folder: Path) -> Case:
    rows = [
        [45413, "correct", None, None, "ann"],
        [12345, "correct", None, None, "ann"],
        [1.5e15, "correct", None, None, "ann"],
        [True, "correct", None, None, "ann"],
        row(5),
    ]
    source = book(folder, rows, styles={"A2": STYLE_DATE})
    says = [
        "row 2: invalid: span_id is a date (2024-05-01), not a span id",
        "row 3: invalid: span_id is a number (12345), not a span id; format the column as text",
        "row 4: invalid: span_id is a number (1500000000000000)",
        "row 5: invalid: span_id is TRUE (a yes/no cell), not a span id",
    ]
    statuses = {2: "invalid", 3: "invalid", 4: "invalid", 5: "invalid", 6: "synced"}
    return Case("", "ids typed as dates, numbers, TRUE", source, 1, says, [span(5)], statuses)


@case
def ids_with_spaces_or_capitals(folder: Path) -> Case:
    rows = [
        [f"  {span(1)}\u00a0", "correct", None, None, "ann"],
        ["000000000000ABCD", "correct", None, None, "ann"],
        ["00000000 00000003", "correct", None, None, "ann"],
        ["not an id", "correct", None, None, "ann"],
    ]
    source = book(folder, rows)
    says = [
        "row 3: invalid: span_id '000000000000ABCD' has capital letters; span ids are "
        "lowercase: '000000000000abcd'",
        "row 4: invalid: span_id '00000000 00000003' has spaces inside; remove them: "
        "'0000000000000003'",
        "row 5: invalid: span_id 'not an id' is not a span id (16 lowercase hex characters",
    ]
    statuses = {2: "synced", 3: "invalid", 4: "invalid", 5: "invalid"}
    return Case("", "ids padded, capitalised, split", source, 1, says, [span(1)], statuses)


@case
def duplicate_rows(folder: Path) -> Case:
    rows = [row(1, who="a"), row(1, label="incorrect", who="a"), row(1, who="b"), row(2)]
    source = book(folder, rows)
    says = [
        f"row 2: invalid: row 3 labels the same span {span(1)} for 'correctness' by the same "
        "annotator (a); keep one of these rows",
        f"row 3: invalid: row 2 labels the same span {span(1)}",
    ]
    statuses = {2: "invalid", 3: "invalid", 4: "synced", 5: "synced"}
    return Case(
        "", "one span, one annotator, two labels", source, 1, says, [span(1), span(2)], statuses
    )


@case
def nan_inf_and_negative_zero(folder: Path) -> Case:
    rows = [
        row(1, score=float("nan")),
        row(2, score=float("inf")),
        row(3, score="-inf"),
        row(4, score="NaN"),
        row(5, score=-0.0),
    ]
    source = book(folder, rows)
    says = [
        "row 2: invalid: score nan is not a finite number; enter a number",
        "row 3: invalid: score inf is not a finite number",
        "row 4: invalid: score -inf is not a finite number",
        "row 5: invalid: score NaN is not a finite number",
    ]
    statuses = {2: "invalid", 3: "invalid", 4: "invalid", 5: "invalid", 6: "synced"}
    return Case("", "NaN, inf, -inf and -0 scores", source, 1, says, [span(5)], statuses)


@case
def mixed_types_in_a_column(folder: Path) -> Case:
    rows = [
        row(1, score=0.5),
        row(2, score="0.75"),
        row(3, score="high"),
        row(4, score=True),
        row(5, score=45413),
        row(6, score="0,5"),
        row(7, score=1.5),
    ]
    source = book(folder, rows, styles={"C6": STYLE_DATE})
    says = [
        "row 4: invalid: score 'high' is not a number",
        "row 6: invalid: score is a date (2024-05-01), not a number",
        "row 7: invalid: score '0,5' is not a number; use a decimal point: 0.5",
        "row 8: invalid: score 1.5 is above the maximum 1",
    ]
    statuses = {2: "synced", 3: "synced", 4: "invalid", 5: "synced", 6: "invalid"}
    statuses |= {7: "invalid", 8: "invalid"}
    return Case(
        "",
        "numbers, text, TRUE, a date in score",
        source,
        1,
        says,
        [span(1), span(2), span(4)],
        statuses,
    )


@case
def booleans_and_numbers_as_labels(folder: Path) -> Case:
    source = book(folder, [row(1, label=True), row(2, label=1), row(3, label=" Correct ")])
    says = [
        "row 2: invalid: label 'true' is not one of: correct, incorrect",
        "row 3: invalid: label '1' is not one of: correct, incorrect",
    ]
    statuses = {2: "invalid", 3: "invalid", 4: "synced"}
    return Case("", "TRUE and 1 as labels", source, 1, says, [span(3)], statuses)


@case
def emoji_and_right_to_left_text(folder: Path) -> Case:
    rows = [
        row(1, text="👍 صحيح تماماً — נכון", who="مريم"),
        row(2, label="✅"),
        row(3, label="incorrect", text="🧪\u200f test", who="李雷"),
    ]
    source = book(folder, rows)
    says = ["row 3: invalid: label '✅' is not one of: correct, incorrect"]
    statuses = {2: "synced", 3: "invalid", 4: "synced"}
    return Case("", "emoji, Arabic, Hebrew, CJK", source, 1, says, [span(1), span(3)], statuses)


@case
def labels_without_ids(folder: Path) -> Case:
    rows = [[None, "correct", 0.5, None, "ann"], [None, "incorrect", None, "why", "bob"], row(3)]
    source = book(folder, rows)
    says = ["row 2: invalid: span_id is empty; paste the span id this label is about"]
    return Case(
        "",
        "labels with the id missing",
        source,
        1,
        says,
        [span(3)],
        {2: "invalid", 3: "invalid", 4: "synced"},
    )


@case
def scores_out_of_range(folder: Path) -> Case:
    rows = [row(1, score=1.5), row(2, score=-0.1), row(3, score=1e308), row(4, score=1)]
    source = book(folder, rows)
    says = [
        "row 2: invalid: score 1.5 is above the maximum 1",
        "row 3: invalid: score -0.1 is below the minimum 0",
        "row 4: invalid: score 1e+308 is above the maximum 1",
    ]
    statuses = {2: "invalid", 3: "invalid", 4: "invalid", 5: "synced"}
    return Case("", "1.5, -0.1, 1e308", source, 1, says, [span(4)], statuses)


@case
def formulas_in_status_cells(folder: Path) -> Case:
    # the patcher will not replace a formula: the write-back falls back to openpyxl
    header = [*HEADER, "sync_status"]
    rows = [[*row(1), Formula("TODAY()", 45000)], [*row(2, label="wrong"), None]]
    source = book(folder, rows, header=header)
    says = ["row 3: invalid: label 'wrong' is not one of"]
    return Case(
        "",
        "formulas typed into sync_status",
        source,
        1,
        says,
        [span(1)],
        {2: "synced", 3: "invalid"},
    )


# --- CSV -------------------------------------------------------------------------------------

CSV_HEADER = "span_id,label,score,explanation,annotator\n"


def csv_case(folder: Path, data: bytes, extra: str = "") -> str:
    (folder / "labels.csv").write_bytes(data)
    mapping(folder, "labels.csv", extra=extra, kind="csv")
    return "labels.csv"


@case
def csv_nul_bytes(folder: Path) -> Case:
    source = csv_case(folder, (CSV_HEADER + f"{span(1)},cor\0rect,,,ann\n").encode())
    says = "the file contains NUL bytes, so it is not utf-8-sig text"
    return Case("", "NUL bytes in a CSV", source, 2, [says], error=says)


@case
def csv_utf16(folder: Path) -> Case:
    source = csv_case(folder, (CSV_HEADER + f"{span(1)},correct,,,ann\n").encode("utf-16"))
    says = "if it was saved as 'Unicode Text' (UTF-16), set source.encoding: utf-16"
    return Case("", "a UTF-16 CSV", source, 2, [says], error=says)


@case
def csv_cp1252(folder: Path) -> Case:
    source = csv_case(folder, (CSV_HEADER + f"{span(1)},correct,,café,ann\n").encode("cp1252"))
    says = "line 2 is not valid utf-8-sig (byte 0xe9)"
    return Case("", "a cp1252 CSV read as UTF-8", source, 2, [says], error=says)


@case
def csv_semicolons(folder: Path) -> Case:
    text = CSV_HEADER.replace(",", ";") + f"{span(1)};correct;;;ann\n"
    source = csv_case(folder, text.encode())
    says = 'the columns are separated by ";", not ","; set source.delimiter: ";"'
    return Case("", "semicolons, not commas", source, 2, [says], error=says)


@case
def csv_unclosed_quote(folder: Path) -> Case:
    text = CSV_HEADER + f'{span(1)},correct,,"fine,ann\n{span(2)},correct,,,ann\n'
    source = csv_case(folder, text.encode())
    says = 'line 2 opens a quoted field (") that is never closed'
    return Case("", "a quote never closed", source, 2, [says], error=says)


@case
def csv_formula_injection(folder: Path) -> Case:
    text = CSV_HEADER + "".join(
        f"{span(n)},{label},,,ann\n"
        for n, label in enumerate(["=1+1", "+cmd|' /C calc'!A0", "@SUM(A1)", "correct"], 1)
    )
    source = csv_case(folder, text.encode())
    says = [
        "row 2: invalid: label '=1+1' is not one of",
        "row 3: invalid: label '+cmd|' /C calc'!A0' is not one of",
        "row 4: invalid: label '@SUM(A1)' is not one of",
    ]
    statuses = {2: "invalid", 3: "invalid", 4: "invalid", 5: "synced"}
    return Case("", "CSV injection payloads as labels", source, 1, says, [span(4)], statuses)


@case
def csv_million_character_cell(folder: Path) -> Case:
    text = CSV_HEADER + f"{span(1)},correct,,{'z' * 1_000_000},ann\n{span(2)},correct,,,ann\n"
    source = csv_case(folder, text.encode())
    says = ["row 2: invalid: explanation is 1,000,000 characters; the limit is 10,000"]
    return Case(
        "",
        "a million characters in a CSV cell",
        source,
        1,
        says,
        [span(2)],
        {2: "invalid", 3: "synced"},
    )


@case
def csv_ragged_rows(folder: Path) -> Case:
    text = (
        CSV_HEADER
        + f"{span(1)},correct\n"  # short: the rest is empty, the annotator too
        + f"{span(2)},correct,0.5,fine,ann,extra,cells\n"  # long: extra cells kept as they are
        + f"{span(3)}\n"  # only an id: nothing to send yet
        + "\n"
        + f"{span(4)},maybe,,,ann\n"
    )
    source = csv_case(folder, text.encode())
    says = [
        "row 2: invalid: annotator is empty: type the annotator's name in column 'annotator'",
        "row 6: invalid: label 'maybe' is not one of",
    ]
    statuses = {2: "invalid", 3: "synced", 4: "skipped", 6: "invalid"}
    return Case(
        "",
        "rows shorter and longer than the header",
        source,
        1,
        says,
        [span(2)],
        statuses,
    )


def build(root: Path) -> dict[str, Case]:
    """Write every case into ``root/<name>/``; return them by name."""
    out: dict[str, Case] = {}
    for name, builder in CASES.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        made = builder(folder)
        made.name = name
        (folder / "expected.json").write_text(json.dumps(asdict(made), indent=2) + "\n")
        out[name] = made
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "bad"
    cases = build(target)
    print(f"{len(cases)} cases written to {target}")
