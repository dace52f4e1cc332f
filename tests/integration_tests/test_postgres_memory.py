"""Agent memory on a real PostgreSQL server: separate `metaspider agent run` processes share threads.

Each agent process is the real CLI (`metaspider agent run SPEC --question Q --thread T --json`) on the
default model, its llama.cpp engine pinned to one thread. What a thread holds is read back from the
server with LangGraph's own `PostgresSaver`, as any other process would see it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import PASSWORD, PostgresServer, running_postgres

from metaspider.core.models.registry import DEFAULT_MODEL

pytest.importorskip("langgraph.checkpoint.postgres", reason="in the test extra: pip install -e '.[test]'")

REPO = Path(__file__).parents[2]
TURN_TIMEOUT_S = 300
# The real CLI, with the process's llama.cpp engine created first with one thread and the spec's
# context size (the graph's chat model then reuses it): the machine is shared.
LAUNCH = (
    "import sys; from metaspider.graph.spec import AgentSpec; from metaspider.runtime.engine import get_engine\n"
    "field = AgentSpec.model_fields.get('n_ctx')\n"
    "if field is None: from metaspider.graph.nodes import N_CTX as n_ctx\n"
    "else: n_ctx = field.default\n"
    f"get_engine({DEFAULT_MODEL!r}, 'llama_cpp', n_ctx, 1)\n"
    "from metaspider.cli import main; sys.argv[0] = 'metaspider'; main()"
)


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway server for the module; each test uses threads of its own."""
    with running_postgres() as server:
        yield server


def _spec(folder: Path, memory: str) -> Path:
    path = folder / f"agent-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(
        f"model: {DEFAULT_MODEL}\nwrapper: default\nmodifier: doubter\npolicy:\n  answer_below: 0.5\n"
        f"memory: {json.dumps(memory)}\nmax_tokens: 48\n",
        encoding="utf-8",
    )
    return path


def _agent(spec: Path, question: str, thread: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "agent", "run", str(spec), "--question", question, "--thread", thread, "--json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=TURN_TIMEOUT_S)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _messages(url: str, thread: str) -> list[tuple[str, str]]:
    """(type, text) of every message the thread's latest checkpoint holds, read straight from the server."""
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(url) as saver:
        latest = saver.get_tuple({"configurable": {"thread_id": thread}})
    if latest is None:
        return []
    return [(message.type, message.text) for message in latest.checkpoint["channel_values"].get("messages", [])]


def _questions(messages: list[tuple[str, str]]) -> list[str]:
    return [text for kind, text in messages if kind == "human"]


def _assert_every_question_answered(messages: list[tuple[str, str]]) -> None:
    kinds = [kind for kind, _ in messages]
    for index, kind in enumerate(kinds):
        if kind == "human":
            assert "ai" in kinds[index + 1 : index + 2], messages


Q1, Q2, Q3 = "What is the capital of France?", "What is the capital of Japan?", "What is the capital of Italy?"


@pytest.mark.slow
def test_processes_one_after_the_other_see_each_others_turns(postgres_server: PostgresServer, tmp_path: Path) -> None:
    spec, thread = _spec(tmp_path, postgres_server.url), f"seq-{uuid.uuid4().hex[:8]}"
    first = _finish(_agent(spec, Q1, thread))
    second = _finish(_agent(spec, Q2, thread))
    assert first["thread_id"] == second["thread_id"] == thread
    messages = _messages(postgres_server.url, thread)
    assert _questions(messages) == [Q1, Q2]
    _assert_every_question_answered(messages)


@pytest.mark.slow
def test_processes_at_the_same_time_keep_both_turns(postgres_server: PostgresServer, tmp_path: Path) -> None:
    """Without the per-thread lock both turns start from the same checkpoint and one of them is lost."""
    spec, thread = _spec(tmp_path, postgres_server.url), f"par-{uuid.uuid4().hex[:8]}"
    processes = [_agent(spec, Q1, thread), _agent(spec, Q2, thread)]
    for process in processes:
        _finish(process)
    messages = _messages(postgres_server.url, thread)
    assert sorted(_questions(messages)) == sorted([Q1, Q2])
    assert len(messages) == 4
    _assert_every_question_answered(messages)


@pytest.mark.slow
def test_a_killed_process_loses_no_committed_turn(postgres_server: PostgresServer, tmp_path: Path) -> None:
    spec, thread = _spec(tmp_path, postgres_server.url), f"kill-{uuid.uuid4().hex[:8]}"
    _finish(_agent(spec, Q1, thread))
    committed = _messages(postgres_server.url, thread)
    victim = _agent(spec, Q2, thread)
    deadline = time.monotonic() + TURN_TIMEOUT_S
    while Q2 not in _questions(_messages(postgres_server.url, thread)):
        assert victim.poll() is None, f"the agent finished before it could be killed: {victim.communicate()}"
        assert time.monotonic() < deadline, "the second agent never started its turn"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)  # in the middle of its turn: the question is stored, no reply yet
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    # A third process takes the thread over at once (the dead one's lock went with its connection).
    _finish(_agent(spec, Q3, thread))
    messages = _messages(postgres_server.url, thread)
    assert messages[: len(committed)] == committed
    assert _questions(messages)[0] == Q1 and _questions(messages)[-1] == Q3
    assert messages[-1][0] == "ai"


def test_wrong_url_or_server_down_is_one_line_naming_the_url(postgres_server: PostgresServer, tmp_path: Path) -> None:
    down = f"postgresql://metaspider:{PASSWORD}@127.0.0.1:{_closed_port()}/agents"
    wrong_password = postgres_server.url.replace(PASSWORD, "not-the-password")
    wrong_database = postgres_server.url.rsplit("/", 1)[0] + "/no_such_db"
    for url in (down, wrong_password, wrong_database):
        process = _agent(_spec(tmp_path, url), Q1, "t")
        out, err = process.communicate(timeout=120)
        assert process.returncode == 1, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert "PostgreSQL" in lines[0] and "127.0.0.1" in lines[0] and ":***@" in lines[0], lines[0]
        assert PASSWORD not in err and "not-the-password" not in err
        assert "Traceback" not in err and out == ""


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_server_lost_after_start_is_one_error_naming_the_url() -> None:
    """Its own server, stopped under an open memory: the next use fails with the URL, no password, no traceback."""
    from metaspider.errors import MetaspiderError
    from metaspider.graph.memory import open_memory

    with running_postgres() as server:
        memory = open_memory(server.url)
        try:
            memory.touch("t")
            assert memory.last_thread() == "t"
            server.stop()
            for use in (lambda: memory.touch("t"), memory.last_thread):
                with pytest.raises(
                    MetaspiderError, match=r"lost the PostgreSQL server at postgresql://metaspider:\*\*\*@"
                ) as caught:
                    use()
                assert PASSWORD not in str(caught.value) and "\n" not in str(caught.value)
        finally:
            memory.close()
