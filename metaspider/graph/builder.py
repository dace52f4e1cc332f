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

from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from metaspider.graph.nodes import AgentNodes, AgentTool, agent_tools, always_applies
from metaspider.graph.policy import thresholds_for
from metaspider.graph.spec import AgentSpec
from metaspider.graph.state import AgentState, Outcome
from metaspider.tools import build_tools


def build_agent(
    spec: AgentSpec,
    checkpointer: BaseCheckpointSaver,
    extra_tools: list[BaseTool] | None = None,
) -> CompiledStateGraph:
    """The graph for `spec`. `extra_tools` (your own LangChain tools) are offered for every question,
    after the spec's tools. Raises MetaspiderError for a model, wrapper or calibration that cannot be used."""
    from metaspider.core.registry import resolve

    resolve(spec.model)
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
        keys = ("answer", "decision", "score", "tool_calls", "thread_id")
        return {key: value for key, value in asdict(self).items() if key in keys}


def turn_result(graph: CompiledStateGraph, config: RunnableConfig) -> TurnResult:
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
