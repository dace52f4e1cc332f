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
from langgraph.checkpoint.sqlite import SqliteSaver

from metaspider.errors import MetaspiderError
from metaspider.graph.postgres_memory import PostgresMemory, is_postgres_url

_THREADS_TABLE = "CREATE TABLE IF NOT EXISTS metaspider_threads (thread_id TEXT PRIMARY KEY, used_at REAL NOT NULL)"


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
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(str(path), check_same_thread=False)
            self._connection.execute(_THREADS_TABLE)
            self._connection.commit()
        except (OSError, sqlite3.Error) as exc:
            raise MetaspiderError(f"memory: cannot open the SQLite file {path}: {exc}") from None
        saver = SqliteSaver(self._connection)
        saver.setup()
        self.checkpointer = saver

    def last_thread(self) -> str | None:
        if self._connection is None:
            return None
        row = self._connection.execute(
            "SELECT thread_id FROM metaspider_threads ORDER BY used_at DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    def touch(self, thread_id: str) -> None:
        if self._connection is None:
            return
        self._connection.execute(
            "INSERT INTO metaspider_threads (thread_id, used_at) VALUES (?, ?) "
            "ON CONFLICT(thread_id) DO UPDATE SET used_at = excluded.used_at",
            (thread_id, time.time()),
        )
        self._connection.commit()

    def thread_lock(self, thread_id: str) -> AbstractContextManager[None]:
        """No lock across processes on a SQLite file: turns run as they come (PostgreSQL memory queues them)."""
        return nullcontext()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
