"""One SQLite file shared by several processes: WAL mode, a busy timeout, one transaction per write.

Opening creates the tables of `schema` (CREATE ... IF NOT EXISTS) and runs `migrate(conn)` once; a
file that is not a SQLite database (truncated, overwritten) raises StoreUnreadable with the way to
move it aside, instead of sqlite3's "file is not a database" from deep inside a query.

A store that can be read but not written (`chattr +i`, a read-only folder or mount, a file of another
user) opens read-only: reads work (a table of the schema it lacks reads as empty), and every write,
or check_writable() before work that is to be saved, raises StoreReadOnly naming a way out.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable


class StoreUnreadable(ValueError):
    """The file exists but is not a readable SQLite database; the message names it and the fix."""


class StoreReadOnly(ValueError):
    """The store can be read but nothing can be written to it; the message names a way out."""


_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)")


class SQLiteFile:
    """A SQLite file with its schema in place; connection() to read, transaction() to write."""

    def __init__(self, path: str | Path, schema: str, migrate: Callable | None = None):
        self.path = Path(path)
        self.read_only: str | None = None  # why nothing can be written here (None: it can)
        self._uri: str | None = None  # how a read-only store is opened
        self._empty_tables = ""  # the schema's tables a read-only store lacks, made empty per connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a folder that cannot be made: no store to read either
            self._open_read_only(schema, exc.strerror or str(exc))
            return
        if not self.path.exists() and not os.access(self.path.parent, os.W_OK):
            self._open_read_only(schema, f"its folder {self.path.parent} is read-only")
            return
        for attempt in range(50):
            try:
                with self.connection() as conn:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(schema)
                    if migrate is not None:
                        migrate(conn)
                break
            except sqlite3.OperationalError as exc:  # another process is switching to WAL right now
                if self._cannot_write(exc):
                    self._open_read_only(schema, str(exc))
                    return
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.1)

    def _open_read_only(self, schema: str, reason: str) -> None:
        """Read the store without writing to it: SQLite's read-only mode, or, for a file whose folder
        cannot hold the -shm file that mode needs and with no -wal file beside it (so nothing
        committed can be missed), as an immutable file; a missing store as an empty one in memory."""
        self.read_only = reason
        tables = dict(_tables(schema))
        if not self.path.exists():
            self._uri, self._empty_tables = "file::memory:", ";".join(tables.values())
            return
        uri = "file:" + urllib.request.pathname2url(str(self.path.resolve()))
        self._uri = f"{uri}?mode=ro"
        try:
            with self.connection() as conn:
                present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError:
            if Path(f"{self.path}-wal").exists():
                raise
            self._uri = f"{uri}?mode=ro&immutable=1"
            with self.connection() as conn:
                present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        self._empty_tables = ";".join(ddl.replace("CREATE TABLE", "CREATE TEMP TABLE", 1)
                                      for name, ddl in tables.items() if name not in present)

    @contextmanager
    def connection(self):
        try:
            conn = (sqlite3.connect(self.path, timeout=30, isolation_level=None) if self._uri is None else
                    sqlite3.connect(self._uri, uri=True, timeout=30, isolation_level=None))
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            if self._empty_tables:
                conn.executescript(self._empty_tables)
            yield conn
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            raise self._unreadable(exc) from None
        finally:
            conn.close()

    @contextmanager
    def transaction(self):
        """One write transaction: all of it lands or none of it does. StoreReadOnly when nothing
        can be written here."""
        if self.read_only is not None:
            raise self._read_only_error(self.read_only)
        try:
            with self.connection() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if not self._cannot_write(exc):
                raise
            raise self._read_only_error(str(exc)) from None

    def check_writable(self) -> None:
        """StoreReadOnly now, before work whose result is to be saved here, when nothing can be
        written: a write that is rolled back (it waits for another process's write as a save would)."""
        try:
            with self.transaction() as conn:
                conn.execute("CREATE TABLE convcov_write_check (x)")
                raise _RolledBack
        except _RolledBack:
            pass

    def _cannot_write(self, exc: sqlite3.OperationalError) -> bool:
        """Whether `exc` says this process cannot write the store (a read-only file, folder or mount)."""
        text = str(exc).lower()
        return ("readonly" in text or "read-only" in text
                or ("unable to open" in text and not (os.access(self.path, os.W_OK)
                                                      and os.access(self.path.parent, os.W_OK))))

    def _read_only_error(self, reason: str) -> StoreReadOnly:
        return StoreReadOnly(f"{self.path} is read-only ({reason}): its runs can be read but nothing can be saved "
                             "there; save to another store with --db FILE, or set CONVCOV_HOME to a writable "
                             "folder")

    def _unreadable(self, exc: Exception) -> StoreUnreadable:
        return StoreUnreadable(f"{self.path} is not a readable run store ({exc}); move it aside to start a new "
                               f"one, e.g. mv {self.path} {self.path}.broken")


class _RolledBack(Exception):
    """Leaves check_writable's transaction, rolling its write back."""


def _tables(schema: str) -> list[tuple[str, str]]:
    """(name, CREATE TABLE statement) of each table of `schema`."""
    return [(found.group(1), statement.strip()) for statement in schema.split(";")
            if (found := _TABLE.search(statement))]


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "disk image" in text
