"""A tool and a tool-call history used by both suites' template tests: the unit suite renders it in the
templates we ship, the integration suite in the templates stored inside the model files."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

ADDER = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}

HISTORY = [
    SystemMessage("Be brief."),
    HumanMessage([{"type": "text", "text": "What is "}, {"type": "text", "text": "1 + 2?"}]),
    AIMessage(
        [
            {"type": "text", "text": "Let me add."},
            {"type": "tool_use", "id": "c1", "name": "add", "input": {"a": 1, "b": 2}},
        ],
        tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "c1", "type": "tool_call"}],
    ),
    ToolMessage("3", tool_call_id="c1"),
    AIMessage("", tool_calls=[{"name": "add", "args": {"a": 3, "b": 0}, "id": "c2", "type": "tool_call"}]),
    ToolMessage("Error: b must be positive", tool_call_id="c2", name="add", status="error"),
]


def assert_history_rendered(text: str) -> None:
    """HISTORY's question, text, past call and error result are all in the prompt, and no raw content block."""
    assert "What is 1 + 2?" in text
    assert "Let me add." in text
    assert '"a": 1' in text and '"b": 2' in text  # the past call, in the model's format or ours
    assert "Error: b must be positive" in text
    assert "tool_use" not in text
