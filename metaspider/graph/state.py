"""What the agent graph carries from node to node, and what a finished turn reports.

The conversation (`messages`) lives across turns in the checkpointer; every other field describes the
current turn only and is reset by the input that starts a turn (`turn_input`), so a thread resumed
after a restart never inherits a stale score or step count."""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.graph.message import add_messages

Route = Literal["answer", "tool", "refuse", "escalate"]
Outcome = Literal["answered", "used_tool", "refused", "escalated", "cancelled"]

OUTCOME_LABELS: dict[str, str] = {
    "answered": "answered",
    "used_tool": "used a tool",
    "refused": "refused",
    "escalated": "escalated",
    "cancelled": "cancelled",
}


class AgentState(TypedDict, total=False):
    """The agent graph's state on a thread: the messages and, for the current turn, u, the route, the reason,
    the tool calls made and the outcome."""

    messages: Annotated[list[AnyMessage], add_messages]
    score: float | None
    """u of the latest assessment (pass 1)."""
    route: Route | None
    """Where the router sent the latest assessment."""
    reason: str
    """Why the router chose `route`, in words: shown by the REPL's /why and in refusals."""
    steps: int
    """Model steps (assessments and tool calls) taken this turn; bounded by the spec's max_steps."""
    tool_calls: list[dict]
    """This turn's tool calls: name, args and the result text."""
    draft: str | None
    """The model's own answer, shown to the human an escalation goes to."""
    outcome: Outcome | None


def turn_input(question: str) -> AgentState:
    """The graph input that starts a turn: the question, and the per-turn fields reset."""
    return {
        "messages": [HumanMessage(question)],
        "score": None,
        "route": None,
        "reason": "",
        "steps": 0,
        "tool_calls": [],
        "draft": None,
        "outcome": None,
    }
