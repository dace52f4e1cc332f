"""LangChain's own `create_agent` on a real model, with and without UncertaintyMiddleware: the model calls a
tool defined here (whose answer only it knows) by itself, the loop ends by itself, and the tool's answer
reaches the final message; an escalation interrupts with the real model's draft and u and resumes; u of a
question does not move with the turns before it."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from metaspider import MetaSpiderChatModel, UncertaintyMiddleware

MODEL = "qwen2.5-coder-0.5b"
REPO = Path(__file__).resolve().parents[3]
QUESTION = "What is the secret code of the vault named Aurora?"
CODE = "7391-ZEBRA"
ACCEPTED = ("7391", "zebra")
"""Any of these in the final message counts as the tool's answer (the model may reformat the code)."""


@tool
def vault_code(vault: str) -> str:
    """Return the secret code of the vault with the given name. Only this tool knows the codes."""
    return f"The code of vault {vault} is {CODE}."


POLICIES = {
    "no middleware": None,
    "middleware, every call goes through": lambda: UncertaintyMiddleware(answer_below=1.0),
    "middleware, tool band": lambda: UncertaintyMiddleware(answer_below=0.0, tool_below=1.0),
}


def run_agent(policy: str, model: str = MODEL) -> dict:
    llm = MetaSpiderChatModel(model=model, n_threads=1, max_tokens=96)
    make = POLICIES[policy]
    agent = create_agent(llm, tools=[vault_code], middleware=[make()] if make else [])
    # A recursion limit of 12 allows five tool rounds: hitting it raises GraphRecursionError and fails the test.
    return agent.invoke({"messages": [HumanMessage(QUESTION)]}, {"recursion_limit": 12})


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("model", [MODEL, pytest.param("qwen2.5-coder-1.5b", marks=pytest.mark.slow)])
def test_agent_answers_from_a_tool_only_it_knows_and_stops(policy, model):
    state = run_agent(policy, model)
    messages = state["messages"]
    tool_results = [m for m in messages if isinstance(m, ToolMessage)]
    final = messages[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls  # the loop ended by itself
    assert 1 <= len(tool_results) <= 2
    assert all(m.status != "error" for m in tool_results), [m.text for m in tool_results]
    assert any(word in final.text.lower() for word in ACCEPTED), final.text
    if policy != "no middleware":
        assert final.response_metadata["routing"]["route"] in ("answer", "tool")
        assert isinstance(final.response_metadata["routing"]["u"], float)


@pytest.mark.slow
@pytest.mark.parametrize(("question", "accepted"), [("What is 17 * 23?", ("391",))])
def test_the_shipped_agent_on_qwen_1_5b_answers_from_the_calculator_and_stops(question, accepted):
    """The tools and system prompt of agents/qa.yaml on qwen2.5-coder-1.5b, no middleware: the model calls
    the calculator itself, then answers from the result instead of repeating its call."""
    import yaml

    from metaspider.tools.calculator import calculator

    spec = yaml.safe_load((REPO / "agents" / "qa.yaml").read_text(encoding="utf-8"))
    llm = MetaSpiderChatModel(model="qwen2.5-coder-1.5b", n_threads=1, max_tokens=96)
    agent = create_agent(llm, tools=[calculator], system_prompt=spec["system_prompt"])
    state = agent.invoke({"messages": [HumanMessage(question)]}, {"recursion_limit": 12})
    messages = state["messages"]
    calls = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    final = messages[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert 1 <= len(calls) <= 2 and all(c["name"] == "calculator" for c in calls)
    assert any(a in final.text.replace(",", "") for a in accepted), final.text
    assert "{" not in final.text, final.text  # no call written as text


@pytest.mark.slow
def test_the_shipped_wrapper_agent_answers_a_request_for_a_riddle_in_text():
    """The tools, prompt, wrapper and policy of agents/qa.yaml on qwen2.5-coder-1.5b: asked for a riddle with
    the tools offered, the model may call an invented `riddle` tool; the reply is a riddle in text."""
    import yaml

    from metaspider.runtime.tool_calls import writes_call
    from metaspider.tools.calculator import calculator
    from metaspider.tools.knowledge_base import make_knowledge_base_tool

    spec = yaml.safe_load((REPO / "agents" / "qa.yaml").read_text(encoding="utf-8"))
    llm = MetaSpiderChatModel(model="qwen2.5-coder-1.5b", wrapper="default", n_threads=1, max_tokens=128)
    tools = [calculator, make_knowledge_base_tool(REPO / "agents" / "kb", top_k=3)]
    thresholds = {k: spec["policy"][k] for k in ("answer_below", "tool_below", "escalate_above")}
    agent = create_agent(
        llm, tools=tools, system_prompt=spec["system_prompt"], middleware=[UncertaintyMiddleware(**thresholds)]
    )
    state = agent.invoke({"messages": [HumanMessage("Tell me a riddle for children.")]}, {"recursion_limit": 12})
    final = state["messages"][-1]
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert final.text.strip() and not writes_call(final.text), final.text
    assert not final.response_metadata.get("refusal"), final.text


SMALL = "smollm2-135m"


def test_escalation_interrupts_with_the_models_draft_and_resumes_with_a_human_answer():
    llm = MetaSpiderChatModel(model=SMALL, n_threads=1, max_tokens=24)
    middleware = UncertaintyMiddleware(answer_below=0.0, escalate_above=0.0)  # every step escalates
    agent = create_agent(llm, middleware=[middleware], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "escalate"}}
    paused = agent.invoke({"messages": [HumanMessage("What is the capital of Peru?")]}, config)
    (pending,) = paused["__interrupt__"]
    assert pending.value["question"] == "What is the capital of Peru?"
    assert pending.value["draft"].strip()
    assert 0.0 <= pending.value["u"] <= 1.0
    assert "escalate_above" in pending.value["reason"]
    state = agent.invoke(Command(resume="Lima."), config)
    final = state["messages"][-1]
    assert final.text == "Lima." and final.name == "human"
    assert final.response_metadata["routing"]["u"] == pending.value["u"]


def test_u_of_a_question_is_the_same_alone_and_after_earlier_turns():
    llm = MetaSpiderChatModel(model=SMALL, n_threads=1, max_tokens=16)
    agent = create_agent(llm, middleware=[UncertaintyMiddleware(answer_below=1.0)], checkpointer=InMemorySaver())
    alone = agent.invoke({"messages": [HumanMessage("Who wrote Hamlet?")]}, {"configurable": {"thread_id": "alone"}})
    config = {"configurable": {"thread_id": "long"}}
    for question in ("What is the capital of Peru?", "What is 2 + 2?", "Name a colour.", "Who wrote Hamlet?"):
        after = agent.invoke({"messages": [HumanMessage(question)]}, config)
    assert len(after["messages"]) == 8
    assert [s["route"] for s in after["routing_log"]] == ["answer"] * 4
    assert abs(after["routing"]["u"] - alone["routing"]["u"]) <= 0.05


@pytest.mark.slow
def test_u_does_not_drift_after_eight_earlier_turns():
    """30 conversations of the `conversations` data set with eight earlier turns: u of the final question
    asked alone and asked after its history, median difference at most 0.05."""
    import statistics

    from metaspider.loom.datasets import load_items, sample_items

    conversations = [item for item in load_items("conversations") if len(item.history) == 8]
    llm = MetaSpiderChatModel(model=SMALL, n_threads=1, max_tokens=1)
    agent = create_agent(llm, middleware=[UncertaintyMiddleware(answer_below=1.0)])
    differences = []
    for item in sample_items(conversations, 30):
        history = [message for q, a in item.history for message in (HumanMessage(q), AIMessage(a))]
        alone = agent.invoke({"messages": [HumanMessage(item.question)]})["routing"]["u"]
        after = agent.invoke({"messages": [*history, HumanMessage(item.question)]})["routing"]["u"]
        differences.append(abs(after - alone))
    assert len(differences) == 30
    assert statistics.median(differences) <= 0.05, differences
