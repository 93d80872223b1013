"""Write a few cells of one worksheet of an .xlsx without loading the workbook.

An .xlsx is a zip of XML parts. ``patch_workbook`` copies every part as it is, the compressed
bytes themselves, except the worksheet's own XML, which it streams once, row by row, and in
which it changes only the planned cells: an existing cell is replaced (keeping its style), a
missing one is inserted in column order, a missing row is created, and ``<dimension>`` and a
row's ``spans`` are widened to cover them. Every other byte of the worksheet, formulas and
their cached values included, is copied unchanged. Text is written as an inline string
(``t="inlineStr"``), never as a formula.

The scanner relies on what makes the worksheet part simple: inside ``<sheetData>`` every
``<`` starts a tag (text and attribute values escape it), rows come in ascending order, cells
in column order, and each carries its reference (``r``). A worksheet where one of these does
not hold (comments or CDATA before the end of ``<sheetData>``, rows or cells without a
reference, an encoding other than UTF-8), or where a cell to replace holds a formula, raises
``PatchUnsupported``: the caller then uses a slower writer that parses the whole workbook.
"""

from __future__ import annotations

import posixpath
import re
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO
from xml.etree import ElementTree

from bridge.sources._table import column_letter

MAIN_NS = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_MAIN = "{" + MAIN_NS.decode() + "}"

MAX_COLUMNS = 16_384  # XFD
# Excel keeps at most this many characters (UTF-16 code units) in a cell.
TEXT_LIMIT = 32_767
CHUNK = 1 << 20
# zlib level of the rewritten worksheet part: 6 is zlib's (and zipfile's) default.
COMPRESS_LEVEL = 6

# One start tag, quotes may hold ">": matched at a "<" known to start a tag.
_TAG = re.compile(rb"<[^>\"']*(?:(?:\"[^\"]*\"|'[^']*')[^>\"']*)*>")
# One attribute of a start tag (XML: Name S? = S? AttValue).
_ATTR = re.compile(rb"([^\s=/<>\"']+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
OUT_CHUNK = 1 << 20
_SPACE = b" \t\r\n"
# characters that send a text through the slow path of ``_cell_xml``: XML escapes, and "_"
# which may start an _x0000_ escape
_ESCAPES = frozenset("&<>_")
_DELIMS = frozenset(b" \t\r\n/>")
_DIGITS = b"0123456789"
_SLASH = ord("/")


class PatchUnsupported(Exception):
    """The worksheet has a feature this writer does not change safely."""


class ColumnsInUse(Exception):
    """Cells right of where new columns were planned hold something a value reader missed
    (a formula without a cached result, an error): plan the new columns right of ``last``."""

    def __init__(self, last: int) -> None:
        super().__init__(f"column {last} holds data")
        self.last = last


class InsideArrayFormula(Exception):
    """A cell to write is part of an array formula (or data table) anchored elsewhere."""

    def __init__(self, cell: str, ref: str) -> None:
        super().__init__(f"{cell} is part of the array formula {ref}")
        self.cell = cell
        self.ref = ref


@dataclass(frozen=True)
class SheetPatch:
    """The cells to write: ``cells[sheet row][0-based column] = text``.

    :param header_row: the header row; its cells in ``new_columns`` take the style of the
        header cell in column ``style_from`` (the column left of them).
    :param new_columns: columns created by this write: any existing cell there that holds
        something raises ``ColumnsInUse``.
    """

    cells: Mapping[int, Mapping[int, str]]
    header_row: int = 1
    style_from: int | None = None
    new_columns: frozenset[int] = frozenset()


def _split_ref(ref: bytes) -> tuple[int, int]:
    """b"AB12" -> (27, 12): 0-based column, 1-based row."""
    letters = ref.rstrip(_DIGITS)
    digits = ref[len(letters) :]
    if not (1 <= len(letters) <= 3 and digits and letters.isalpha() and letters.isupper()):
        raise PatchUnsupported(f"unexpected cell reference {ref!r}")
    col = 0
    for ch in letters:
        col = col * 26 + ch - 64
    return col - 1, int(digits)


def _range(ref: bytes) -> tuple[int, int, int, int]:
    """b"B2:D9" (or b"B2") -> (row0, col0, row1, col1), rows 1-based, columns 0-based."""
    first, _, last = ref.partition(b":")
    c0, r0 = _split_ref(first.replace(b"$", b""))
    c1, r1 = _split_ref(last.replace(b"$", b"")) if last else (c0, r0)
    return min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1)


def _is_xml_char(cp: int) -> bool:
    return (
        cp in (0x9, 0xA)
        or 0x20 <= cp <= 0xD7FF
        or 0xE000 <= cp <= 0xFFFD
        or 0x10000 <= cp <= 0x10FFFF
    )


