"""Start-up: `annobridge --version` and `--help` load none of the heavy libraries.

A count of modules, not a time (no wall-clock assertions): the real command runs in a
subprocess under ``python -X importtime``, which names every module it imports. The time
itself is measured by benchmarks/startup.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge import cli, pipeline
from tests.test_cli import SPAN, make_book, make_mapping

HEAVY = ("pandas", "pandera", "openpyxl", "requests", "google", "gspread", "numpy", "rich")


def imported_modules(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bridge", *args],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "bridge.cli" in names  # the parse found the imports
    return names


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("init", "--help")])
def test_version_and_help_import_no_heavy_library(args: tuple[str, ...]) -> None:
    names = imported_modules(*args)
    heavy = sorted(n for n in names if n.split(".")[0] in HEAVY)
    assert heavy == [], f"{len(heavy)} heavy modules: {heavy[:10]}"
    assert not any(n in names for n in ("bridge.pipeline", "bridge.exporting", "bridge.scaffold"))


def test_the_summary_order_names_the_pipeline_statuses() -> None:
    assert pipeline.UNCHANGED in cli._ORDER and pipeline.PENDING in cli._ORDER
    assert cli._LABELS == {pipeline.PENDING: "to send"}


def test_validate_of_a_workbook_does_not_load_openpyxl(tmp_path: Path) -> None:
    """Reading goes through calamine; openpyxl (~0.2 s) loads only for the writes that use it."""
    make_book(tmp_path / "labels.xlsx", [[SPAN, "correct", 1, "fine", "alice"]])
    mapping = make_mapping(tmp_path)
    names = imported_modules("validate", str(mapping), "--quiet")
    assert "bridge.rules" in names
    assert not [n for n in names if n.split(".")[0] == "openpyxl"]
