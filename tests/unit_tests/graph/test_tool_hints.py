"""`tool_hints:` (off by default): with it on, a built-in tool is offered only when the question shows it is
needed, and the calculator's expression is read from the question, without misreading numbers with
thousands separators or exponents, phone numbers or dates; with it off, every tool is offered and the
model's own arguments are kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_specs import KB_FOLDER, write_spec

from metaspider.graph.builder import AgentSession
from metaspider.graph.spec import load_spec
from metaspider.graph.tool_hints import arithmetic_in
from metaspider.tools.calculator import calculator

from .fakes import use_fakes

TOOL_BAND = {"answer_below": 0.0, "tool_below": 1.0}
CALCULATOR = {"name": "calculator"}
KNOWLEDGE_BASE = {"name": "knowledge_base", "folder": str(KB_FOLDER)}


@pytest.mark.parametrize(
    ("question", "expression", "value"),
    [
        ("What is 1234 * 5678?", "1234 * 5678", "7006652"),
        ("What is 1,234 * 5?", "1234 * 5", "6170"),
        ("What is 1,234,567 + 1?", "1234567 + 1", "1234568"),
        ("What is 1e3 * 2?", "1e3 * 2", "2000"),
        ("What is 2.5E-1 * 4?", "2.5E-1 * 4", "1"),
        ("What is 2 x 3?", "2 * 3", "6"),
        ("What is 2x3?", "2 * 3", "6"),
        ("What is 7 × 6?", "7 * 6", "42"),
        ("What is 2^10?", "2**10", "1024"),
        ("What is (2 + 3) * 4?", "(2 + 3) * 4", "20"),
        ("What is 555 - 1234?", "555 - 1234", "-679"),
        ("What is 100 / 8?", "100 / 8", "12.5"),
    ],
)
def test_arithmetic_is_read_whole(question: str, expression: str, value: str):
    assert arithmetic_in(question) == expression
    assert calculator.invoke({"expression": expression}).removesuffix(".0") == value


@pytest.mark.parametrize(
    "question",
    [
        "Call me at 555-1234.",
        "My number is 555-123-4567, call me.",
        "Ring (555) 123-4567 after six.",
        "Is 12/25/2024 a Wednesday?",
        "The meeting is on 2024-12-25.",
        "Born 25.12.1990 in Oslo.",
        "What is the capital of France?",
        "Tell me about the 1990s.",
    ],
)
def test_phone_numbers_dates_and_plain_text_are_not_arithmetic(question: str):
    assert arithmetic_in(question) is None


def test_tool_hints_are_off_by_default(tmp_path: Path):
    assert load_spec(write_spec(tmp_path, policy=TOOL_BAND)).tool_hints is False


def _session(tmp_path: Path, **fields) -> AgentSession:
    return AgentSession(load_spec(write_spec(tmp_path, policy=TOOL_BAND, **fields)))


def test_without_hints_every_tool_is_offered_and_the_models_arguments_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    calls = use_fakes(monkeypatch, 0.5)
    session = _session(tmp_path, tools=[CALCULATOR, KNOWLEDGE_BASE])
    result = session.run("What is my neighbour's cat called?")  # no arithmetic, no passage about it
    session.close()
    assert calls[0]["tools"] == 2  # both tools offered for the forced call
    # The fake model writes the question as the argument: kept as written, so the calculator says it
    # is not arithmetic (an error result the model reads), instead of a regex replacing it.
    assert result.tool_calls[0]["name"] == "calculator"
    assert result.tool_calls[0]["args"] == {"expression": "What is my neighbour's cat called?"}
    assert result.tool_calls[0]["status"] == "error"


def test_with_hints_only_the_tool_the_question_needs_is_offered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = use_fakes(monkeypatch, 0.5)
    session = _session(tmp_path, tools=[KNOWLEDGE_BASE, CALCULATOR], tool_hints=True)
    result = session.run("What is 1,234 * 5?")
    session.close()
    assert calls[0]["tools"] == 1  # the knowledge base has no passage for it: only the calculator
    assert result.tool_calls == [
        {"name": "calculator", "args": {"expression": "1234 * 5"}, "result": "6170", "status": "success"}
    ]


def test_with_hints_a_date_gets_no_calculator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    use_fakes(monkeypatch, 0.5)
    session = _session(tmp_path, tools=[CALCULATOR], tool_hints=True)
    result = session.run("Is 12/25/2024 a Wednesday?")
    session.close()
    assert result.decision == "refused" and result.tool_calls == []
    assert "no tool applies" in result.reason
