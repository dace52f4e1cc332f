"""Conversation threads in PostgreSQL, shared by every agent or server process that names the same URL.

A spec's `memory: postgresql://user@host/db` (or `postgres://`) lands here; the checkpoints are
LangGraph's own `PostgresSaver` tables (`langgraph-checkpoint-postgres`, `pip install
'metaspider[postgres]'`), next to one small table of the last-used thread, as in the SQLite memory.

Several processes may take turns on one thread at the same time. LangGraph chains a thread's
checkpoints, so two turns that both start from the same checkpoint would fork the thread and one of
them would vanish from its history. A turn therefore holds a PostgreSQL advisory lock on its thread
while it runs: concurrent turns on one thread queue up, turns on different threads do not wait, and the
server releases the lock of a process that dies. Every checkpoint is committed as it is written
(autocommit), so a killed process loses only the turn it was in the middle of."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from metaspider.errors import MetaspiderError

URL_SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_S = 10
POOL_SIZE = 4
"""Connections per process: the saver's reads and writes, plus one held by each running turn's lock."""
_THREADS_TABLE = (
    "CREATE TABLE IF NOT EXISTS metaspider_threads (thread_id TEXT PRIMARY KEY, used_at DOUBLE PRECISION NOT NULL)"
)
_SETUP_LOCK = "metaspider:setup"


def is_postgres_url(location: object) -> bool:
    """True for a `postgresql://` or `postgres://` URL (a spec's `memory:` that is not a SQLite path)."""
    return isinstance(location, str) and urlsplit(location).scheme in URL_SCHEMES


def redact(url: str) -> str:
    """The URL with its password (in the user part or the query) replaced by `***`, fit for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = urlencode(
        [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*"
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class PostgresMemory:
    """A `PostgresSaver` on a small connection pool, the last-used thread, and one lock per thread."""

    def __init__(self, url: str):
        try:
            import psycopg
            from langgraph.checkpoint.postgres import PostgresSaver
            from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
            from psycopg.rows import dict_row
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError:
            raise MetaspiderError(
                f"memory: {redact(url)} needs PostgreSQL support: pip install 'metaspider[postgres]'"
            ) from None
        self.url = url
        self._server_errors = (psycopg.Error, PoolTimeout)
        try:
            # Connect once directly: a wrong URL or a server that is down fails here, at once and by name,
            # instead of as a pool timeout.
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
        except (psycopg.Error, ValueError) as exc:
            raise MetaspiderError(
                f"memory: cannot connect to PostgreSQL at {redact(url)}: {_first_line(exc, url)}"
            ) from None
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            timeout=CONNECT_TIMEOUT_S,
            kwargs={
                "autocommit": True,
                "prepare_threshold": 0,
                "row_factory": dict_row,
                "connect_timeout": CONNECT_TIMEOUT_S,
            },
            open=True,
        )
        try:
            # Only LangGraph's allow-list of safe types is decoded: a database that other clients can write
            # must not be able to make this process build arbitrary objects.
            self.checkpointer = PostgresSaver(self._pool, serde=JsonPlusSerializer(allowed_msgpack_modules=None))
            with self._advisory_lock(_SETUP_LOCK), self._pool.connection() as conn:
                # Two processes starting at once would both run the migrations: one at a time.
                self.checkpointer.setup()
                conn.execute(_THREADS_TABLE)
        except psycopg.Error as exc:
            self._pool.close()
            raise MetaspiderError(
                f"memory: cannot set up the tables in {redact(url)}: {_first_line(exc, url)}"
            ) from None

    def last_thread(self) -> str | None:
        """The thread any process used last: a new REPL continues the latest conversation."""
        with self._reporting_errors(), self._pool.connection() as conn:
            row = conn.execute("SELECT thread_id FROM metaspider_threads ORDER BY used_at DESC LIMIT 1").fetchone()
        return row["thread_id"] if row else None

    def touch(self, thread_id: str) -> None:
        """Mark `thread_id` as used now (for every process sharing the server)."""
        with self._reporting_errors(), self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO metaspider_threads (thread_id, used_at) VALUES (%s, %s) "
                "ON CONFLICT (thread_id) DO UPDATE SET used_at = excluded.used_at",
                (thread_id, time.time()),
            )

    @contextmanager
    def thread_lock(self, thread_id: str) -> Iterator[None]:
        """Held for one turn: other processes' turns on this thread wait until it is over. A server lost
        during the turn (the checkpointer's writes included) ends it with one error naming the URL."""
        with self._reporting_errors(), self._advisory_lock(f"metaspider:thread:{thread_id}"):
            yield

    @contextmanager
    def _reporting_errors(self) -> Iterator[None]:
        try:
            yield
        except self._server_errors as exc:
            raise MetaspiderError(
                f"memory: lost the PostgreSQL server at {redact(self.url)}: {_first_line(exc, self.url)}"
            ) from None

    @contextmanager
    def _advisory_lock(self, key: str) -> Iterator[None]:
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))

    def close(self) -> None:
        """Close the connection pool (the server keeps every committed checkpoint)."""
        self._pool.close()


def _first_line(exc: Any, url: str) -> str:
    """The error's first line, never showing the URL's password even if the driver quoted it."""
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    password = urlsplit(url).password
    return line.replace(password, "***") if password else line
