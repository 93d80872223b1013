"""What the repository itself holds: no symbolic link is tracked.

A helper checkout's ``.cache`` link (to the shared server virtualenvs) was once committed and
merged, and replaced the real ``.cache/`` folder of the checkout it landed in; a fresh clone
would get a link pointing at another machine's path.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tracked_links(root: Path) -> list[str]:
    """Paths git tracks as symbolic links (mode 120000) under ``root``."""
    listing = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-s", "-z"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [entry.split("\t", 1)[1] for entry in listing.split("\0") if entry.startswith("120000 ")]


def _is_work_tree(root: Path) -> bool:
    if shutil.which("git") is None:
        return False
    probe = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"], capture_output=True
    )
    return probe.returncode == 0 and probe.stdout.strip() == b"true"


def test_tracked_links_are_found(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")  # the check below needs it as well
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "real").write_text("x", encoding="utf-8")
    (tmp_path / ".cache").symlink_to(tmp_path / "real")
    subprocess.run(["git", "-C", str(tmp_path), "add", "real", ".cache"], check=True)
    assert tracked_links(tmp_path) == [".cache"]


def test_no_symbolic_link_is_tracked() -> None:
    if not _is_work_tree(ROOT):
        pytest.skip("not a git checkout (an unpacked archive has no index to read)")
    assert tracked_links(ROOT) == []
