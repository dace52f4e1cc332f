import asyncio

from langchain_core.messages import ToolMessage

from metaspider.tools.errors import error_safe_tool


def explode(text: str) -> str:
    """A tool whose body fails."""
    raise RuntimeError(f"cannot handle {text}")


def test_a_tool_that_raises_returns_an_error_result():
    tool = error_safe_tool(explode, name="explode")
    assert tool.invoke({"text": "x"}) == "error: RuntimeError: cannot handle x"


def test_a_tool_call_that_raises_returns_an_error_tool_message():
    tool = error_safe_tool(explode, name="explode")
    message = tool.invoke({"type": "tool_call", "id": "1", "name": "explode", "args": {"text": "x"}})
    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert message.content == "error: RuntimeError: cannot handle x"


def test_async_invocation_also_returns_an_error_result():
    tool = error_safe_tool(explode, name="explode")
    assert asyncio.run(tool.ainvoke({"text": "y"})) == "error: RuntimeError: cannot handle y"


def test_tool_takes_its_description_from_the_docstring():
    assert error_safe_tool(explode, name="explode").description == "A tool whose body fails."
