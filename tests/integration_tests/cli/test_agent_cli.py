"""`metaspider agent run SPEC` as a user runs it: a separate process per call, real default model."""

import json
from pathlib import Path

import pytest
from agent_specs import agent_cli, qa_spec_copy, write_spec
from langgraph.checkpoint.sqlite import SqliteSaver

from metaspider.loom.scoring import is_correct_open


def ask_json(spec: Path, question: str, *extra: str, stdin: str | None = None) -> dict:
    done = agent_cli(str(spec), "--question", question, "--json", *extra, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def qa_spec(tmp_path_factory) -> Path:
    return qa_spec_copy(tmp_path_factory.mktemp("qa"))


def test_calculator_question(qa_spec: Path):
    result = ask_json(qa_spec, "What is 1234 * 5678?")
    assert set(result) == {"answer", "decision", "score", "tool_calls", "thread_id"}
    assert [call["name"] for call in result["tool_calls"]] == ["calculator"]
    assert result["tool_calls"][0]["result"] == "7006652"
    assert "7006652" in result["answer"].replace(",", "")
    assert result["decision"] == "used_tool" and 0 <= result["score"] <= 1


def test_knowledge_base_question(qa_spec: Path):
    result = ask_json(qa_spec, "Who is the CEO of Orrery Labs?")
    assert [call["name"] for call in result["tool_calls"]] == ["knowledge_base"]
    assert "Ingrid Halvorsen" in result["tool_calls"][0]["result"]
    assert is_correct_open(result["answer"], ["Ingrid Halvorsen", "Halvorsen"]), result["answer"]


def test_unknowable_question_is_not_answered(qa_spec: Path):
    # A made-up country: neither the model nor any tool can know its capital.
    result = ask_json(qa_spec, "What is the capital of Zubrovia?")
    assert result["decision"] in ("refused", "escalated")
    assert result["tool_calls"] == []


def thread_messages(memory: Path, thread: str) -> list[tuple[str, str]]:
    with SqliteSaver.from_conn_string(str(memory)) as saver:
        checkpoint = saver.get_tuple({"configurable": {"thread_id": thread}}).checkpoint
    return [(m.type, m.text) for m in checkpoint["channel_values"]["messages"]]


def test_escalation_reads_the_human_answer_from_stdin(tmp_path: Path):
    memory = tmp_path / "memory.sqlite"
    spec = write_spec(
        tmp_path, policy={"answer_below": 0.0, "escalate_above": 0.0}, escalation={"kind": "human"}, memory=str(memory)
    )
    unanswered = ask_json(spec, "What is my neighbour's dog called?", "--thread", "e", stdin="")
    assert unanswered["decision"] == "escalated" and unanswered["answer"] is None  # paused on its thread
    answered = ask_json(spec, "What is my neighbour's cat called?", "--thread", "e", stdin="Miso\n")
    assert answered["decision"] == "escalated" and answered["answer"] == "Miso"
    assert thread_messages(memory, "e") == [
        ("human", "What is my neighbour's dog called?"),
        ("ai", "No one answered this question."),  # closed when the next question came
        ("human", "What is my neighbour's cat called?"),
        ("ai", "Miso"),
    ]


def test_a_thread_survives_a_restart_without_losing_a_turn(tmp_path: Path):
    memory = tmp_path / "state" / "threads.sqlite"  # parent folder created by the agent
    spec = write_spec(tmp_path, policy={"answer_below": 1.0}, memory=str(memory), max_tokens=12)
    first = ask_json(spec, "My name is Ada.", "--thread", "t1")
    second = ask_json(spec, "What is my name?", "--thread", "t1")
    assert first["thread_id"] == second["thread_id"] == "t1"
    assert thread_messages(memory, "t1") == [
        ("human", "My name is Ada."),
        ("ai", first["answer"]),
        ("human", "What is my name?"),
        ("ai", second["answer"]),
    ]
