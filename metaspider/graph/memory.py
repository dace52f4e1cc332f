"""Where conversation threads live: a SQLite file (the spec's `memory:`), a PostgreSQL server (a
`postgresql://` URL, see postgres_memory.py) or, without either, the process.

The SQLite file also remembers which thread was used last, so the REPL reopens the conversation where
the previous run left it."""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from metaspider.errors import MetaspiderError
from metaspider.graph.postgres_memory import PostgresMemory, is_postgres_url

_THREADS_TABLE = "CREATE TABLE IF NOT EXISTS metaspider_threads (thread_id TEXT PRIMARY KEY, used_at REAL NOT NULL)"


BUSY_TIMEOUT_S = 30.0
"""How long a write waits for another process holding the file (SQLite's own default is 5 s)."""


class MemoryFileError(MetaspiderError):
    """The SQLite memory file cannot be used (corrupt, locked, not a database): the message names it and
    the way on (another file)."""


def strict_serializer() -> JsonPlusSerializer:
    """Checkpoints decoded with LangGraph's allow-list of safe types only: a memory file that someone else
    can write must not be able to make the loader build arbitrary objects (GHSA-g48c-2wqr-h844)."""
    return JsonPlusSerializer(allowed_msgpack_modules=None)


def _way_on(path: Path) -> str:
    return f"move it aside or point the spec's `memory:` at a new file (e.g. {path.with_suffix('.new.sqlite')})"


def open_sqlite(path: Path, busy_timeout: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A checked connection in WAL mode with a busy timeout, or one `MemoryFileError` naming the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(str(path), check_same_thread=False, timeout=busy_timeout)
    except (OSError, sqlite3.Error) as exc:
        raise MemoryFileError(f"memory: cannot open the SQLite file {path}: {exc}") from None
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        status = connection.execute("PRAGMA quick_check").fetchone()
        if status is None or status[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {status[0] if status else 'no answer'}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(_THREADS_TABLE)
        connection.commit()
    except sqlite3.OperationalError as exc:
        connection.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise MemoryFileError(
                f"memory: the SQLite file {path} stayed locked by another process for {busy_timeout:g} s; "
                f"close the other agent or {_way_on(path)}"
            ) from None
        raise MemoryFileError(f"memory: cannot use the SQLite file {path}: {exc}; {_way_on(path)}") from None
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise MemoryFileError(f"memory: {path} is not a usable SQLite database ({exc}); {_way_on(path)}") from None
    return connection


def open_memory(location: Path | str | None) -> Memory | PostgresMemory:
    """The memory a spec's `memory:` names: a PostgreSQL URL, else a SQLite file (None: in the process)."""
    if is_postgres_url(location):
        return PostgresMemory(str(location))
    return Memory(Path(location) if location is not None else None)


class Memory:
    """A checkpointer plus the last-used thread (remembered only when backed by a file)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._connection: sqlite3.Connection | None = None
        if path is None:
            self.checkpointer: BaseCheckpointSaver = InMemorySaver()
            return
        self._connection = open_sqlite(path)
        saver = SqliteSaver(self._connection, serde=strict_serializer())
        try:
            saver.setup()
        except sqlite3.Error as exc:
            self.close()
            raise MemoryFileError(f"memory: cannot set up the SQLite file {path}: {exc}; {_way_on(path)}") from None
        self.checkpointer = saver

    def last_thread(self) -> str | None:
        """The most recently used thread, so a new session can continue it; None without persistent memory."""
        if self._connection is None:
            return None
        try:
            row = self._connection.execute(
                "SELECT thread_id FROM metaspider_threads ORDER BY used_at DESC LIMIT 1"
            ).fetchone()
        except sqlite3.Error as exc:
            raise MemoryFileError(
                f"memory: cannot read the threads of {self.path}: {exc}; {_way_on(self.path)}"
            ) from None
        return row[0] if row else None

    def touch(self, thread_id: str) -> None:
        """Mark `thread_id` as used now."""
        if self._connection is None:
            return
        try:
            self._connection.execute(
                "INSERT INTO metaspider_threads (thread_id, used_at) VALUES (?, ?) "
                "ON CONFLICT(thread_id) DO UPDATE SET used_at = excluded.used_at",
                (thread_id, time.time()),
            )
            self._connection.commit()
        except sqlite3.Error as exc:
            raise MemoryFileError(f"memory: cannot write to {self.path}: {exc}; {_way_on(self.path)}") from None

    def thread_lock(self, thread_id: str) -> AbstractContextManager[None]:
        """No lock across processes on a SQLite file: turns run as they come (PostgreSQL memory queues them)."""
        return nullcontext()

    def close(self) -> None:
        """Close the SQLite connection (idempotent)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