def cell_text(text: str) -> str:
    """Text as it must be stored in an .xlsx cell so that Excel reads back ``text``.

    Cut to Excel's 32,767 characters (ending with "…"); characters XML cannot hold
    (NUL and other control characters, lone surrogates) and carriage returns are written
    the way Excel writes them, ``_x0000_``; text that already looks like such an escape
    gets its underscore escaped (``_x005F_``), so that it is not decoded.
    """
    if len(text) > TEXT_LIMIT // 2:
        units = 0
        for i, ch in enumerate(text):
            units += 2 if ord(ch) > 0xFFFF else 1
            if units > TEXT_LIMIT - 1:
                if i + 1 < len(text):
                    text = text[:i] + "…"
                break
    if text.isprintable() and "_x" not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        cp = ord(ch)
        if ch == "_" and _looks_escaped(text, i):
            out.append("_x005F_")
        elif cp == 0xD or not _is_xml_char(cp):
            out.append(f"_x{cp:04X}_")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _looks_escaped(text: str, i: int) -> bool:
    """True when ``text[i:]`` starts like ``_x00A0_``."""
    chunk = text[i : i + 7]
    return (
        len(chunk) == 7
        and chunk[1] == "x"
        and chunk[6] == "_"
        and all(c in "0123456789abcdefABCDEF" for c in chunk[2:6])
    )


def _xml_escape(text: str) -> bytes:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").encode("utf-8")


# --- locating the worksheet part ----------------------------------------------------------


def _xml(zf: zipfile.ZipFile, name: str) -> ElementTree.Element:
    data = zf.read(name)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise PatchUnsupported(f"{name} declares a document type, which Excel never writes")
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise PatchUnsupported(f"{name} is not well-formed XML ({exc})") from exc


