"""Connections to the DuckDB file, transactions, and the numbered migrations.

DuckDB lets only one *process* open a database file at a time. The app, the CLI and
background jobs (labeling, training) are separate processes, so nobody keeps the
file open: every operation opens a short-lived connection, runs inside a
transaction, and closes it. A process that finds the file locked retries with
backoff for up to `busy_timeout_s`.

Migrations are the files migrations/NNNN_name.sql, applied in numeric order; each runs
once, inside its own transaction, and is recorded in `schema_migrations`.
"""

from __future__ import annotations

import atexit
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from core.kernel.errors import StoreBusy

_PROCESS_LOCK = threading.RLock()  # see Database.connect

DEFAULT_DB_ENV = "DISTILL_DB"
DEFAULT_DB_PATH = "workspace/distill.duckdb"

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_WAITING = ".waiting."  # <db>.waiting.<pid>: a process is waiting for the file


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def migrations() -> list[tuple[int, str]]:
    """(version, SQL) of every migration file, in order; the version is the file's numeric prefix."""
    found = [(int(path.name.split("_", 1)[0]), path.read_text(encoding="utf-8"))
             for path in MIGRATIONS_DIR.glob("[0-9]*_*.sql")]
    return sorted(found)


MIGRATIONS: list[tuple[int, str]] = migrations()


def run_with_rows(con, name: str, rows: list[dict], columns: list[str], sql: str,
                  params: Sequence[Any] = ()) -> None:
    """Run one set-based statement over `rows`, visible to the SQL as the view `name`.
    Nothing happens for no rows. The result is fetched so that the next register() works
    (DuckDB refuses it while a result is pending)."""
    if not rows:
        return
    con.register(name, pd.DataFrame(rows, columns=columns))
    try:
        con.execute(sql, list(params)).fetchall()
    finally:
        con.unregister(name)




def default_db_path() -> str:
    return os.environ.get(DEFAULT_DB_ENV, DEFAULT_DB_PATH)


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("could not set" in text or "conflicting" in text)


class Database:
    """Owns one DuckDB file. Cheap to create; connections are opened per operation."""

    def __init__(self, path: str | os.PathLike | None = None, busy_timeout_s: float | None = None,
                 hold_s: float = 0.0):
        """hold_s > 0 (the app process): keep the database open that long after the last use,
        so the queries of one page rerun share it; other processes (jobs) wait and retry
        meanwhile. 0 (jobs, CLI): open and close per operation."""
        self.path = str(path or default_db_path())
        self.busy_timeout_s = (busy_timeout_s if busy_timeout_s is not None
                               else float(os.environ.get("DISTILL_BUSY_TIMEOUT_S", "60")))
        self.hold_s = hold_s
        self._held: duckdb.DuckDBPyConnection | None = None
        self._last_used = time.monotonic()
        self._close_registered = False
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.migrate()

    def _open(self) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting (with jittered backoff) while another process holds it. While it
        waits it leaves a marker next to the file, so that a process holding the file for
        convenience (the app) lets go at once instead of starving it."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.005
        marker: Path | None = None
        try:
            while True:
                try:
                    return duckdb.connect(self.path)
                except duckdb.IOException as exc:
                    if not _is_lock_error(exc) or time.monotonic() > deadline:
                        if _is_lock_error(exc):
                            raise StoreBusy(
                                f"The database {self.path} stayed locked by another process for "
                                f"{self.busy_timeout_s:.0f} s."
                            ) from exc
                        raise
                    if marker is None:
                        marker = Path(f"{self.path}{_WAITING}{os.getpid()}")
                        marker.touch()
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.1)
        finally:
            if marker is not None:
                marker.unlink(missing_ok=True)

    def _others_waiting(self) -> bool:
        """Whether another live process is waiting for the file (see _open)."""
        for marker in Path(self.path).parent.glob(Path(self.path).name + _WAITING + "*"):
            pid = marker.name.rsplit(".", 1)[-1]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            if _pid_alive(int(pid)):
                return True
            marker.unlink(missing_ok=True)  # left by a process that died waiting
        return False

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # One database operation at a time per process: DuckDB 2.0 intermittently lost its
        # pandas_scan function ("Table Function with name pandas_scan does not exist") when a
        # labeling job's writer thread registered rows while its main thread opened and closed
        # another connection to the same file. Operations are milliseconds; threads queue.
        with _PROCESS_LOCK:
            if self.hold_s <= 0:
                con = self._open()
                try:
                    yield con
                finally:
                    con.close()
                return
            if self._held is None:
                self._yield_to_waiters()
                self._held = self._open()
                threading.Thread(target=self._release_when_idle, daemon=True).start()
                if not self._close_registered:  # a daemon thread must not be mid-close at exit
                    atexit.register(self.release)
                    self._close_registered = True
            con = self._held.cursor()  # a fresh connection per operation, sharing the open database
            try:
                yield con
            finally:
                con.close()
                self._last_used = time.monotonic()
                if self._others_waiting():  # a job is waiting: let go now, not after hold_s
                    self._held.close()
                    self._held = None

    def _yield_to_waiters(self, max_s: float = 1.0) -> None:
        """Before the app opens the file, give a waiting job its turn (at most max_s)."""
        deadline = time.monotonic() + max_s
        while self._others_waiting() and time.monotonic() < deadline:
            time.sleep(0.02)

    def release(self) -> None:
        """Close a held database now (at exit, so no daemon thread closes it mid-shutdown)."""
        with _PROCESS_LOCK:
            if self._held is not None:
                self._held.close()
                self._held = None

    def _release_when_idle(self) -> None:
        while True:
            time.sleep(self.hold_s / 2)
            with _PROCESS_LOCK:
                if self._held is None:  # already let go for a waiting process
                    return
                if time.monotonic() - self._last_used >= self.hold_s:
                    self._held.close()
                    self._held = None
                    return

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        with self.connect() as con:
            cur = con.execute(sql, list(params))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.connect() as con:
            row = con.execute(sql, list(params)).fetchone()
            return row[0] if row else None

    def migrate(self) -> int:
        steps = migrations()
        with self.connect() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)"
            )
            applied = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, sql in steps:
                if version in applied:
                    continue
                con.execute("BEGIN TRANSACTION")
                try:
                    con.execute(sql)  # a whole file: DuckDB runs every statement in the string
                    con.execute("INSERT INTO schema_migrations(version) VALUES (?)", [version])
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        return max(v for v, _ in steps)

    def schema_version(self) -> int:
        return self.scalar("SELECT max(version) FROM schema_migrations")
