"""Crash safety: one run at a time per mapping, and a journal of in-flight sends.

The journal (SQLite, in the state directory) records each row's fingerprint before it is
sent and the platform's ids once the platform confirmed it. Statuses are written to the
sheet only after that; the journal entries of a mapping are cleared once the sheet holds
them. A run that was killed anywhere leaves at most:

- rows marked ``sending``: they may or may not have landed; the next run sends them again,
  which every target makes safe (upsert keys, client-chosen ids);
- rows marked ``confirmed``: they landed but the sheet does not say so yet; the next run
  writes their status without sending them again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

import platformdirs

from bridge.errors import ConfigError, UnavailableError

STATE_ENV = "ANNOBRIDGE_STATE_DIR"


def state_dir(configured: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The state directory: the mapping's ``state_dir``, $ANNOBRIDGE_STATE_DIR, or the
    user's state directory (e.g. ~/.local/state/annobridge)."""
    env = os.environ if environ is None else environ
    path = configured or (Path(env[STATE_ENV]) if env.get(STATE_ENV) else None)
    path = path or Path(platformdirs.user_state_dir("annobridge"))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the state directory {path} ({exc.strerror}); set state_dir in the "
            f"mapping or {STATE_ENV} to a writable folder"
        ) from exc
    return path


def run_id(mapping_path: Path | None, source_label: str) -> str:
    """A stable name for one mapping's runs: its resolved path."""
    basis = str(mapping_path.resolve()) if mapping_path else source_label
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


class RunLock:
    """An exclusive lock per mapping; the kernel drops it when the holder dies."""

    def __init__(self, directory: Path, name: str, what: str) -> None:
        self.path = directory / f"{name}.lock"
        self.what = what
        self._fh: IO[str] | None = None

    def __enter__(self) -> RunLock:
        # The file is removed when a run ends (no lock files piling up): a lock taken on a
        # file that was removed meanwhile, or replaced, is no lock; open it again.
        for _ in range(100):
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until __exit__
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                fh.close()
                raise UnavailableError(
                    f"another sync of {self.what} is running, pid {holder}; this run did "
                    "nothing. It will be picked up by the next run"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fh.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            fh.close()
        else:  # pragma: no cover - a hundred runs ending exactly as this one starts
            raise UnavailableError(f"could not take the run lock of {self.what}; run again")
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            self.path.unlink(missing_ok=True)  # while still holding it: see __enter__
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


RowRef = str
"""A row as the journal knows it: JSON of its key and occurrence."""


def row_ref(key: tuple[str, ...], occurrence: int) -> RowRef:
    return json.dumps([list(key), occurrence], ensure_ascii=False)


class Journal:
    """The SQLite journal of one mapping's in-flight sends."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.db = sqlite3.connect(directory / "journal.sqlite3", timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS sends (mapping TEXT, row TEXT, hash TEXT, state TEXT, "
            "remote_ids TEXT, at REAL, PRIMARY KEY (mapping, row))"
        )

    def close(self) -> None:
        self.db.close()

    def _write(self, sql: str, rows: Iterable[tuple[object, ...]]) -> None:
        # One transaction per batch: one fsync, not one per row (autocommit would fsync each).
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(sql, rows)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def sending(self, rows: Iterable[tuple[RowRef, str]]) -> None:
        """Record rows about to be sent (before the first byte leaves)."""
        now = time.time()
        self._write(
            "INSERT OR REPLACE INTO sends VALUES (?, ?, ?, 'sending', '', ?)",
            [(self.name, ref, digest, now) for ref, digest in rows],
        )

    def confirmed(self, rows: Iterable[tuple[RowRef, str, str]]) -> None:
        """Record rows the platform confirmed, with its ids."""
        now = time.time()
        self._write(
            "INSERT OR REPLACE INTO sends VALUES (?, ?, ?, 'confirmed', ?, ?)",
            [(self.name, ref, digest, ids, now) for ref, digest, ids in rows],
        )

    def confirmed_rows(self) -> dict[RowRef, tuple[str, str]]:
        """Rows confirmed by the platform whose status may not be in the sheet yet."""
        cursor = self.db.execute(
            "SELECT row, hash, remote_ids FROM sends WHERE mapping = ? AND state = 'confirmed'",
            (self.name,),
        )
        return {row: (digest, ids) for row, digest, ids in cursor}

    def clear(self) -> None:
        """The sheet holds every status: nothing is in flight any more."""
        self._write("DELETE FROM sends WHERE mapping = ?", [(self.name,)])
