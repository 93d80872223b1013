"""CSV source: read, write the status back into the same file as it was found."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import EXIT_USAGE, SourceError, SourceUnavailable
from bridge.records import Row
from bridge.sources.csv.source import CsvSource
from tests.builders import SPAN, read_spec, span, update

SPEC = read_spec(columns=["span_id", "label", "score"], key_columns=["span_id"])


def csv_file(tmp_path: Path, content: bytes, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def read(path: Path, **kw: Any) -> list[Row]:
    return CsvSource(path, **kw).read(SPEC)


def source_error(path: Path, **kw: Any) -> str:
    with pytest.raises(SourceError) as info:
        read(path, **kw)
    assert info.value.exit_code == EXIT_USAGE
    return str(info.value)


def sync_all(path: Path, message: str = "", **kw: Any) -> None:
    """Read the file and write a 'synced' status for every row."""
    source = CsvSource(path, **kw)
    rows = source.read(SPEC)
    source.write_status(SPEC, [update(r, "synced", message) for r in rows])


def test_reads_every_cell_as_text(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path, f"span_id,label,score,notes\n{SPAN},correct,0.5,x\n00123, spaced ,,\n".encode()
    )
    rows = read(path)
    assert [(r.sheet_row, r.values, r.key) for r in rows] == [
        (2, {"span_id": SPAN, "label": "correct", "score": "0.5"}, (SPAN,)),
        (3, {"span_id": "00123", "label": " spaced ", "score": ""}, ("00123",)),
    ]
    assert CsvSource(path).label == "labels.csv"


def test_write_back_to_the_same_file(tmp_path: Path) -> None:
    original = f'span_id,label,score,notes\n{SPAN},correct,0.5,"a, quoted\nnote"\n{span(2)},bad,,\n'
    path = csv_file(tmp_path, original.encode())
    source = CsvSource(path)
    rows = source.read(SPEC)
    report = source.write_status(
        SPEC,
        [
            update(
                rows[0],
                "synced",
                "",
                synced_at="2024-05-01T10:00:00Z",
                sync_id="r1",
                sync_hash="h1",
            ),
            update(rows[1], "invalid", "label 'bad' is not one of: correct, incorrect"),
        ],
    )
    assert (report.written, report.vanished, report.moved) == (2, [], 0)
    assert path.read_text() == (
        "span_id,label,score,notes,sync_status,synced_at,sync_message,sync_id,sync_hash\n"
        f'{SPAN},correct,0.5,"a, quoted\nnote",synced,2024-05-01T10:00:00Z,,r1,h1\n'
        f"{span(2)},bad,,,invalid,,\"label 'bad' is not one of: correct, incorrect\"\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]  # no temp file left
    again = source.read(SPEC)
    assert [r.status["sync_status"] for r in again] == ["synced", "invalid"]
    assert again[0].values == rows[0].values


def test_existing_status_columns_are_reused(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"span_id,sync_status,label,score\n{SPAN},failed,a,\n".encode())
    sync_all(path)
    assert path.read_text() == (
        "span_id,sync_status,label,score,synced_at,sync_message,sync_id,sync_hash\n"
        f"{SPAN},synced,a,,,\n"
    )


def test_new_status_columns_go_right_of_data_without_a_header(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"span_id,label,score\n{SPAN},a,,a note nobody named\n".encode())
    sync_all(path)
    assert path.read_text() == (
        "span_id,label,score,,sync_status,synced_at,sync_message,sync_id,sync_hash\n"
        f"{SPAN},a,,a note nobody named,synced,,\n"
    )


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["no-bom", "bom"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_bom_and_line_endings_are_kept_as_found(tmp_path: Path, bom: bytes, newline: bytes) -> None:
    lines = [b"span_id,label,score", SPAN.encode() + b",caf\xc3\xa9,1"]
    path = csv_file(tmp_path, bom + newline.join(lines) + newline)
    rows = read(path)
    assert rows[0].values["label"] == "café"
    assert list(rows[0].values) == ["span_id", "label", "score"]  # no BOM in the first name
    sync_all(path)
    data = path.read_bytes()
    assert data.startswith(bom + b"span_id,")
    assert data.count(b"\xef\xbb\xbf") == len(bom) // 3
    assert data.count(newline) == 2
    if newline == b"\n":
        assert b"\r" not in data
    assert data.split(newline)[1] == SPAN.encode() + b",caf\xc3\xa9,1,synced,,"


def test_other_encoding_and_delimiter_are_kept(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"span_id;label;score\n{SPAN};café;0,5\n".encode("cp1252"))
    rows = read(path, delimiter=";", encoding="cp1252")
    assert rows[0].values == {"span_id": SPAN, "label": "café", "score": "0,5"}
    sync_all(path, "déjà", delimiter=";", encoding="cp1252")
    assert path.read_bytes() == (
        "span_id;label;score;sync_status;synced_at;sync_message;sync_id;sync_hash\n"
        f"{SPAN};café;0,5;synced;;déjà\n"
    ).encode("cp1252")


def test_utf16_file_with_its_encoding_set(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"span_id\tlabel\tscore\r\n{SPAN}\tok\t1\r\n".encode("utf-16"))
    rows = read(path, delimiter="\t", encoding="utf-16")
    assert rows[0].values == {"span_id": SPAN, "label": "ok", "score": "1"}
    sync_all(path, delimiter="\t", encoding="utf-16")
    assert path.read_bytes().decode("utf-16").splitlines()[1] == f"{SPAN}\tok\t1\tsynced\t\t"


def test_header_on_another_row_keeps_the_lines_above(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"Labels week 12\n\nspan_id,label,score\n{SPAN},a,\n".encode())
    rows = read(path, header_row=3)
    assert [r.sheet_row for r in rows] == [4]
    sync_all(path, header_row=3)
    assert path.read_text() == (
        "Labels week 12\n\n"
        "span_id,label,score,sync_status,synced_at,sync_message,sync_id,sync_hash\n"
        f"{SPAN},a,,synced,,\n"
    )


def test_blank_lines_are_ignored_and_kept(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"span_id,label,score\n\n{SPAN},a,\n,,\n{span(2)},b,\n".encode())
    assert [r.sheet_row for r in read(path)] == [3, 5]
    sync_all(path)
    assert path.read_text() == (
        "span_id,label,score,sync_status,synced_at,sync_message,sync_id,sync_hash\n"
        f"\n{SPAN},a,,synced,,\n,,\n{span(2)},b,,synced,,\n"
    )


def test_text_that_would_be_a_formula_is_written_inert(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"span_id,label,score\n{SPAN},a,\n".encode())
    sync_all(path, '=HYPERLINK("http://evil.example","x")')
    assert path.read_text().splitlines()[1] == (
        f'{SPAN},a,,synced,,"\'=HYPERLINK(""http://evil.example"",""x"")"'
    )


# --- rows located by key --------------------------------------------------------------------


def test_statuses_follow_their_rows_after_a_sort_and_a_delete(tmp_path: Path) -> None:
    lines = [f"{span(n)},label {n}," for n in range(1, 5)]
    path = csv_file(tmp_path, ("span_id,label,score\n" + "\n".join(lines) + "\n").encode())
    source = CsvSource(path)
    rows = source.read(SPEC)
    # meanwhile: sorted descending, span(2) deleted, a new row added on top
    path.write_text(
        "span_id,label,score\nffffffffffffffff,new,\n"
        + "\n".join(lines[i] for i in (3, 2, 0))
        + "\n"
    )
    updates = [update(r, "synced", f"for {r.key[0]}") for r in rows]
    report = source.write_status(SPEC, updates)
    assert report.written == 3
    assert report.vanished == [updates[1]]
    assert path.read_text() == (
        "span_id,label,score,sync_status,synced_at,sync_message,sync_id,sync_hash\n"
        "ffffffffffffffff,new,\n"
        f"{span(4)},label 4,,synced,,for {span(4)}\n"
        f"{span(3)},label 3,,synced,,for {span(3)}\n"
        f"{span(1)},label 1,,synced,,for {span(1)}\n"
    )


def test_a_row_without_id_gets_its_status_after_an_insert_above_it(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"span_id,label,score\n{SPAN},a,\n,no id,\n,,\n".encode())
    source = CsvSource(path)
    rows = source.read(SPEC)
    assert [r.key for r in rows] == [(SPAN,), ("",)]
    # meanwhile an SME inserts a row above the one without an id: its old row 3 is blank now
    path.write_text(f"span_id,label,score\n{SPAN},a,\n,,\n,no id,\n,,\n")
    report = source.write_status(SPEC, [update(r, "invalid", "span_id is empty") for r in rows])
    assert (report.written, report.vanished) == (2, [])
    assert path.read_text().splitlines()[1:] == [
        f"{SPAN},a,,invalid,,span_id is empty",
        ",,",
        ",no id,,invalid,,span_id is empty",
        ",,",
    ]


def test_a_row_without_id_that_was_deleted_is_reported_not_put_elsewhere(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"span_id,label,score\n,no id,\n{SPAN},a,\n,,\n".encode())
    source = CsvSource(path)
    rows = source.read(SPEC)
    path.write_text(f"span_id,label,score\n,,\n{SPAN},a,\n,other,\n")  # deleted, then edits
    updates = [update(r, "invalid", "span_id is empty") for r in rows]
    report = source.write_status(SPEC, updates)
    assert (report.written, report.vanished) == (1, [updates[0]])
    assert path.read_text().splitlines()[1:] == [
        ",,",  # the blank row where it was, and the other row, get no status
        f"{SPAN},a,,invalid,,span_id is empty",
        ",other,",
    ]


def test_short_rows_are_padded_only_where_a_status_is_written(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"span_id,label,score,notes\n{SPAN},a\n{span(2)}\n".encode())
    source = CsvSource(path)
    rows = source.read(SPEC)
    source.write_status(SPEC, [update(rows[0])])
    assert path.read_text().splitlines()[1:] == [f"{SPAN},a,,,synced,,", span(2)]


# --- bad files ------------------------------------------------------------------------------


def test_nul_bytes(tmp_path: Path) -> None:
    path = csv_file(tmp_path, b"span_id,label\nabc,x\x00y\n")
    assert source_error(path) == (
        f"{path}: the file contains NUL bytes, so it is not utf-8-sig text; if it was saved as "
        "'Unicode Text' (UTF-16), set source.encoding: utf-16 in the mapping, or save it again as "
        "'CSV UTF-8'"
    )


def test_utf16_without_the_encoding_set(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "span_id,label\n".encode("utf-16"))
    assert "set source.encoding: utf-16 in the mapping" in source_error(path)


def test_undecodable_bytes_name_the_line_and_the_fix(tmp_path: Path) -> None:
    path = csv_file(tmp_path, b"span_id,label\nabc,ok\nabd,caf\xe9\n")
    assert source_error(path) == (
        f"{path}: line 3 is not valid utf-8-sig (byte 0xe9); the file was probably saved in "
        "another encoding: set source.encoding in the mapping (cp1252 for Excel on Windows, "
        "latin-1), or save the file again as 'CSV UTF-8'"
    )


def test_unknown_encoding(tmp_path: Path) -> None:
    path = csv_file(tmp_path, b"span_id,label\n")
    assert source_error(path, encoding="utf-9") == (
        f"{path}: unknown encoding 'utf-9'; set source.encoding in the mapping to one Python "
        "knows, e.g. utf-8, cp1252 or latin-1"
    )


def test_a_workbook_renamed_csv(tmp_path: Path) -> None:
    path = csv_file(tmp_path, b"PK\x03\x04\x14\x00\x00\x00rest of a zip")
    assert source_error(path) == (
        f"{path}: this is an Excel workbook (or another zip file), not a CSV file; set "
        "source.type: excel in the mapping"
    )


def test_another_delimiter_is_named(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"span_id;label;score\n{SPAN};a;1\n".encode())
    assert source_error(path) == (
        f'{path}: the columns are separated by ";", not ","; set source.delimiter: ";" in the '
        "mapping"
    )
    tabbed = csv_file(tmp_path, f"span_id\tlabel\tscore\n{SPAN}\ta\t1\n".encode(), "t.csv")
    assert source_error(tabbed).endswith('set source.delimiter: "\\t" in the mapping')


def test_missing_column(tmp_path: Path) -> None:
    path = csv_file(tmp_path, b"span_id,verdict,score\n")
    assert source_error(path) == (
        "labels.csv: column 'label' not found in header row 1; columns found: 'span_id', "
        "'verdict', 'score'. Fix the column names in the mapping, or set header_row if the "
        "header is on another row"
    )


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = csv_file(tmp_path, content)
    assert source_error(path) == f"{path}: the file is empty; it needs a header row and rows"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    assert source_error(path) == f"{path}: no such file; check source.path in the mapping"


def test_file_shrunk_below_the_header_before_write_back(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"title\n\nspan_id,label,score\n{SPAN},a,\n".encode())
    source = CsvSource(path, header_row=3)
    rows = source.read(SPEC)
    path.write_text("title\n")
    with pytest.raises(SourceError) as info:
        source.write_status(SPEC, [update(rows[0])])
    assert str(info.value) == (
        f"{path}: header row 3 is gone (the file has 1 rows now); the statuses were not written. "
        "Restore the file and run again"
    )
    assert path.read_text() == "title\n"


# --- writability ----------------------------------------------------------------------------


@pytest.mark.parametrize("lock", ["~$labels.csv", ".~lock.labels.csv#"])
def test_open_in_a_spreadsheet_program(tmp_path: Path, lock: str) -> None:
    source = CsvSource(csv_file(tmp_path, b"span_id,label,score\n"))
    source.check_writable()
    (tmp_path / lock).touch()
    with pytest.raises(SourceUnavailable) as info:
        source.check_writable()
    assert str(info.value) == (
        f"{source.path}: the file is open in Excel or LibreOffice (lock file {lock}); close it "
        "and run again (if no program has it open, delete the lock file). Nothing was sent"
    )


def test_read_only_file(tmp_path: Path) -> None:
    source = CsvSource(csv_file(tmp_path, b"span_id,label,score\n"))
    os.chmod(source.path, 0o444)
    with pytest.raises(SourceUnavailable) as info:
        source.check_writable()
    assert str(info.value) == (
        f"{source.path}: the file or its folder is read-only; make it writable (the status "
        "columns are written back into it). Nothing was sent"
    )


def test_a_failed_save_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = csv_file(tmp_path, f"span_id,label,score\n{SPAN},a,\n".encode())
    os.chmod(path, 0o644)
    source = CsvSource(path)
    rows = source.read(SPEC)

    def refuse(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(SourceUnavailable) as info:
        source.write_status(SPEC, [update(rows[0])])
    assert str(info.value) == (
        f"{path}: could not save the status columns (No space left on device); the file is "
        "unchanged. The annotations were sent: run again to write the statuses"
    )
    assert path.read_text() == f"span_id,label,score\n{SPAN},a,\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]
    monkeypatch.undo()
    source.write_status(SPEC, [update(rows[0])])
    assert path.stat().st_mode & 0o777 == 0o644  # permissions survive the replace


def test_a_quote_never_closed_names_its_line(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path, f'span_id,label,score\n{SPAN},ok,1\n{span(2)},"fine,1\n{span(3)},b,0\n'.encode()
    )
    assert source_error(path) == (
        f'{path}: line 3 opens a quoted field (") that is never closed, so everything after it '
        "would be read as one cell; close the quote or remove it, and run again"
    )


def test_a_stray_quote_inside_a_cell_is_read_as_it_shows(tmp_path: Path) -> None:
    path = csv_file(tmp_path, f'span_id,label,score\n{SPAN},5" screen,1\n'.encode())
    assert [r.values["label"] for r in read(path)] == ['5" screen']


def test_a_cell_over_the_csv_module_default_limit_is_read(tmp_path: Path) -> None:
    long = "x" * 300_000  # the csv module refuses cells over 131,072 characters by default
    path = csv_file(tmp_path, f"span_id,label,score\n{SPAN},{long},1\n".encode())
    (row,) = read(path)
    assert row.values["label"] == long
