"""One SQLite file shared by several processes: WAL mode, a busy timeout, one transaction per write.

Opening creates the tables of `schema` (CREATE ... IF NOT EXISTS) and runs `migrate(conn)` once; a
file that is not a SQLite database (truncated, overwritten) raises StoreUnreadable with the way to
move it aside, instead of sqlite3's "file is not a database" from deep inside a query.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable


class StoreUnreadable(ValueError):
    """The file exists but is not a readable SQLite database; the message names it and the fix."""


class SQLiteFile:
    """A SQLite file with its schema in place; connection() to read, transaction() to write."""

    def __init__(self, path: str | Path, schema: str, migrate: Callable | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(50):
            try:
                with self.connection() as conn:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(schema)
                    if migrate is not None:
                        migrate(conn)
                break
            except sqlite3.OperationalError as exc:  # another process is switching to WAL right now
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.1)

    @contextmanager
    def connection(self):
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            raise self._unreadable(exc) from None
        finally:
            conn.close()

    @contextmanager
    def transaction(self):
        """One write transaction: all of it lands or none of it does."""
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _unreadable(self, exc: Exception) -> StoreUnreadable:
        return StoreUnreadable(f"{self.path} is not a readable run store ({exc}); move it aside to start a new "
                               f"one, e.g. mv {self.path} {self.path}.broken")


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "disk image" in text
