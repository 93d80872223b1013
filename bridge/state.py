"""Crash safety: one run at a time per mapping, and a journal of in-flight sends.

The journal (SQLite, in the state directory) records each row's fingerprint before it is
sent and the platform's ids once the platform confirmed it. Statuses are written to the
sheet only after that; the journal entries of a mapping are cleared once the sheet holds
them. A run that was killed anywhere leaves at most:

- rows marked ``sending``: they may or may not have landed; the next run sends them again,
  which every target makes safe (upsert keys, client-chosen ids);
- rows marked ``confirmed``: they landed but the sheet does not say so yet; the next run
  writes their status without sending them again.

The next run reads both (``Journal.earlier``), whatever the sheet says meanwhile: an SME may
have undone the edit, cells and status included, so that the sheet claims the platform holds
the old content while it holds the interrupted run's. A row whose content now differs from
what was sent is sent again (see ``bridge.pipeline.reconcile``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, NamedTuple

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


def _open_lock(path: Path) -> IO[str]:
    """A lock file, opened to be held; a state folder annobridge cannot write is said so."""
    try:
        return open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until released
    except OSError as exc:
        raise ConfigError(
            f"cannot write the lock file {path} ({exc.strerror}); make the state folder "
            f"writable, or point state_dir in the mapping (or {STATE_ENV}) at one that is"
        ) from None


def _claim(fh: IO[str]) -> IO[str]:
    """A lock file just locked: it now names this process (what a waiting run reports)."""
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


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
            fh = _open_lock(self.path)
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
        self._fh = _claim(fh)
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


WRITE_LOCK_TIMEOUT = 600.0
"""Seconds a run waits for another run's status write to the same workbook or CSV file."""


class MediumLock:
    """An exclusive lock on one workbook or CSV file while its statuses are written.

    Two mappings on two tabs of one workbook each re-read the file and replace it whole; run
    together, the second replaced the first's statuses with its older copy. Held from the
    write's re-read to the replace, so each write starts from the other's result. Keyed by
    the file's resolved path, in the state directory (mappings that share a file must share
    the state directory, as they do by default). Waits up to ``WRITE_LOCK_TIMEOUT``.
    """

    def __init__(self, directory: Path, medium: Path, timeout: float | None = None) -> None:
        digest = hashlib.sha256(str(medium.resolve()).encode()).hexdigest()[:16]
        self.path = directory / f"write-{digest}.lock"
        self.medium = medium
        self.timeout = WRITE_LOCK_TIMEOUT if timeout is None else timeout
        self._fh: IO[str] | None = None

    def __enter__(self) -> MediumLock:
        fh = _open_lock(self.path)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "unknown"
                    fh.close()
                    raise UnavailableError(
                        f"{self.medium}: another sync (pid {holder}) has been writing its "
                        f"statuses to this file for over {self.timeout:g} s; the statuses of "
                        "this run were not written. What was sent is in the journal: run "
                        "again to write them without sending anything twice"
                    ) from None
                time.sleep(0.05)
        self._fh = _claim(fh)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


RowRef = str
"""A row as the journal knows it: JSON of its key and occurrence."""


SENDING, CONFIRMED = "sending", "confirmed"


class JournalEntry(NamedTuple):
    """One row an earlier run sent: ``sending`` (may have landed) or ``confirmed``."""

    state: str
    hash: str
    remote_ids: str


def row_ref(key: tuple[str, ...], occurrence: int) -> RowRef:
    return json.dumps([list(key), occurrence], ensure_ascii=False)


def journal_path(directory: Path, name: str) -> Path:
    """One journal file per mapping: runs of different mappings never wait for each other
    (one shared file made a run started beside another die on "database is locked")."""
    return directory / f"journal-{name}.sqlite3"


class Journal:
    """The SQLite journal of one mapping's in-flight sends (its run lock is held meanwhile)."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.path = journal_path(directory, name)
        with self._guard("open"):
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS sends (mapping TEXT, row TEXT, hash TEXT, "
                "state TEXT, remote_ids TEXT, at REAL, PRIMARY KEY (mapping, row))"
            )

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """A journal that cannot be used is exit 3 with what to do, never a traceback."""
        try:
            yield
        except sqlite3.Error as exc:
            raise UnavailableError(
                f"cannot {action} the journal {self.path} ({exc}); check that the state folder "
                "is writable and not shared over a network file system, and run again. What "
                "was confirmed is not sent twice"
            ) from None

    def close(self) -> None:
        self.db.close()

    def _write(self, sql: str, rows: Iterable[tuple[object, ...]]) -> None:
        # One transaction per batch: one fsync, not one per row (autocommit would fsync each).
        with self._guard("write"):
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

    def earlier(self) -> dict[RowRef, JournalEntry]:
        """What runs that did not finish sent: every row still in the journal."""
        with self._guard("read"):
            cursor = self.db.execute(
                "SELECT row, state, hash, remote_ids FROM sends WHERE mapping = ?", (self.name,)
            )
            return {row: JournalEntry(state, digest, ids) for row, state, digest, ids in cursor}

    def confirmed_rows(self) -> dict[RowRef, tuple[str, str]]:
        """Rows confirmed by the platform whose status may not be in the sheet yet."""
        cursor = self.db.execute(
            "SELECT row, hash, remote_ids FROM sends WHERE mapping = ? AND state = 'confirmed'",
            (self.name,),
        )
        return {row: (digest, ids) for row, digest, ids in cursor}

    def clear(self, keep: Iterable[RowRef] = ()) -> None:
        """The sheet holds every status: nothing is in flight any more.

        :param keep: rows whose entries stay, for the next run (rows the journal says must be
            sent again that this run did not send: past ``--limit``, or after a Ctrl-C).
        """
        kept = set(keep)
        if not kept:
            self._write("DELETE FROM sends WHERE mapping = ?", [(self.name,)])
            return
        with self._guard("read"):
            rows = self.db.execute("SELECT row FROM sends WHERE mapping = ?", (self.name,))
            gone = [(self.name, row) for (row,) in rows if row not in kept]
        self._write("DELETE FROM sends WHERE mapping = ? AND row = ?", gone)
