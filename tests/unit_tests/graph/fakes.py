"""A fake chat model with a fake uncertainty for the agent: the routing, the tool loop and the escalation
are pure logic, so they are tested without a model (the real model routes in tests/integration_tests/graph)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from metaspider.core.pipeline import Uncertainty
from metaspider.graph import nodes

Scorer = Callable[[list[BaseMessage]], float]


class FakeChatModel(BaseChatModel):
    """Takes MetaSpiderChatModel's constructor arguments and answers by quoting the question it was shown.

    Bound to tools, it calls the tool named by `tool_choice` (or the first one): a `url` argument is the
    question's first URL, every other required string the question, every number 1. Every
    instance that answers is recorded in `calls`, so a test can check which knobs each step used.
    `assess` gives u from `scorer` (set by `use_fakes`) on the messages it is shown."""

    model_config = ConfigDict(extra="allow")

    model: str = "smollm2-135m"
    backend: str = "llama_cpp"
    wrapper: str | None = None
    modifier: str | None = None
    gain: float | None = None
    temperature: float = 0.0
    max_tokens: int = 256
    n_ctx: int = 2048
    score: float = 0.0

    calls: ClassVar[list[dict[str, Any]]] = []
    scorer: ClassVar[Scorer] = staticmethod(lambda _messages: 0.5)

    def assess(self, messages: list[BaseMessage]) -> Uncertainty:
        return Uncertainty(self.scorer(list(messages)), "unassessed", None, self.modifier, self.gain or 1.0)

    @property
    def _llm_type(self) -> str:
        return "fake-metaspider"

    def bind_tools(self, tools: Sequence[BaseTool], *, tool_choice: str | None = None, **kwargs: Any):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs)

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        tools = kwargs.get("tools") or []
        choice = kwargs.get("tool_choice")
        question = next(m.text for m in reversed(messages) if isinstance(m, HumanMessage))
        self.calls.append({"model": self.model, "gain": self.gain, "modifier": self.modifier, "tools": len(tools)})
        metadata = {
            "model_name": self.model,
            "uncertainty": {"score": self.score, "gain": self.gain, "modifier": self.modifier},
        }
        if tools:
            by_name = {t["function"]["name"]: t["function"] for t in tools}
            name = choice if choice in by_name else next(iter(by_name))
            call = {"name": name, "args": _arguments(by_name[name], question), "id": f"call_{len(self.calls)}"}
            message = AIMessage("", tool_calls=[call], response_metadata=metadata)
        else:
            message = AIMessage(f"[{self.model}] {question}", response_metadata=metadata)
        return ChatResult(generations=[ChatGeneration(message=message)])


def _arguments(function: dict[str, Any], question: str) -> dict[str, Any]:
    parameters = function.get("parameters", {})
    properties = parameters.get("properties", {})
    url = re.search(r"https?://\S+", question)
    args: dict[str, Any] = {}
    for name in parameters.get("required", []):
        if properties[name].get("type") != "string":
            args[name] = 1
        else:
            args[name] = url.group(0) if name == "url" and url else question
    return args


class WordTokenizer:
    """Stands in for a backbone where the agent only counts and cuts tokens: one word, one token."""

    def tokenize(self, text: str, special: bool = True) -> list[str]:
        return text.split()

    def detokenize(self, ids: Sequence[str]) -> str:
        return " ".join(ids)


def use_fakes(monkeypatch: pytest.MonkeyPatch, score: float | Scorer = 0.5) -> list[dict[str, Any]]:
    """Route the agent graph through FakeChatModel and a fixed (or computed) u; no model file is resolved.
    Returns the list of recorded chat-model calls."""

    def measure(messages: list[BaseMessage]) -> float:
        return score(messages) if callable(score) else score

    monkeypatch.setattr(nodes, "MetaSpiderChatModel", FakeChatModel)
    monkeypatch.setattr(nodes, "backbone", lambda _spec: WordTokenizer())
    monkeypatch.setattr(FakeChatModel, "scorer", staticmethod(measure))
    monkeypatch.setattr("metaspider.core.models.registry.resolve", lambda name, quiet=False: Path(name))
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(FakeChatModel, "calls", calls)
    return calls
