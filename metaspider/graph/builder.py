"""Assemble the agent from a spec with LangChain's `create_agent`, and read a finished (or interrupted) turn
back from its state.

```python
from metaspider.graph.builder import build_agent, run_config, turn_result
from metaspider.graph.state import turn_input

agent = build_agent(load_spec("agents/qa.yaml"), InMemorySaver())
config = run_config("thread-1")
for update in agent.stream(turn_input("What is 1234 * 5678?"), config, stream_mode="updates"):
    print(update)  # {"model": {"messages": [...], "routing": {"route": "tool", "u": 0.41, ...}}}, {"tools": ...}
turn_result(agent, config).answer
```

The agent is `create_agent(model, tools, middleware=[SpecMiddleware, UncertaintyMiddleware, PromptMiddleware],
checkpointer)`: its graph is LangChain's model/tools loop; the spec's policy routes each model call through
`UncertaintyMiddleware` (answer, tool, refuse, escalate to a human by `interrupt()` or to the spec's
escalation model), and the spec's middleware (agent_middleware.py) adds the knobs, the tools that apply,
the prompt and its trimming to `n_ctx`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from metaspider.graph import nodes
from metaspider.graph.agent_middleware import PromptMiddleware, SpecMiddleware, spec_chat_model
from metaspider.graph.memory import open_memory
from metaspider.graph.nodes import AgentTool, agent_tools, always_applies
from metaspider.graph.policy import thresholds_for
from metaspider.graph.spec import AgentSpec, ModelEscalation
from metaspider.graph.state import Outcome, turn_input
from metaspider.runtime.middleware import UncertaintyMiddleware
from metaspider.runtime.tool_calls import tool_results
from metaspider.tools import build_tools


def build_agent(
    spec: AgentSpec,
    checkpointer: BaseCheckpointSaver,
    extra_tools: list[BaseTool] | None = None,
    live_steps: dict[str, dict[str, Any]] | None = None,
) -> CompiledStateGraph:
    """The agent for `spec`. `extra_tools` (your own LangChain tools) are offered for every question,
    after the spec's tools. `live_steps` receives the routing of each model step as it starts, per thread
    (for a turn cancelled mid-answer). Raises MetaspiderError for a model, wrapper or calibration that
    cannot be used."""
    from metaspider.core.models.registry import resolve
    from metaspider.core.wrapper.handle import resolve_wrapper_path

    resolve(spec.model)
    if spec.wrapper is not None:
        resolve_wrapper_path(spec.wrapper, spec.model)
    tools = agent_tools(spec.tools, build_tools(spec.tools), hints=spec.tool_hints)
    tools += [AgentTool(tool, always_applies) for tool in extra_tools or []]
    thresholds = thresholds_for(spec)
    fallback = _fallback(spec)
    uncertainty = UncertaintyMiddleware(
        thresholds.answer_below,
        thresholds.tool_below,
        thresholds.escalate_above if spec.escalation is not None else None,
        fallback=fallback,
        refusal=lambda step: f"I can't answer that reliably ({step['reason']}).",
        unanswered=UNANSWERED,
        max_steps=spec.max_steps,
    )
    return create_agent(
        model=spec_chat_model(spec),
        tools=[t.tool for t in tools],
        system_prompt=spec.system_prompt,
        middleware=[SpecMiddleware(spec, tools), uncertainty, PromptMiddleware(spec, tools, fallback, live_steps)],
        checkpointer=checkpointer,
    )


UNANSWERED = "No one answered this question."
"""The reply recorded when a human escalation gets no answer."""


def _fallback(spec: AgentSpec) -> BaseChatModel | None:
    """The stronger model an escalation goes to, when the spec names one."""
    escalation = spec.escalation
    if not isinstance(escalation, ModelEscalation):
        return None
    return nodes.MetaSpiderChatModel(
        model=escalation.model,
        backend=escalation.backend,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
    )


def run_config(thread_id: str, gain: float | None = None, modifier: str | None = None) -> RunnableConfig:
    """The config of one run: its thread, and the knobs that override the spec's for this run."""
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if gain is not None:
        configurable["gain"] = gain
    if modifier is not None:
        configurable["modifier"] = modifier
    return {"configurable": configurable, "recursion_limit": 100}


@dataclass
class TurnResult:
    """The outcome of one agent turn on a thread: the answer, the decision (answered, refused, used a tool,
    escalated), u, the tool calls made and a pending escalation, if any."""

    thread_id: str
    answer: str | None
    decision: Outcome | None
    score: float | None
    tool_calls: list[dict] = field(default_factory=list)
    route: str | None = None
    reason: str = ""
    steps: int = 0
    escalation: dict | None = None
    """The question waiting for a human (the interrupt's payload), while the turn is paused."""

    def as_json(self) -> dict[str, Any]:
        """The fields `metaspider agent run --question ... --json` prints."""
        return {key: getattr(self, key) for key in ("answer", "decision", "score", "tool_calls", "thread_id")}


