"""A workbook written by export or sync keeps the original file's mode, and a new one gets the
umask's, not mkstemp's 0600 (issue 13, item 7): other SMEs on a shared drive can open it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.exporting import export
from bridge.mapping import load_mapping
from bridge.scaffold import init_project
from tests.test_init import Traces


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    before = os.umask(0o022)
    yield
    os.umask(before)


@pytest.mark.parametrize("original", [0o644, 0o664, 0o600])
def test_export_into_a_workbook_keeps_its_mode(tmp_path: Path, original: int, umask: None) -> None:
    init_project(tmp_path, target="mlflow")
    book = tmp_path / "labels.xlsx"
    os.chmod(book, original)
    result = export(load_mapping(tmp_path / "annobridge.yaml"), target=Traces(2))  # type: ignore[arg-type]
    assert result.appended == 2
    assert mode(book) == original


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_a_new_workbook_gets_the_umasks_mode(
    tmp_path: Path, mask: int, expected: int, umask: None
) -> None:
    init_project(tmp_path, target="mlflow")
    book = tmp_path / "labels.xlsx"
    book.unlink()  # export creates it
    os.umask(mask)
    result = export(load_mapping(tmp_path / "annobridge.yaml"), target=Traces(2))  # type: ignore[arg-type]
    assert result.appended == 2
    assert mode(book) == expected
