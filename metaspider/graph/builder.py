"""Assemble the agent graph from a spec, and read a finished (or interrupted) turn back from it.

```python
from metaspider.graph.builder import build_agent, run_config, turn_result
from metaspider.graph.state import turn_input

graph = build_agent(load_spec("agents/qa.yaml"), InMemorySaver())
config = run_config("thread-1")
for update in graph.stream(turn_input("What is 1234 * 5678?"), config, stream_mode="updates"):
    print(update)  # {"assess": {"score": 0.41, "route": "tool", ...}}, {"tool": ...}, ...
turn_result(graph, config).answer
```
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from metaspider.graph.memory import open_memory
from metaspider.graph.nodes import AgentNodes, AgentTool, agent_tools, always_applies
from metaspider.graph.policy import thresholds_for
from metaspider.graph.spec import AgentSpec
from metaspider.graph.state import AgentState, Outcome, turn_input
from metaspider.tools import build_tools


def build_agent(
    spec: AgentSpec,
    checkpointer: BaseCheckpointSaver,
    extra_tools: list[BaseTool] | None = None,
) -> CompiledStateGraph:
    """The graph for `spec`. `extra_tools` (your own LangChain tools) are offered for every question,
    after the spec's tools. Raises MetaspiderError for a model, wrapper or calibration that cannot be used."""
    from metaspider.core.models.registry import resolve
    from metaspider.core.wrapper.handle import resolve_wrapper_path

    resolve(spec.model)
    if spec.wrapper is not None:
        resolve_wrapper_path(spec.wrapper, spec.model)
    tools = agent_tools(spec.tools, build_tools(spec.tools))
    tools += [AgentTool(tool, always_applies) for tool in extra_tools or []]
    nodes = AgentNodes(spec, thresholds_for(spec), tools)

    graph = StateGraph(AgentState)
    graph.add_node("assess", nodes.assess)
    graph.add_node("answer", nodes.answer)
    graph.add_node("tool", nodes.tool)
    graph.add_node("refuse", nodes.refuse)
    graph.add_node("draft", nodes.draft)
    graph.add_node("escalate", nodes.escalate)
    graph.add_edge(START, "assess")
    graph.add_conditional_edges("assess", nodes.after_assess, ["answer", "tool", "refuse", "draft", "escalate"])
    graph.add_edge("tool", "assess")
    graph.add_edge("draft", "escalate")
    for final in ("answer", "refuse", "escalate"):
        graph.add_edge(final, END)
    return graph.compile(checkpointer=checkpointer)


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
    """The current turn's result, read from the graph's checkpointed state for the thread in `config`."""
    snapshot = graph.get_state(config)
    values = snapshot.values
    pending = [i.value for task in snapshot.tasks for i in task.interrupts]
    last = values.get("messages", [])[-1:] if values.get("outcome") else []
    answer = last[0].text if last and isinstance(last[0], AIMessage) else None
    return TurnResult(
        thread_id=config["configurable"]["thread_id"],
        answer=answer,
        decision="escalated" if pending else values.get("outcome"),
        score=values.get("score"),
        tool_calls=values.get("tool_calls", []),
        route=values.get("route"),
        reason=values.get("reason", ""),
        steps=values.get("steps", 0),
        escalation=pending[0] if pending else None,
    )


class AgentSession:
    """One agent on one spec: its graph, its memory, the current thread and the knobs the REPL turns.

    `stream` yields the graph's (mode, data) events for a question, and `resume` for a human's reply
    to an escalation; `result` reads the turn back."""

    def __init__(self, spec: AgentSpec, thread_id: str | None = None):
        self.spec = spec
        self.memory = open_memory(spec.memory)
        self.graph = build_agent(spec, self.memory.checkpointer)
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
        self.graph.update_state(self.config, {"messages": [AIMessage(text)], "outcome": "cancelled"}, as_node="answer")

    def fail(self, error: str) -> None:
        """Close a turn that failed, so the thread records it and the next question starts cleanly."""
        text = f"[this turn failed: {error}]"
        self.graph.update_state(self.config, {"messages": [AIMessage(text)], "outcome": "cancelled"}, as_node="answer")

    def _close_unanswered_escalation(self) -> None:
        """A new question on a thread still waiting for a human: the waiting turn is closed as refused,
        so the history keeps every question with its reply."""
        reply = AIMessage("No one answered this question.")
        self.graph.update_state(self.config, {"messages": [reply], "outcome": "refused"}, as_node="escalate")

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