def turn_result(graph: CompiledStateGraph, config: RunnableConfig) -> TurnResult:
    """The current turn's result, read from the agent's checkpointed state for the thread in `config`: the
    routing of the turn's last model step, its tool calls, and the answer once the turn has ended."""
    snapshot = graph.get_state(config)
    messages: list[BaseMessage] = snapshot.values.get("messages", [])
    pending = [i.value for task in snapshot.tasks for i in task.interrupts]
    start = _turn_start(messages)
    turn = messages[start:]
    steps = [m for m in turn if isinstance(m, AIMessage) and ("routing" in m.response_metadata or m.name == "human")]
    last = turn[-1] if turn else None
    ended = isinstance(last, AIMessage) and not last.tool_calls and not pending and not snapshot.next
    routing = (last.response_metadata.get("routing") if isinstance(last, AIMessage) else None) or {}
    if not routing and steps:
        routing = steps[-1].response_metadata.get("routing") or {}
    escalation = None
    if pending:
        escalation = {**pending[0], "score": pending[0].get("u")}
        routing = {"route": "escalate", "u": pending[0].get("u"), "reason": pending[0].get("reason", "")}
    return TurnResult(
        thread_id=config["configurable"]["thread_id"],
        answer=last.text if ended and isinstance(last, AIMessage) else None,
        decision="escalated" if pending else (_outcome(last, turn) if ended and isinstance(last, AIMessage) else None),
        score=routing.get("u"),
        tool_calls=tool_results(turn),
        route=routing.get("route"),
        reason=routing.get("reason", ""),
        steps=len(steps) + (1 if pending else 0),
        escalation=escalation,
    )


def _turn_start(messages: list[BaseMessage]) -> int:
    starts = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    return starts[-1] if starts else len(messages)


def _outcome(message: AIMessage, turn: list[BaseMessage]) -> Outcome:
    """How the turn ended, from its last message: cancelled, refused, escalated, used a tool, or answered."""
    metadata = message.response_metadata
    if metadata.get("outcome") == "cancelled":
        return "cancelled"
    if metadata.get("refusal"):
        return "refused"
    if message.name == "human" or (metadata.get("routing") or {}).get("route") == "escalate":
        return "escalated"
    if any(isinstance(m, ToolMessage) for m in turn):
        return "used_tool"
    return "answered"


class AgentSession:
    """One agent on one spec: its `create_agent` graph, its memory, the current thread and the knobs the REPL turns.

    `stream` yields the graph's (mode, data) events for a question, and `resume` for a human's reply
    to an escalation; `result` reads the turn back."""

    def __init__(self, spec: AgentSpec, thread_id: str | None = None):
        self.spec = spec
        self.memory = open_memory(spec.memory)
        self.live_steps: dict[str, dict[str, Any]] = {}
        self.graph = build_agent(spec, self.memory.checkpointer, live_steps=self.live_steps)
        self.thresholds = thresholds_for(spec)
        self.gain: float | None = None
        self.modifier: str | None = None
        self.thread_id = thread_id or self.memory.last_thread() or new_thread_id()

    @property
    def config(self) -> RunnableConfig:
        """The LangGraph run config: the thread and the session's gain and modifier overrides."""
        return run_config(self.thread_id, self.gain, self.modifier)

    def stream(self, question: str) -> Iterator[tuple[str, Any]]:
        """Run one question on the current thread, yielding LangGraph's stream events (the REPL prints them)."""
        self.memory.touch(self.thread_id)
        self.live_steps.pop(self.thread_id, None)
        with self.memory.thread_lock(self.thread_id):
            if self.result().escalation is not None:
                self._close_unanswered_escalation()
            yield from self.graph.stream(turn_input(question), self.config, stream_mode=STREAM_MODES)

    def resume(self, reply: str) -> Iterator[tuple[str, Any]]:
        """Resume a turn paused on a human escalation with the person's reply."""
        with self.memory.thread_lock(self.thread_id):
            yield from self.graph.stream(Command(resume=reply), self.config, stream_mode=STREAM_MODES)

    def run(self, question: str) -> TurnResult:
        """Run one question to the end and return its result."""
        for _ in self.stream(question):
            pass
        return self.result()

    def cancel(self, partial_answer: str) -> None:
        """Close a turn interrupted by the user, so the thread's history records it and moves on."""
        text = f"{partial_answer} [cancelled]".strip()
        routing = self.live_steps.get(self.thread_id)
        metadata = {"outcome": "cancelled", **({"routing": routing} if routing else {})}
        self._close(AIMessage(text, response_metadata=metadata))

    def fail(self, error: str) -> None:
        """Close a turn that failed, so the thread records it and the next question starts cleanly."""
        text = f"[this turn failed: {error}]"
        self._close(AIMessage(text, response_metadata={"outcome": "cancelled"}))

    def _close_unanswered_escalation(self) -> None:
        """A new question on a thread still waiting for a human: the waiting turn is closed as refused,
        so the history keeps every question with its reply."""
        self._close(AIMessage(UNANSWERED, response_metadata={"refusal": True}))

    def _close(self, reply: AIMessage) -> None:
        """End the current turn with `reply`, as if the model step had written it (nothing runs after it)."""
        self.graph.update_state(self.config, {"messages": [reply]}, as_node="model")

    def result(self) -> TurnResult:
        """The latest turn's result on the current thread."""
        return turn_result(self.graph, self.config)

    def history(self) -> list[BaseMessage]:
        """The messages of the current thread."""
        return self.graph.get_state(self.config).values.get("messages", [])

    def effective_knobs(self) -> tuple[float, str | None]:
        """(gain, modifier) in force: the session's overrides, else the spec's."""
        gain = self.gain if self.gain is not None else self.spec.gain
        return gain, self.modifier if self.modifier is not None else self.spec.modifier

    def close(self) -> None:
        """Close the thread memory (the SQLite connection, when the spec keeps one)."""
        self.memory.close()


STREAM_MODES = ["updates", "messages"]


def new_thread_id() -> str:
    """A fresh thread id, short enough to type back into `--thread`."""
    return uuid.uuid4().hex[:12]
