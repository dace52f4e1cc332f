"""The SQLite memory: WAL and a busy timeout, strict checkpoint decoding, and one clear error (with the way
on) for a corrupt or locked file."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from metaspider.graph.memory import Memory, MemoryFileError, open_sqlite


@dataclass
class Planted:
    """A type an attacker could plant in a checkpoint."""

    command: str


def test_wal_and_busy_timeout(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "m.sqlite")
    connection = memory._connection
    assert connection is not None
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
    memory.close()


def test_checkpoints_decode_only_safe_types(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "m.sqlite")
    serde = memory.checkpointer.serde
    planted = JsonPlusSerializer(allowed_msgpack_modules=True).dumps_typed({"x": Planted("rm -rf ~")})
    assert not isinstance(serde.loads_typed(planted)["x"], Planted)
    message = serde.loads_typed(serde.dumps_typed({"m": HumanMessage("hi")}))["m"]
    assert isinstance(message, HumanMessage) and message.text == "hi"
    memory.close()


def test_a_corrupt_file_gives_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(MemoryFileError) as caught:
        Memory(path)
    message = str(caught.value)
    assert str(path) in message and "new file" in message and "\n" not in message


def test_a_truncated_database_gives_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite"
    Memory(path).close()
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\xff" * (len(data) - 100))
    with pytest.raises(MemoryFileError, match="memory.sqlite"):
        Memory(path)


def test_a_locked_file_gives_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite"
    Memory(path).close()
    holder = sqlite3.connect(str(path))
    holder.execute("PRAGMA journal_mode = DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(MemoryFileError, match="locked by another process"):
            open_sqlite(path, busy_timeout=0.2)
    finally:
        holder.rollback()
        holder.close()
