"""Tools report failures to the model as results, never as exceptions.

langchain_core's `BaseTool` turns only `ToolException` (with `handle_tool_error`) and argument
validation errors (with `handle_validation_error`) into a result; any other exception propagates and
would crash the agent's run. `error_safe_tool` converts every exception from the tool body into a
`ToolException`, and both handlers format the result as "error: ...". Called with a tool call, the
tool then returns a `ToolMessage` with `status="error"`.
"""

import functools
import inspect
from collections.abc import Callable

from langchain_core.tools import StructuredTool, ToolException
from pydantic import ValidationError

ERROR_PREFIX = "error: "


def error_safe_tool(func: Callable[..., str], *, name: str) -> StructuredTool:
    """A tool named `name` around `func`; the function's docstring tells the model what it does."""
    return StructuredTool.from_function(
        func=_raising_tool_exceptions(func),
        name=name,
        description=inspect.getdoc(func),
        handle_tool_error=format_tool_error,
        handle_validation_error=format_validation_error,
    )


def format_tool_error(exc: ToolException) -> str:
    """A tool's error as the text the model reads back (prefixed, so the model can tell it from a result)."""
    return f"{ERROR_PREFIX}{exc}"


def format_validation_error(exc: Exception) -> str:
    """Bad tool arguments as one line per field, for the model to correct its call."""
    if isinstance(exc, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, detail['loc']))}: {detail['msg']}" for detail in exc.errors())
        return f"{ERROR_PREFIX}invalid arguments: {problems}"
    return f"{ERROR_PREFIX}invalid arguments: {exc}"


def _raising_tool_exceptions(func: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(func)
    def call(*args: object, **kwargs: object) -> str:
        try:
            return func(*args, **kwargs)
        except ToolException:
            raise
        except Exception as exc:
            raise ToolException(f"{type(exc).__name__}: {exc}") from exc

    return call
