"""The agent's context budget: tool results capped with a marker, history trimmed to the budget (system
prompt and the current question kept), `n_ctx` a spec field, and the REPL going on after a failed turn."""

from __future__ import annotations

from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from rich.console import Console

from metaspider.graph.context_budget import (
    MESSAGE_OVERHEAD,
    cap_tool_result,
    history_budget,
    trim_history,
)
from metaspider.graph.spec import load_spec


def _words(text: str) -> list[int]:
    return [len(w) for w in text.split()]


def _count(text: str) -> int:
    return len(text.split())


def test_a_long_tool_result_is_cut_with_a_visible_marker() -> None:
    text = " ".join(["word"] * 100_000)
    capped = cap_tool_result(text, 50, lambda t: t.split(), lambda ids: " ".join(ids))
    assert capped.startswith("word word") and capped.endswith("[tool result truncated: 99950 of 100000 tokens cut]")
    assert _count(capped.split("\n")[0]) == 50


def test_a_short_tool_result_is_untouched() -> None:
    assert cap_tool_result("short", 50, lambda t: t.split(), lambda ids: " ".join(ids)) == "short"


def _conversation(turns: int) -> list:
    messages: list = [SystemMessage("be brief")]
    for i in range(turns):
        messages += [HumanMessage(f"question {i} " + "x " * 40), AIMessage(f"answer {i} " + "y " * 40)]
    return [*messages, HumanMessage("the current question")]


def test_history_is_trimmed_to_the_budget_oldest_first() -> None:
    messages = _conversation(50)
    budget = 500
    kept = trim_history(messages, budget, _count)
    assert sum(_count(m.text) + MESSAGE_OVERHEAD for m in kept) <= budget
    assert kept[0] is messages[0] and kept[-1] is messages[-1]
    assert isinstance(kept[1], HumanMessage)
    assert len(kept) < len(messages)
    assert kept[-3:] == messages[-3:]


def test_the_current_question_survives_even_alone_over_budget() -> None:
    messages = [SystemMessage("s"), HumanMessage("q " * 1000)]
    assert trim_history(messages, 100, _count) == messages


def test_budget_leaves_room_for_the_answer() -> None:
    assert history_budget(2048, 256) == 1792
    assert history_budget(512, 10_000) == 128


def test_n_ctx_and_tool_result_tokens_are_spec_fields(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("model: smollm2-135m\npolicy: {answer_below: 0.5}\nn_ctx: 4096\ntool_result_tokens: 300\n")
    spec = load_spec(path)
    assert (spec.n_ctx, spec.tool_result_tokens) == (4096, 300)


class _FailingSession:
    """A session whose first turn fails inside the model; the next one answers."""

    def __init__(self) -> None:
        from metaspider.graph.policy import Thresholds

        self.thresholds = Thresholds(answer_below=0.5)
        self.turns = 0
        self.failures: list[str] = []

    def stream(self, _question: str):
        self.turns += 1
        if self.turns == 1:
            raise RuntimeError("the model ran out of context")
        yield ("updates", {"model": {"messages": [AIMessage("no")]}})  # the agent's model step refusing

    def fail(self, error: str) -> None:
        self.failures.append(error)

    def result(self):
        from metaspider.graph.builder import TurnResult

        return TurnResult(thread_id="t", answer="no", decision="refused", score=0.5, route="refuse", reason="r")


def test_the_repl_reports_a_failed_turn_and_goes_on() -> None:
    from metaspider.graph.repl import Repl

    console = Console(record=True, width=200)
    session = _FailingSession()
    repl = Repl(session, console)  # type: ignore[arg-type]
    repl.ask("first")
    repl.ask("second")
    output = console.export_text()
    assert "this turn failed: the model ran out of context" in output
    assert session.failures == ["the model ran out of context"]
    assert session.turns == 2 and "agent> no" in output
