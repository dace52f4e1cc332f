"""What a turn of the agent is made of, and what a finished turn reports.

The agent's state is `create_agent`'s (the conversation, `messages`, kept across turns by the
checkpointer) plus `UncertaintyMiddleware`'s `routing` (the last step's route, u and reason) and
`routing_log`. Everything a turn reports (`TurnResult`) is read back from the turn's own messages: each
model step's AIMessage carries its routing in `response_metadata["routing"]`, so a thread resumed after a
restart never inherits a stale score or step count."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import HumanMessage

Route = Literal["answer", "tool", "refuse", "escalate"]
Outcome = Literal["answered", "used_tool", "refused", "escalated", "cancelled"]

OUTCOME_LABELS: dict[str, str] = {
    "answered": "answered",
    "used_tool": "used a tool",
    "refused": "refused",
    "escalated": "escalated",
    "cancelled": "cancelled",
}


def turn_input(question: str) -> dict[str, Any]:
    """The agent input that starts a turn: the question."""
    return {"messages": [HumanMessage(question)]}
