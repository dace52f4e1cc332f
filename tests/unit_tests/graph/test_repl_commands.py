"""The REPL's commands and turn display on a fake chat model and a fixed u: /gain, /modifier, /why, /thread,
/reset, /help, unknown commands, the verdict bar and an inline human escalation. The REPL in a real
terminal on the real model is tested in tests/integration_tests/cli/test_repl_pty.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_specs import write_spec
from rich.console import Console

from metaspider.graph.builder import AgentSession
from metaspider.graph.policy import Thresholds
from metaspider.graph.repl import Repl, uncertainty_bar
from metaspider.graph.spec import load_spec

from .fakes import use_fakes

SCORE = 0.42


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    return use_fakes(monkeypatch, SCORE)


def run_lines(tmp_path: Path, lines: list[str], **fields) -> tuple[str, AgentSession]:
    """Type `lines` into a REPL on a spec with `fields` (Ctrl-D after the last one); its output as text."""
    session = AgentSession(load_spec(write_spec(tmp_path, **fields)))
    console = Console(record=True, width=200, color_system=None, highlight=False)
    typed: Iterator[str] = iter(lines)

    def read(prompt: str = "", **_kwargs) -> str:
        console.print(prompt, end="")
        try:
            line = next(typed)
        except StopIteration:
            raise EOFError from None
        console.print(line, markup=False)
        return line

    console.input = read  # type: ignore[method-assign]
    try:
        Repl(session, console).loop()
    finally:
        session.close()
    return console.export_text(), session


def test_a_question_streams_the_answer_and_shows_the_verdict(tmp_path: Path, calls: list[dict]):
    out, _ = run_lines(tmp_path, ["What is the capital of France?"], policy={"answer_below": 1.0})
    assert "agent> [smollm2-135m] What is the capital of France?" in out
    assert re.search(r"u \[█{10}░{14}\] 0\.42\s+answered", out), out


def test_knob_commands_change_the_next_answer_and_why_reports_them(tmp_path: Path, calls: list[dict]):
    out, session = run_lines(
        tmp_path,
        ["/why", "/gain loud", "/gain 0.5", "/modifier skeptic", "/modifier watchdog", "Hi?", "/why"],
        policy={"answer_below": 1.0},
    )
    assert "no decision yet: ask a question first" in out
    assert "/gain needs a number, e.g. /gain 1.5 (got 'loud')" in out
    assert "gain 0.5" in out
    assert "/modifier needs one of watchdog, doubter, none (got 'skeptic')" in out
    assert "modifier watchdog" in out
    assert calls == [{"model": "smollm2-135m", "gain": 0.5, "modifier": "watchdog", "tools": 0}]
    assert re.search(r"decision\s+answered \(route answer\)", out)
    assert re.search(r"u\s+0\.420", out)
    assert re.search(r"why\s+u=0\.42 is below answer_below=1\.00", out)
    assert re.search(r"knobs\s+modifier watchdog, gain 0\.5", out)
    assert re.search(r"steps\s+1 of 6", out)
    assert session.effective_knobs() == (0.5, "watchdog")


def test_why_lists_the_tool_calls(tmp_path: Path, calls: list[dict]):
    out, _ = run_lines(
        tmp_path,
        ["What is 1234 * 5678?", "/why"],
        policy={"answer_below": 0.0, "tool_below": 1.0},
        tools=[{"name": "calculator"}],
        tool_hints=True,
    )
    assert "tool calculator(expression='1234 * 5678') → 7006652" in out
    assert re.search(r"u \[.*\] 0\.42\s+used a tool", out)
    assert "tool call  calculator({'expression': '1234 * 5678'}) → 7006652" in out


def test_thread_reset_help_and_unknown_commands(tmp_path: Path, calls: list[dict]):
    out, session = run_lines(
        tmp_path, ["Hi?", "/thread", "/thread other", "/reset", "/help", "/colour"], policy={"answer_below": 1.0}
    )
    assert re.search(r"thread \w+ \(1 turn\(s\)\)", out)
    assert "thread other (0 turn(s))" in out
    assert re.search(r"new thread [0-9a-f]{12}", out)
    assert "/modifier NAME   watchdog | doubter | none" in out
    assert "unknown command /colour (/help lists them)" in out
    assert session.thread_id not in ("other",)


def test_exit_leaves_before_the_next_line(tmp_path: Path, calls: list[dict]):
    out, _ = run_lines(tmp_path, ["/exit", "Hi?"], policy={"answer_below": 1.0})
    assert "agent>" not in out and calls == []


def test_a_refusal_is_printed_with_its_reason(tmp_path: Path, calls: list[dict]):
    out, _ = run_lines(tmp_path, ["Hi?"], policy={"answer_below": 0.0})
    assert "agent> I can't answer that reliably (u=0.42" in out
    assert re.search(r"u \[.*\] 0\.42\s+refused", out)


def test_escalation_prompts_the_human_inline(tmp_path: Path, calls: list[dict]):
    out, _ = run_lines(
        tmp_path,
        ["What is my neighbour's cat called?", "Her name is Miso."],
        policy={"answer_below": 0.0, "escalate_above": 0.0},
        escalation={"kind": "human"},
    )
    assert "escalated to you (uncertainty 0.42): What is my neighbour's cat called?" in out
    assert "model's draft: [smollm2-135m] What is my neighbour's cat called?" in out
    assert "human> Her name is Miso." in out
    assert "human> Her name is Miso.\nhuman> Her name is Miso." not in out  # printed once as the reply below
    assert re.search(r"human> Her name is Miso\.\s*\n.*Her name is Miso\.", out)
    assert re.search(r"u \[.*\] 0\.42\s+escalated", out)


def test_an_unanswered_escalation_stays_open(tmp_path: Path, calls: list[dict]):
    out, _ = run_lines(
        tmp_path,
        ["What is my neighbour's cat called?"],
        policy={"answer_below": 0.0, "escalate_above": 0.0},
        escalation={"kind": "human"},
    )
    assert "escalation left open on this thread" in out


@pytest.mark.parametrize(
    ("score", "filled", "style"),
    [(0.1, 2, "green"), (0.45, 11, "yellow"), (0.95, 23, "red"), (1.7, 24, "red"), (-0.2, 0, "green")],
)
def test_uncertainty_bar_fills_and_colours_by_band(score: float, filled: int, style: str):
    bar = uncertainty_bar(score, Thresholds(answer_below=0.3, tool_below=0.6, escalate_above=0.9))
    assert bar.plain == "u [" + "█" * filled + "░" * (24 - filled) + f"] {score:.2f}"
    assert [span.style for span in bar.spans if span.style != "dim"] == ([style] if filled else [])


def test_uncertainty_bar_without_a_score():
    assert uncertainty_bar(None, Thresholds(answer_below=0.3)).plain == "u [" + "·" * 24 + "] n/a"


def test_text_with_square_brackets_is_printed_as_written(tmp_path: Path, calls: list[dict]):
    """Questions, drafts and replies are the user's and the model's text, never Rich markup."""
    out, _ = run_lines(
        tmp_path,
        ["What does [/x] mean?", "It closes [b]x[/b]."],
        policy={"answer_below": 0.0, "escalate_above": 0.0},
        escalation={"kind": "human"},
    )
    assert "escalated to you (uncertainty 0.42): What does [/x] mean?" in out
    assert "model's draft: [smollm2-135m] What does [/x] mean?" in out
    assert "human> It closes [b]x[/b]." in out
