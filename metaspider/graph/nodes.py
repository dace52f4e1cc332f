"""The agent's pieces around `create_agent`: its tools (when each applies to a question, and how the model's
arguments are completed), the prompt the model answers from, and the chat model class it is built on.

The prompt the model sees is not the raw message list: a 135M model shown its own earlier JSON tool
call imitates it instead of answering. `model_view` therefore keeps past turns as question/answer
pairs and puts this turn's tool results in front of the question as context; the state keeps the
faithful AIMessage/ToolMessage pair for the event stream and the history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import BaseTool

from metaspider.graph.spec import AgentSpec
from metaspider.graph.tool_hints import arithmetic_in, expression_from_question, has_url, query_from_question
from metaspider.runtime.chat_model import MetaSpiderChatModel  # noqa: F401  (the agent builds its models by this name)
from metaspider.runtime.tool_calls import tool_results
from metaspider.tools.specs import CalculatorSpec, HttpGetSpec, ImportToolSpec, KnowledgeBaseSpec, ToolSpec

N_CTX = 2048
"""The default context window (the spec's `n_ctx:` when it names none)."""


def keep_args(args: dict[str, Any], _question: str) -> dict[str, Any]:
    """A tool's arguments as the model wrote them (the default argument rewrite)."""
    return args


@dataclass(frozen=True)
class AgentTool:
    """A tool, whether it can help with a question (the model then picks among those that can), and
    how the model's arguments are completed before the call."""

    tool: BaseTool
    applies: Callable[[str], bool]
    complete_args: Callable[[dict[str, Any], str], dict[str, Any]] = keep_args


def agent_tools(specs: list[ToolSpec], tools: list[BaseTool], hints: bool = False) -> list[AgentTool]:
    """The spec's tools paired with when each applies to a question and how its arguments are rewritten:
    with `hints` (the spec's `tool_hints:`, see tool_hints.py) from the question, else always and never."""
    if not hints:
        return [AgentTool(tool, always_applies) for tool in tools]
    return [
        AgentTool(
            tool,
            _applicability(spec),
            _ARGUMENT_COMPLETION.get(type(spec), keep_args),
        )
        for spec, tool in zip(specs, tools, strict=False)
    ]


def _applicability(spec: ToolSpec) -> Callable[[str], bool]:
    """Cheap and explainable: arithmetic for the calculator, a BM25 hit for the knowledge base, a URL
    for http_get, always for an imported tool."""
    match spec:
        case CalculatorSpec():
            return lambda question: arithmetic_in(question) is not None
        case KnowledgeBaseSpec(folder=folder):
            from metaspider.tools.knowledge_base import KnowledgeBase, read_passages

            knowledge_base = KnowledgeBase(read_passages(folder))
            return lambda question: bool(knowledge_base.search(question, 1))
        case HttpGetSpec():
            return has_url
        case ImportToolSpec():
            return always_applies
    raise TypeError(f"unknown tool spec {spec!r}")


_ARGUMENT_COMPLETION: dict[type, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    CalculatorSpec: expression_from_question,
    KnowledgeBaseSpec: query_from_question,
}


def always_applies(_question: str) -> bool:
    """Applicability of a tool offered for every question."""
    return True


def backbone(spec: AgentSpec):  # noqa: ANN201 (a Backbone; imported lazily)
    """The spec model's backbone, for counting and cutting tokens."""
    from metaspider.runtime.engine import get_engine

    return get_engine(spec.model, spec.backend, spec.n_ctx).backbone


def model_view(messages: list[BaseMessage], system_prompt: str) -> list[BaseMessage]:
    """What the model reads: system prompt, past questions and answers, this turn's question with
    its tool results as context."""
    start = current_turn_start(messages)
    view: list[BaseMessage] = [SystemMessage(system_prompt)]
    view += [m for m in messages[:start] if isinstance(m, HumanMessage) or _is_answer(m)]
    question = messages[start].text
    results = tool_results(messages[start:])
    if results:
        context = "\n".join(_context_line(r) for r in results)
        question = f"Context:\n{context}\n\nQuestion: {question}"
    return [*view, HumanMessage(question)]


def current_turn_start(messages: list[BaseMessage]) -> int:
    """Index of the current turn's question (the last human message)."""
    return max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))


def empty_call(name: str) -> dict[str, Any]:
    """A call of `name` with no arguments (a forced call the token budget cut before it parsed)."""
    from metaspider.runtime.tool_calls import new_call_id

    return {"name": name, "args": {}, "id": new_call_id(), "type": "tool_call"}


def _is_answer(message: BaseMessage) -> bool:
    return isinstance(message, AIMessage) and not message.tool_calls


def _context_line(result: dict[str, Any]) -> str:
    """ "calculator: 1234 * 5678 = 7006652": a bare number would lose what it is the result of."""
    if result["name"] == "calculator" and "expression" in result["args"] and result["status"] != "error":
        return f"calculator: {result['args']['expression']} = {result['result']}"
    return f"{result['name']}: {result['result']}"