def _member(zf: zipfile.ZipFile, name: str) -> str | None:
    """The zip member named ``name``; part names are case-insensitive in OOXML."""
    names = zf.namelist()
    if name in names:
        return name
    folded = [n for n in names if n.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def _rels(zf: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """{relationship id: (type, target part)} of a part, targets resolved to zip names."""
    folder, base = posixpath.split(part)
    rels_name = _member(zf, posixpath.join(folder, "_rels", base + ".rels"))
    if rels_name is None:
        return {}
    out: dict[str, tuple[str, str]] = {}
    for rel in _xml(zf, rels_name).iter(_PKG_REL):
        if rel.get("TargetMode") == "External":
            continue
        target = rel.get("Target", "")
        resolved = (
            target.lstrip("/")
            if target.startswith("/")
            else posixpath.normpath(posixpath.join(folder, target))
        )
        out[rel.get("Id", "")] = (rel.get("Type", ""), resolved)
    return out


@dataclass(frozen=True)
class SheetParts:
    """Where a worksheet lives in the zip, and the tables (list objects) on it."""

    part: str
    tables: tuple[tuple[int, int, int, int], ...]


def find_sheet(zf: zipfile.ZipFile, sheet_name: str) -> SheetParts:
    """The zip member of the worksheet named ``sheet_name`` and its tables' ranges.

    :raises PatchUnsupported: the package is laid out in a way this writer does not know.
    """
    book = "xl/workbook.xml"
    for _, (kind, target) in _rels(zf, "").items():
        if kind.endswith("/officeDocument"):
            book = target
    book_name = _member(zf, book)
    if book_name is None:
        raise PatchUnsupported("no workbook part")
    root = _xml(zf, book_name)
    if root.tag != _MAIN + "workbook":
        raise PatchUnsupported(f"a workbook in another XML namespace ({root.tag})")
    rel_id = None
    for sheet in root.iter(_MAIN + "sheet"):
        if sheet.get("name") == sheet_name:
            rel_id = sheet.get(f"{{{_REL}}}id")
    targets = _rels(zf, book_name)
    if rel_id is None or rel_id not in targets:
        raise PatchUnsupported(f"worksheet '{sheet_name}' not found in the workbook part")
    kind, target = targets[rel_id]
    part = _member(zf, target)
    if not kind.endswith("/worksheet") or part is None:
        raise PatchUnsupported(f"'{sheet_name}' is not a plain worksheet ({kind})")
    tables: list[tuple[int, int, int, int]] = []
    for kind, target in _rels(zf, part).values():
        table = _member(zf, target) if kind.endswith("/table") else None
        if table is not None:
            ref = _xml(zf, table).get("ref")
            if ref:
                tables.append(_range(ref.encode()))
    return SheetParts(part, tuple(tables))


# --- the zip ------------------------------------------------------------------------------


def _without_zip64(extra: bytes) -> bytes:
    """Extra field blocks without the zip64 one (FileHeader writes its own when needed)."""
    out = b""
    i = 0
    while i + 4 <= len(extra):
        kind, size = struct.unpack("<HH", extra[i : i + 4])
        if kind != 0x0001:
            out += extra[i : i + 4 + size]
        i += 4 + size
    return out


def _copy_raw(zin: zipfile.ZipFile, zout: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Copy one member's compressed bytes as they are, with the same name, date and CRC."""
    src, dst = zin.fp, zout.fp
    if src is None or dst is None:  # pragma: no cover - both are open here
        raise ValueError("closed zip file")
    src.seek(info.header_offset)
    head = src.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header of {info.filename}")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    src.seek(info.header_offset + 30 + name_len + extra_len)
    new = zipfile.ZipInfo(info.filename, info.date_time)
    for attr in (
        "compress_type",
        "comment",
        "create_system",
        "create_version",
        "extract_version",
        "reserved",
        "volume",
        "internal_attr",
        "external_attr",
        "CRC",
        "compress_size",
        "file_size",
    ):
        setattr(new, attr, getattr(info, attr))
    new.flag_bits = info.flag_bits & ~0x08  # sizes go in the header, no data descriptor
    new.extra = _without_zip64(info.extra)
    dst.seek(zout.start_dir)
    new.header_offset = dst.tell()
    dst.write(new.FileHeader())
    remaining = info.compress_size
    while remaining:
        chunk = src.read(min(remaining, CHUNK))
        if not chunk:
            raise zipfile.BadZipFile(f"{info.filename} is truncated")
        dst.write(chunk)
        remaining -= len(chunk)
    zout.filelist.append(new)
    zout.NameToInfo[new.filename] = new
    zout.start_dir = dst.tell()


def error_cells(zf: zipfile.ZipFile, part: str, limit: int = 100_000) -> dict[tuple[int, int], str]:
    """The cells of a worksheet part holding an error value (``t="e"``: #N/A, #REF!...).

    Value readers give such cells as empty; this finds them in one pass over the XML (a byte
    search, as fast as the decompression).

    :returns: {(sheet row, 0-based column): error text}, at most ``limit`` of them.
    """
    out: dict[tuple[int, int], str] = {}
    keep = 8192
    with zf.open(part) as fh:
        data = b""
        base = 0  # offset of data[0] in the part
        done = -1  # offset of the last match handled
        while len(out) < limit:
            chunk = fh.read(CHUNK)
            data += chunk
            pos = 0
            while len(out) < limit:
                hits = [h for h in (data.find(b't="e"', pos), data.find(b"t='e'", pos)) if h >= 0]
                if not hits:
                    break
                h = min(hits)
                pos = h + 1
                if base + h <= done:
                    continue
                found = _error_at(data, h)
                if found is None and chunk:
                    break  # the cell goes on in the next chunk
                done = base + h
                if isinstance(found, tuple):
                    out[found[0]] = found[1]
            if not chunk:
                break
            cut = max(0, len(data) - keep)
            data = data[cut:]
            base += cut
    return out


def _error_at(data: bytes, at: int) -> tuple[tuple[int, int], str] | None | bool:
    """The error cell whose tag holds ``data[at]``: ((row, column), text); False when it is
    not a cell tag; None when ``data`` ends first."""
    start = data.rfind(b"<", 0, at)
    if start < 0:
        return False
    gt = data.find(b">", at)
    if gt < 0:
        return None
    name, attrs = _tag_attrs(data[start : gt + 1])
    prefix, _, local = name.rpartition(b":")
    if local != b"c" or b"r" not in attrs or data[gt - 1] == _SLASH:
        return False
    p = prefix + b":" if prefix else b""
    close = data.find(b"</" + p + b"c>", gt)
    if close < 0:
        return None
    v = data.find(b"<" + p + b"v>", gt, close)
    if v < 0:
        return False
    v += len(p) + 3
    code = data[v : data.find(b"<", v, close + 1)].strip(_SPACE)
    if not code.startswith(b"#") or len(code) > 20:
        return False
    try:
        col, row = _split_ref(attrs[b"r"])
    except PatchUnsupported:
        return False
    return (row, col), code.decode("ascii", "replace")


def _tag_attrs(tag: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """The name and attributes of one tag, b'<c r="A1" t="e">'."""
    i = 1
    while i < len(tag) and tag[i] not in _DELIMS:
        i += 1
    attrs = {m[1]: m[2] if m.start(2) >= 0 else m[3] for m in _ATTR.finditer(tag, i)}
    return tag[1:i], attrs


def patch_workbook(src: str, dst: IO[bytes], sheet: SheetParts, patch: SheetPatch) -> None:
    """Write the workbook at ``src`` to ``dst`` with ``patch`` applied to ``sheet``.

    :raises PatchUnsupported: use another writer; ``dst`` holds nothing useful.
    :raises ColumnsInUse: plan the new columns further right and call again.
    :raises InsideArrayFormula: a planned cell cannot be written.
    """
    with zipfile.ZipFile(src) as zin:
        infos = zin.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise PatchUnsupported("the zip holds two members with the same name")
        if any(i.flag_bits & 0x1 for i in infos):
            raise PatchUnsupported("the zip has encrypted members")
        with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as zout:
            for info in infos:
                if info.filename != sheet.part:
                    _copy_raw(zin, zout, info)
                    continue
                new = zipfile.ZipInfo(info.filename, info.date_time)
                new.compress_type = zipfile.ZIP_DEFLATED
                new.create_system = info.create_system
                new.external_attr = info.external_attr
                with (
                    zin.open(info) as reader,
                    zout.open(new, "w", force_zip64=info.file_size > (1 << 30)) as writer,
                ):
                    try:
                        _SheetStream(reader, writer, patch).run()
                    except (IndexError, ValueError) as exc:
                        raise PatchUnsupported(f"an unexpected layout ({exc})") from exc


# --- the worksheet ------------------------------------------------------------------------


def _spans(spans: bytes, first: int, last: int) -> bytes | None:
    """A row's ``spans`` ("1:9", a hint of the columns it uses) widened to columns
    ``first``..``last`` (0-based); None when it covers them already."""
    try:
        bounds = [int(x) for part in spans.split() for x in part.split(b":")]
    except ValueError:
        return f"{first + 1}:{last + 1}".encode()
    if not bounds:
        return f"{first + 1}:{last + 1}".encode()
    lo, hi = min(bounds), max(bounds)
    if len(bounds) == 2 and lo <= first + 1 and last + 1 <= hi:
        return None
    return f"{min(lo, first + 1)}:{max(hi, last + 1)}".encode()


@dataclass
class _Cell:
    col: int
    start: int
    end: int  # one past the cell's last byte
    style: bytes | None
    formula: bool
    content: bool


class _SheetStream:
    """One pass over a worksheet part: copies it to ``dst`` with the planned cells written."""

    def __init__(self, src: IO[bytes], dst: IO[bytes], patch: SheetPatch) -> None:
        self.src = src
        self.dst = dst
        self.patch = patch
        self.buf = bytearray()
        self.base = 0  # absolute offset of buf[0] in the part
        self.out = 0  # index in buf of the first byte not yet written or skipped
        self.eof = False
        self.peak = 0  # the most bytes of the part held at once
        self.guard_from: int | None = None  # absolute offset from which markup is watched
        self.markup: int | None = None  # absolute offset of the first "<!" or "<?" seen
        self.rows = sorted(patch.cells)
        self.next_row = 0
        self.last_row = 0
        self.col_styles: list[tuple[int, int, bytes]] = []
        self.min_new = min(patch.new_columns) if patch.new_columns else None
        self.in_use = -1
        self.arrays: list[tuple[int, int, int, int, str]] = []
        self.heads: dict[int, bytes] = {}
        self.columns: dict[bytes, int] = {}
        self.values: dict[tuple[bytes | None, str], bytes] = {}
        self.spans: dict[tuple[bytes, int, int], bytes | None] = {}
        self.styles: dict[
            tuple[tuple[int, ...], bytes | None, bytes | None], list[bytes | None]
        ] = {}
        self.col_style: dict[int, bytes | None] = {}
        self.pending: list[bytes] = []
        self.pending_size = 0
        self._prefix(b"")

    def _prefix(self, p: bytes) -> None:
        """Use ``p`` (b"x:", usually b"") as the prefix of the spreadsheetml namespace."""
        self.p = p
        self.open_c = b"<" + p + b'c r="'
        self.open_t = b"<" + p + b"is><" + p + b"t>"
        self.open_t_space = b"<" + p + b"is><" + p + b't xml:space="preserve">'
        self.close_t = b"</" + p + b"t></" + p + b"is></" + p + b"c>"
        self.row_close = b"</" + p + b"row"
        # a cell start tag the way Excel and most libraries write it: r, then s and t
        self.simple_cell = re.compile(
            b"<" + re.escape(p) + rb'c r="([A-Z]{1,3})[0-9]+"(?: s="([0-9]+)")?'
            rb'(?: t="[a-zA-Z]+")?(/?)>'
        )

    # buffer ------------------------------------------------------------------------------

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.src.read(CHUNK)
        if not data:
            self.eof = True
            return False
        old = len(self.buf)
        self.buf += data
        self.peak = max(self.peak, len(self.buf))
        self._watch(max(old - 1, 0))
        return True

    def _watch(self, start: int) -> None:
        """Note the first comment, CDATA section, DTD or processing instruction."""
        if self.guard_from is None or self.markup is not None:
            return
        start = max(start, self.guard_from - self.base)
        hits = [i for i in (self.buf.find(b"<!", start), self.buf.find(b"<?", start)) if i >= 0]
        if hits:
            self.markup = self.base + min(hits)

    def _no_markup_before(self, index: int, what: str) -> None:
        if self.markup is not None and self.markup < self.base + index:
            raise PatchUnsupported(f"the worksheet has comments, CDATA or instructions {what}")

    def _ensure(self, end: int) -> bool:
        while len(self.buf) < end:
            if not self._fill():
                return False
        return True

    def _find(self, pattern: bytes, start: int) -> int:
        while True:
            i = self.buf.find(pattern, start)
            if i >= 0:
                return i
            start = max(start, len(self.buf) - len(pattern) + 1)
            if not self._fill():
                return -1

    def _emit(self, data: bytes) -> None:
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size > OUT_CHUNK:
            self._flush()

    def _flush(self) -> None:
        self.dst.write(b"".join(self.pending))
        self.pending.clear()
        self.pending_size = 0

    def _copy_to(self, index: int) -> None:
        if index > self.out:
            self._emit(bytes(self.buf[self.out : index]))
            self.out = index

    def _skip_to(self, index: int) -> None:
        self.out = index

    def _compact(self, index: int) -> int:
        self._copy_to(index)
        del self.buf[:index]
        self.base += index
        self.out = 0
        return 0

    # tags --------------------------------------------------------------------------------

    def _tag_end(self, start: int) -> int:
        """Index of the ">" closing the tag that starts at ``start`` (quotes may hold ">")."""
        while True:
            m = _TAG.match(self.buf, start)
            if m is not None:
                return m.end() - 1
            if not self._fill():
                raise PatchUnsupported("the worksheet ends inside a tag")

    def _attrs(self, start: int, end: int) -> dict[bytes, tuple[bytes, int, int]]:
        """The attributes of the tag ``buf[start:end+1]``: {name: (raw value, start, end)}."""
        out: dict[bytes, tuple[bytes, int, int]] = {}
        for m in _ATTR.finditer(self.buf, start, end):
            g = 2 if m.start(2) >= 0 else 3
            out[m[1]] = (m[g], m.start(g), m.end(g))
        return out

    def _name(self, start: int) -> bytes:
        i = start + 1
        while self.buf[i] not in _DELIMS:
            i += 1
        return bytes(self.buf[start + 1 : i])

    def _is_tag(self, index: int, tag: bytes) -> bool:
        """True when ``buf[index:]`` starts with the whole tag name ``tag`` (b"<c", not b"<col")."""
        self._ensure(index + len(tag) + 1)
        return self.buf.startswith(tag, index) and self.buf[index + len(tag)] in _DELIMS

    def _find_tag(self, tag: bytes, start: int, end: int) -> int:
        """The first whole tag ``tag`` within ``buf[start:end]``, or -1."""
        buf = self.buf
        while True:
            i = buf.find(tag, start, end)
            if i < 0 or (i + len(tag) < len(buf) and buf[i + len(tag)] in _DELIMS):
                return i
            start = i + 1

    def _close(self, tag: bytes, start: int) -> tuple[int, int]:
        """(start, index of ">") of the end tag ``tag`` (b"</row") after ``start``."""
        pos = start
        while True:
            i = self._find(tag, pos)
            if i < 0:
                raise PatchUnsupported(f"no {tag.decode()}> in the worksheet")
            self._ensure(i + len(tag) + 1)
            if self.buf[i + len(tag)] in b" \t\r\n>":
                gt = self._find(b">", i)
                return i, gt
            pos = i + 1

    def _skip_space(self, pos: int) -> int:
        while True:
            if not self._ensure(pos + 1):
                raise PatchUnsupported("the worksheet ends inside <sheetData>")
            if self.buf[pos] not in _SPACE:
                return pos
            pos += 1

    # the pass ----------------------------------------------------------------------------

    def run(self) -> None:
        self._fill()
        buf = self.buf
        pos = 0
        if buf.startswith(b"\xef\xbb\xbf"):
            pos = 3
        elif buf.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise PatchUnsupported("the worksheet is not UTF-8")
        if buf.startswith(b"<?xml", pos):
            end = self._find(b"?>", pos)
            if end < 0:
                raise PatchUnsupported("an unterminated XML declaration")
            decl = self._attrs(pos, end)
            encoding = decl.get(b"encoding", (b"utf-8", 0, 0))[0].lower()
            if encoding not in (b"utf-8", b"utf8"):
                raise PatchUnsupported(f"the worksheet is encoded in {encoding.decode()}")
            pos = end + 2
        self.guard_from = self.base + pos
        self._watch(pos)
        pos = self._skip_space(pos)
        root_end = self._tag_end(pos)
        name, attrs = self._name(pos), self._attrs(pos, root_end)
        prefix, _, local = name.rpartition(b":")
        ns = attrs.get(b"xmlns:" + prefix if prefix else b"xmlns", (b"", 0, 0))[0]
        if local != b"worksheet" or ns != MAIN_NS:
            raise PatchUnsupported(f"the worksheet's root is {name.decode()} in {ns.decode()}")
        self._prefix(prefix + b":" if prefix else b"")
        start = self._find_sheet_data(root_end + 1)
        self._no_markup_before(start, "before its rows")
        self._head(root_end + 1, start)
        end = self._tag_end(start)
        if buf[end - 1] == _SLASH:  # <sheetData/>
            rows = self._missing_rows(None)
            if rows:
                self._copy_to(start)
                p = self.p
                self._emit(b"<" + p + b"sheetData>" + rows + b"</" + p + b"sheetData>")
                self._skip_to(end + 1)
            pos = end + 1
        else:
            pos = self._rows(end + 1)
        self._no_markup_before(pos, "among its rows")
        if self.in_use >= 0:
            raise ColumnsInUse(self.in_use)
        self._copy_to(len(self.buf))
        self._flush()
        while chunk := self.src.read(CHUNK):
            self.dst.write(chunk)

    def _find_sheet_data(self, start: int) -> int:
        tag = b"<" + self.p + b"sheetData"
        pos = start
        while True:
            i = self._find(tag, pos)
            if i < 0:
                raise PatchUnsupported("the worksheet has no <sheetData>")
            if self._is_tag(i, tag):
                return i
            pos = i + 1

    def _head(self, start: int, end: int) -> None:
        """Widen <dimension ref> to the cells written; note the column styles of <cols>."""
        p = self.p
        pos = start
        while (i := self._find_tag(b"<" + p + b"col", pos, end)) >= 0:
            te = self._tag_end(i)
            attrs = self._attrs(i, te)
            style = attrs.get(b"style", (b"", 0, 0))[0]
            try:
                lo, hi = int(attrs[b"min"][0]), int(attrs[b"max"][0])
            except (KeyError, ValueError):
                lo = hi = 0
            if style and style != b"0" and lo:
                self.col_styles.append((lo - 1, hi - 1, style))
            pos = te
        i = self._find_tag(b"<" + p + b"dimension", start, end)
        if i < 0 or not self.rows:
            return
        te = self._tag_end(i)
        attrs = self._attrs(i, te)
        if b"ref" not in attrs:
            return
        ref, v0, v1 = attrs[b"ref"]
        try:
            r0, c0, r1, c1 = _range(ref)
        except (PatchUnsupported, ValueError):
            return
        cols = {c for cells in self.patch.cells.values() for c in cells}
        if not cols:
            return
        new = (min(r0, self.rows[0]), min(c0, *cols), max(r1, self.rows[-1]), max(c1, *cols))
        if new != (r0, c0, r1, c1):
            self._copy_to(v0)
            self._emit(f"{column_letter(new[1])}{new[0]}:{column_letter(new[3])}{new[2]}".encode())
            self._skip_to(v1)

    def _rows(self, pos: int) -> int:
        """Copy and patch every row; return the index just past </sheetData>."""
        p = self.p
        row_tag, end_tag = b"<" + p + b"row", b"</" + p + b"sheetData"
        n_tag = len(row_tag)
        buf = self.buf
        while True:
            if pos + 64 > len(buf):
                self._ensure(pos + 64)
            if pos < len(buf) and buf[pos] in _SPACE:
                pos = self._skip_space(pos)
            if buf.startswith(row_tag, pos) and buf[pos + n_tag] in _DELIMS:
                pos = self._row(pos)
                if pos > CHUNK:
                    pos = self._compact(pos)
            elif self._is_tag(pos, end_tag):
                rows = self._missing_rows(None)
                if rows:
                    self._copy_to(pos)
                    self._emit(rows)
                return self._tag_end(pos) + 1
            else:
                self._no_markup_before(pos + 1, "among its rows")
                seen = bytes(self.buf[pos : pos + 20])
                raise PatchUnsupported(f"unexpected {seen!r} among the rows")

    def _missing_rows(self, before: int | None) -> bytes:
        """The planned rows above row ``before`` (all left, if None), which have no <row>."""
        out = []
        while self.next_row < len(self.rows) and (
            before is None or self.rows[self.next_row] < before
        ):
            n = self.rows[self.next_row]
            self.next_row += 1
            self._check_arrays(n, self.patch.cells[n])
            nb = str(n).encode()
            cells = b"".join(
                self._cell_xml(col, nb, self._default_style(n, col, None, None), text)
                for col, text in sorted(self.patch.cells[n].items())
            )
            out.append(b"<" + self.p + b'row r="' + nb + b'">' + cells)
            out.append(b"</" + self.p + b"row>")
        return b"".join(out)

    def _row(self, start: int) -> int:
        """Copy (and patch, if planned) the row starting at ``start``; return its end."""
        buf = self.buf
        te = self._tag_end(start)
        attrs = self._attrs(start, te)
        r = attrs.get(b"r")
        if r is None:
            raise PatchUnsupported("a row without its row number")
        n = int(r[0])
        if n <= self.last_row:
            raise PatchUnsupported(f"row {n} comes after row {self.last_row}")
        self.last_row = n
        rows, k = self.rows, self.next_row
        if k < len(rows) and rows[k] < n:
            before = self._missing_rows(n)
            self._copy_to(start)
            self._emit(before)
            k = self.next_row
        empty = buf[te - 1] == _SLASH
        if empty:
            inner_end, row_end = te, te + 1
        else:
            close = self.row_close
            inner_end = buf.find(close, te)
            if inner_end >= 0 and buf[inner_end + len(close) : inner_end + len(close) + 1] == b">":
                row_end = inner_end + len(close) + 1
            else:
                inner_end, gt = self._close(close, te + 1)
                row_end = gt + 1
        planned: Mapping[int, str] | None = None
        if k < len(rows) and rows[k] == n:
            planned = self.patch.cells[n]
            self.next_row = k + 1
        if not empty and (
            buf.find(b"array", te, inner_end) >= 0 or buf.find(b"dataTable", te, inner_end) >= 0
        ):
            self._note_arrays(te + 1, inner_end)
        low = self.min_new
        if planned:
            first = min(planned)
            low = first if low is None else min(low, first)
        header = n == self.patch.header_row and self.patch.style_from is not None
        if header and self.patch.style_from is not None:
            low = self.patch.style_from if low is None else min(low, self.patch.style_from)
        cells = self._cells_from_right(te + 1, inner_end, low) if low is not None else []
        if self.min_new is not None:
            for cell in cells:
                if cell.content and cell.col >= self.min_new:
                    self.in_use = max(self.in_use, cell.col)
        if planned:
            if self.arrays:
                self._check_arrays(n, planned)
            self._write_row(n, start, te, inner_end, attrs, empty, cells, planned, header)
        return row_end

    def _write_row(
        self,
        n: int,
        start: int,
        te: int,
        inner_end: int,
        attrs: dict[bytes, tuple[bytes, int, int]],
        empty: bool,
        cells: list[_Cell],
        planned: Mapping[int, str],
        header: bool,
    ) -> None:
        p = self.p
        cols = sorted(planned)
        row_style = None
        if b"customFormat" in attrs and attrs[b"customFormat"][0] in (b"1", b"true"):
            row_style = attrs.get(b"s", (None, 0, 0))[0]
        head_style = None
        if header:
            head_style = next((c.style for c in cells if c.col == self.patch.style_from), None)
        spans = attrs.get(b"spans")
        new_spans = None
        if spans is not None:
            key = (spans[0], cols[0], cols[-1])
            if key not in self.spans:
                self.spans[key] = _spans(spans[0], cols[0], cols[-1])
            new_spans = self.spans[key]
        if empty:
            tag = bytes(self.buf[start:te]).rstrip(b"/").rstrip(_SPACE)
            if new_spans is not None and spans is not None:
                v0, v1 = spans[1] - start, spans[2] - start
                tag = tag[:v0] + new_spans + tag[v1:]
            self._copy_to(start)
            self._emit(tag + b">")
            self._skip_to(te + 1)
        elif new_spans is not None and spans is not None:
            self._copy_to(spans[1])
            self._emit(new_spans)
            self._skip_to(spans[2])
        nb = str(n).encode()
        existing = [c for c in cells if c.col >= cols[0]]
        if not existing:  # the usual case: the status cells go after every cell of the row
            self._copy_to(inner_end)
            shape = (tuple(cols), row_style, head_style if header else None)
            styles = self.styles.get(shape)
            if styles is None:
                styles = [self._default_style(n, c, row_style, head_style) for c in cols]
                self.styles[shape] = styles
            xml = self._cell_xml
            self._emit(
                b"".join([xml(c, nb, st, planned[c]) for c, st in zip(cols, styles, strict=True)])
            )
        k = 0
        for col in cols if existing else ():
            while k < len(existing) and existing[k].col < col:
                k += 1
            text = planned[col]
            if k < len(existing) and existing[k].col == col:
                cell = existing[k]
                if cell.content and col in self.patch.new_columns:
                    k += 1  # the column is in use after all: the pass ends in ColumnsInUse
                    continue
                if cell.formula:
                    raise PatchUnsupported(
                        f"cell {column_letter(col)}{n}, to be written, holds a formula"
                    )
                cell_style = cell.style
                if cell_style is None and header and col in self.patch.new_columns:
                    cell_style = head_style
                self._copy_to(cell.start)
                self._emit(self._cell_xml(col, nb, cell_style, text))
                self._skip_to(cell.end)
                k += 1
            else:
                at = existing[k].start if k < len(existing) else inner_end
                self._copy_to(at)
                cell_style = self._default_style(n, col, row_style, head_style)
                self._emit(self._cell_xml(col, nb, cell_style, text))
        if empty:
            self._copy_to(te + 1)
            self._emit(b"</" + p + b"row>")

    def _default_style(
        self, n: int, col: int, row_style: bytes | None, head_style: bytes | None
    ) -> bytes | None:
        """The style Excel gives a cell typed into an empty spot: the header's look for a new
        header cell, else the row's format, else the column's."""
        if head_style and n == self.patch.header_row and col in self.patch.new_columns:
            return head_style
        if row_style:
            return row_style
        try:
            return self.col_style[col]
        except KeyError:
            style = next((s for lo, hi, s in self.col_styles if lo <= col <= hi), None)
            self.col_style[col] = style
            return style

    def _cells_from_right(self, lo: int, hi: int, min_col: int) -> list[_Cell]:
        """The cells of a row in columns >= ``min_col``, in column order."""
        buf = self.buf
        p = self.p
        tag = b"<" + p + b"c"
        close = b"</" + p + b"c"
        out: list[_Cell] = []
        last = MAX_COLUMNS
        while True:
            i = buf.rfind(tag, lo, hi)
            if i < 0:
                break
            if buf[i + len(tag)] not in _DELIMS:  # <color>, <charset> inside rich text
                hi = i
                continue
            m = self.simple_cell.match(buf, i)
            if m is not None:
                te = m.end() - 1
                letters, style = m[1], m[2]
                col = self.columns.get(letters, -1)
                if col < 0:
                    col = self.columns[letters] = _split_ref(letters + b"1")[0]
            else:
                te = self._tag_end(i)
                attrs = self._attrs(i, te)
                if b"r" not in attrs:
                    raise PatchUnsupported("a cell without its reference")
                col = _split_ref(attrs[b"r"][0])[0]
                style = attrs.get(b"s", (None, 0, 0))[0]
            if col >= last:
                raise PatchUnsupported("cells out of column order")
            last = col
            if col < min_col:
                break
            if buf[te - 1] == _SLASH:
                out.append(_Cell(col, i, te + 1, style, False, False))
            else:
                # the cell's end tag is the last tag before the next cell (or the row's end)
                c_end = buf.rfind(close, te, hi)
                gt = buf.find(b">", c_end, hi) if c_end >= 0 else -1
                if gt < 0:
                    raise PatchUnsupported(f"cell {column_letter(col)} has no end tag")
                formula = self._find_tag(b"<" + p + b"f", te + 1, c_end) >= 0
                content = formula
                if not formula and self.min_new is not None and col >= self.min_new:
                    content = self._find_tag(
                        b"<" + p + b"is", te + 1, c_end
                    ) >= 0 or self._has_value(te + 1, c_end)
                out.append(_Cell(col, i, gt + 1, style, formula, content))
            hi = i
        out.reverse()
        return out

    def _has_value(self, lo: int, hi: int) -> bool:
        v = self._find_tag(b"<" + self.p + b"v", lo, hi)
        if v < 0:
            return False
        te = self._tag_end(v)
        if self.buf[te - 1] == _SLASH:
            return False
        end = self.buf.find(b"<", te + 1, hi)
        return bool(self.buf[te + 1 : end].strip(_SPACE))

    def _note_arrays(self, lo: int, hi: int) -> None:
        """Remember the ranges of array formulas and data tables anchored in this row."""
        tag = b"<" + self.p + b"f"
        pos = lo
        while (i := self._find_tag(tag, pos, hi)) >= 0:
            te = self._tag_end(i)
            attrs = self._attrs(i, te)
            kind = attrs.get(b"t", (b"", 0, 0))[0]
            ref = attrs.get(b"ref", (b"", 0, 0))[0]
            if kind in (b"array", b"dataTable") and ref:
                r0, c0, r1, c1 = _range(ref)
                self.arrays.append((r0, c0, r1, c1, ref.decode()))
            pos = te

    def _check_arrays(self, n: int, planned: Mapping[int, str]) -> None:
        for r0, c0, r1, c1, ref in self.arrays:
            if r0 <= n <= r1:
                for col in planned:
                    if c0 <= col <= c1:
                        raise InsideArrayFormula(f"{column_letter(col)}{n}", ref)

    def _cell_xml(self, col: int, nb: bytes, style: bytes | None, text: str) -> bytes:
        """An inline-string cell in column ``col`` of row ``nb`` (the row number as bytes)."""
        head = self.heads.get(col)
        if head is None:
            head = self.heads[col] = self.open_c + column_letter(col).encode()
        rest = self.values.get((style, text))
        if rest is None:
            rest = self._rest(style, text)
        return head + nb + rest if rest else b""

    def _rest(self, style: bytes | None, text: str) -> bytes:
        """A cell after its row number: style, type and value; b"" for no cell at all."""
        s = b'" s="' + style if style else b""
        if not text:  # no value: an empty cell keeps its style, else there is no cell at all
            rest = s + b'"/>' if style else b""
        else:
            fast = len(text) <= TEXT_LIMIT // 2 and text.isascii() and text.isprintable()
            if fast and not _ESCAPES.intersection(text):
                value = text.encode()
            else:
                value = _xml_escape(cell_text(text))
            spaced = value[:1].isspace() or value[-1:].isspace()
            open_t = self.open_t_space if spaced else self.open_t
            rest = b"".join((s, b'" t="inlineStr">', open_t, value, self.close_t))
        if len(self.values) > 10_000:
            self.values.clear()
        self.values[(style, text)] = rest
        return rest
