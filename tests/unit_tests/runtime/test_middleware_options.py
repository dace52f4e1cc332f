"""UncertaintyMiddleware's options for agents built on it: a refusal written from the step, the reply to an
unanswered escalation, the step budget, a required tool among the tools not yet called this turn, and the
step's routing handed to the middleware inside it. Same fake model as test_middleware.py."""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware.types import AgentMiddleware
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from metaspider import UncertaintyMiddleware

from .test_middleware import AssessingFake, run, vault_code


@tool
def vault_owner(vault: str) -> str:
    """The owner of a vault."""
    return "Ada"


def test_a_refusal_can_be_written_from_the_step():
    middleware = UncertaintyMiddleware(answer_below=0.2, refusal=lambda step: f"No ({step['reason']}).")
    state = run(AssessingFake(scores=[0.7]), middleware)
    message = state["messages"][-1]
    assert message.text == "No (u=0.70 is at or above answer_below=0.20)."
    assert message.response_metadata["refusal"] is True


def test_an_unanswered_escalation_gets_its_own_reply():
    middleware = UncertaintyMiddleware(answer_below=0.2, escalate_above=0.5, unanswered="Nobody knew.")
    agent = create_agent(AssessingFake(scores=[0.9]), middleware=[middleware], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    agent.invoke({"messages": [HumanMessage("Who?")]}, config)
    state = agent.invoke(Command(resume="   "), config)
    assert state["messages"][-1].text == "Nobody knew." and state["messages"][-1].response_metadata["refusal"]


def test_a_required_tool_is_among_the_tools_not_yet_called_this_turn():
    offered: list[list[str]] = []

    class Spy(AgentMiddleware):
        def wrap_model_call(self, request, handler):
            offered.append([t.name for t in request.tools])
            return handler(request)

    model = AssessingFake(scores=[0.5])
    middleware = UncertaintyMiddleware(answer_below=0.2, tool_below=0.9)
    agent = create_agent(model, tools=[vault_code, vault_owner], middleware=[middleware, Spy()])
    state = agent.invoke({"messages": [HumanMessage("Code of vault 7?")]})
    assert [step["route"] for step in state["routing_log"]] == ["tool", "tool"]
    assert offered == [["vault_code", "vault_owner"], ["vault_owner"]]  # vault_code was called already
    assert [step["steps"] for step in state["routing_log"]] == [1, 2]


def test_with_every_tool_called_the_turn_answers_from_the_results():
    model = AssessingFake(scores=[0.5])
    state = run(model, UncertaintyMiddleware(answer_below=0.2, tool_below=0.9), tools=[vault_code])
    assert [step["route"] for step in state["routing_log"]] == ["tool", "answer"]
    assert "no tool left to try" in state["routing"]["reason"]


def test_the_step_budget_refuses_a_further_tool_call():
    model = AssessingFake(scores=[0.5])
    middleware = UncertaintyMiddleware(answer_below=0.2, tool_below=0.9, max_steps=2)
    state = run(model, middleware, tools=[vault_code, vault_owner])
    assert [step["route"] for step in state["routing_log"]] == ["tool", "refuse"]
    assert "max_steps=2" in state["routing"]["reason"]


def test_the_inner_middleware_sees_the_steps_routing():
    seen: list[Any] = []

    class Spy(AgentMiddleware):
        def wrap_model_call(self, request, handler):
            seen.append(request.state.get("routing", {}).get("route"))
            return handler(request)

    model = AssessingFake(scores=[0.5, 0.1])
    middleware = UncertaintyMiddleware(answer_below=0.2, tool_below=0.9)
    agent = create_agent(model, tools=[vault_code], middleware=[middleware, Spy()])
    agent.invoke({"messages": [HumanMessage("Code of vault 7?")]})
    assert seen == ["tool", "answer"]
