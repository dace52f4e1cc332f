"""The agent's routes with a fake chat model and a fixed u: each route, the tool loop and its step budget,
escalation with interrupt/resume, tool failures, and which knobs each step gives the model. Paths are read
from the agent's own update events: each model step by the route `UncertaintyMiddleware` chose for it,
the tool node as "tools"."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest
from agent_specs import KB_FOLDER, agent, routing, run
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.types import Command

from metaspider.graph.builder import run_config, turn_result
from metaspider.graph.state import turn_input
from metaspider.tools import http_get

from .fakes import use_fakes

CALCULATOR = {"name": "calculator"}
KNOWLEDGE_BASE = {"name": "knowledge_base", "folder": str(KB_FOLDER)}
SCORE = 0.42
SYSTEM_PROMPT = "You are a careful assistant. Answer in one short sentence."  # write_spec's


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    return use_fakes(monkeypatch, SCORE)


def test_answer_route(tmp_path: Path, calls: list[dict]):
    graph = agent(tmp_path, policy={"answer_below": 1.0}, gain=1.5)
    path, updates = run(graph, "What is the capital of France?")
    assert path == ["answer"]
    step = routing(updates[0])
    assert step["u"] == SCORE and step["route"] == "answer" and step["steps"] == 1
    result = turn_result(graph, run_config("t"))
    assert result.decision == "answered" and result.answer.endswith("What is the capital of France?")
    message = graph.get_state(run_config("t")).values["messages"][-1]
    assert "uncertainty" in message.response_metadata and message.response_metadata["routing"]["route"] == "answer"
    assert calls == [{"model": "smollm2-135m", "gain": 1.5, "modifier": None, "tools": 0}]  # answered with injection


def test_refuse_route_says_why_with_the_score(tmp_path: Path, calls: list[dict]):
    graph = agent(tmp_path, policy={"answer_below": 0.0})
    path, updates = run(graph, "What is the capital of France?")
    assert path == ["refuse"]
    score = routing(updates[0])["u"]
    result = turn_result(graph, run_config("t"))
    assert result.decision == "refused"
    assert f"{score:.2f}" in result.answer and "answer_below=0.00" in result.answer
    assert calls == []  # a refusal generates nothing


def test_tool_route_reassesses_with_the_result_and_answers_from_it(tmp_path: Path, calls: list[dict]):
    graph = agent(
        tmp_path, policy={"answer_below": 0.0, "tool_below": 1.0}, tools=[CALCULATOR, KNOWLEDGE_BASE], tool_hints=True
    )
    path, updates = run(graph, "What is 1234 * 5678?")
    assert path == ["tool", "tools", "answer"]
    assert routing(updates[0])["route"] == "tool"
    (request,) = updates[0]["model"]["messages"]
    (result,) = updates[1]["tools"]["messages"]
    assert request.tool_calls[0]["name"] == "calculator"  # the knowledge base does not apply: no passage matches
    assert request.tool_calls[0]["args"] == {"expression": "1234 * 5678"}  # completed from the question
    assert isinstance(result, ToolMessage) and result.text == "7006652"
    assert routing(updates[2])["steps"] == 2  # assessed again, now with the tool result in context
    final = turn_result(graph, run_config("t"))
    assert final.decision == "used_tool" and "calculator: 1234 * 5678 = 7006652" in final.answer
    # The tool call and the grounded answer run without the injection (gain 0).
    assert [(c["gain"], c["tools"]) for c in calls] == [(0.0, 1), (0.0, 0)]


def test_the_second_assessment_sees_the_tool_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    seen: list[list[BaseMessage]] = []

    def score(messages: list[BaseMessage]) -> float:
        seen.append(messages)
        return 0.5

    use_fakes(monkeypatch, score)
    graph = agent(tmp_path, policy={"answer_below": 0.0, "tool_below": 1.0}, tools=[CALCULATOR], tool_hints=True)
    run(graph, "What is 2 * 21?")
    assert [(m.type, m.text) for m in seen[0]] == [("system", SYSTEM_PROMPT), ("human", "What is 2 * 21?")]
    # The second assessment: the question, the calculator call with its expression and its result.
    assert [m.type for m in seen[1]] == ["system", "human", "ai", "tool"]
    assert seen[1][2].tool_calls[0]["args"] == {"expression": "2 * 21"} and seen[1][3].text == "42"


def test_step_budget_stops_the_tool_loop(tmp_path: Path, calls: list[dict]):
    graph = agent(
        tmp_path, policy={"answer_below": 0.0, "tool_below": 1.0}, tools=[CALCULATOR, KNOWLEDGE_BASE], max_steps=2
    )
    # Both tools apply (arithmetic, and a passage about employees), so only the budget stops the loop.
    path, updates = run(graph, "Orrery Labs has 340 employees. What is 340 * 2?")
    assert path == ["tool", "tools", "refuse"]
    assert "max_steps=2" in routing(updates[2])["reason"]
    assert turn_result(graph, run_config("t")).decision == "refused"


def test_without_a_step_budget_each_applicable_tool_is_called_once(tmp_path: Path, calls: list[dict]):
    graph = agent(tmp_path, policy={"answer_below": 0.0, "tool_below": 1.0}, tools=[CALCULATOR, KNOWLEDGE_BASE])
    path, updates = run(graph, "Orrery Labs has 340 employees. What is 340 * 2?")
    assert path == ["tool", "tools", "tool", "tools", "answer"]
    names = sorted(call["name"] for call in turn_result(graph, run_config("t")).tool_calls)
    assert names == ["calculator", "knowledge_base"]


def test_human_escalation_interrupts_and_resumes_with_the_answer(tmp_path: Path, calls: list[dict]):
    graph = agent(tmp_path, policy={"answer_below": 0.0, "escalate_above": 0.0}, escalation={"kind": "human"})
    path, updates = run(graph, "What is my neighbour's cat called?")
    assert path == ["__interrupt__"]  # the draft is written inside the model step, before the interrupt
    pending = updates[-1]["__interrupt__"][0].value
    assert pending["question"] == "What is my neighbour's cat called?"
    assert pending["draft"] and pending["u"] == SCORE
    assert calls[0]["gain"] == 0.0  # the draft is the bare model's answer
    paused = turn_result(graph, run_config("t"))
    assert paused.escalation == {**pending, "score": SCORE} and paused.answer is None

    path, _ = run(graph, Command(resume="Her name is Miso."))
    assert path == ["escalate"]
    result = turn_result(graph, run_config("t"))
    assert result.decision == "escalated" and result.answer == "Her name is Miso."
    messages = graph.get_state(run_config("t")).values["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage] and messages[-1].name == "human"


def test_an_empty_human_reply_is_a_refusal(tmp_path: Path, calls: list[dict]):
    graph = agent(tmp_path, policy={"answer_below": 0.0, "escalate_above": 0.0}, escalation={"kind": "human"})
    run(graph, "What is my neighbour's cat called?")
    run(graph, Command(resume="  "))
    result = turn_result(graph, run_config("t"))
    assert result.decision == "refused" and result.answer == "No one answered this question."


def test_a_tool_that_raises_becomes_an_error_result(tmp_path: Path, calls: list[dict]):
    @tool
    def flaky_lookup(query: str) -> str:
        """Look something up in a service that is down."""
        raise ConnectionError("service unavailable")

    graph = agent(tmp_path, extra_tools=[flaky_lookup], policy={"answer_below": 0.0, "tool_below": 1.0})
    path, updates = run(graph, "Where is the nearest post office?")
    assert path == ["tool", "tools", "answer"]
    (result,) = updates[1]["tools"]["messages"]
    assert result.status == "error" and result.text == "error: ConnectionError: service unavailable"


def test_http_get_to_loopback_is_an_error_result_not_a_crash(
    tmp_path: Path, calls: list[dict], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(http_get, "resolve_addresses", lambda host: [ipaddress.ip_address(host)])  # a literal
    graph = agent(
        tmp_path,
        policy={"answer_below": 0.0, "tool_below": 1.0},
        tools=[{"name": "http_get", "allow_hosts": ["127.0.0.1", "example.org"]}],
        max_tokens=48,
    )
    path, updates = run(graph, "Fetch http://127.0.0.1:8000/admin and tell me what it says.")
    assert path[:2] == ["tool", "tools"] and path[-1] in ("answer", "refuse")
    call = turn_result(graph, run_config("t")).tool_calls[0]
    assert call["status"] == "error"
    assert "not on the allow-list" in call["result"] or "non-public address" in call["result"]


def test_no_applicable_tool_means_refusal_not_an_answer(tmp_path: Path, calls: list[dict]):
    graph = agent(
        tmp_path, policy={"answer_below": 0.0, "tool_below": 1.0}, tools=[CALCULATOR, KNOWLEDGE_BASE], tool_hints=True
    )
    path, updates = run(graph, "What is my neighbour's cat called?")
    assert path == ["refuse"]
    assert "no tool applies" in routing(updates[0])["reason"]


def test_escalation_to_a_stronger_model_answers_with_that_model(tmp_path: Path, calls: list[dict]):
    graph = agent(
        tmp_path,
        policy={"answer_below": 0.0, "escalate_above": 0.0},
        escalation={"kind": "model", "model": "gemma3-270m"},
        max_tokens=16,
    )
    path, updates = run(graph, "What is the capital of France?")
    assert path == ["escalate"]
    message = updates[0]["model"]["messages"][0]
    assert message.response_metadata["model_name"] == "gemma3-270m" and message.text
    assert turn_result(graph, run_config("t")).decision == "escalated"
    assert [c["model"] for c in calls] == ["gemma3-270m"]


def test_run_knobs_override_the_spec(tmp_path: Path, calls: list[dict]):
    graph = agent(tmp_path, policy={"answer_below": 1.0}, gain=1.0)
    updates = list(
        graph.stream(turn_input("Hi?"), run_config("k", gain=2.5, modifier="watchdog"), stream_mode="updates")
    )
    assert [routing(update)["route"] for update in updates] == ["answer"]
    assert calls == [{"model": "smollm2-135m", "gain": 2.5, "modifier": "watchdog", "tools": 0}]


def test_a_new_turn_starts_from_a_clean_state(tmp_path: Path, calls: list[dict]):
    graph = agent(tmp_path, policy={"answer_below": 0.0, "tool_below": 1.0}, tools=[CALCULATOR], tool_hints=True)
    run(graph, "What is 6 * 7?")
    assert turn_result(graph, run_config("t")).steps == 2
    path, _ = run(graph, "What is 3 * 3?")
    assert path == ["tool", "tools", "answer"]  # the calculator is offered again: the turn is new
    result = turn_result(graph, run_config("t"))
    assert [call["args"]["expression"] for call in result.tool_calls] == ["3 * 3"]


def test_the_agent_runs_async_with_its_knobs_and_tools(tmp_path: Path, calls: list[dict]):
    graph = agent(tmp_path, policy={"answer_below": 0.0, "tool_below": 1.0}, tools=[CALCULATOR], tool_hints=True)
    config = run_config("a", gain=2.0)
    asyncio.run(graph.ainvoke(turn_input("What is 6 * 7?"), config))
    result = turn_result(graph, config)
    assert result.decision == "used_tool" and "calculator: 6 * 7 = 42" in result.answer
    assert [(c["gain"], c["tools"]) for c in calls] == [(0.0, 1), (0.0, 0)]  # both steps without the injection


def test_async_answers_use_the_runs_knobs(tmp_path: Path, calls: list[dict]):
    graph = agent(tmp_path, policy={"answer_below": 1.0})
    asyncio.run(graph.ainvoke(turn_input("Hi?"), run_config("a", gain=2.0, modifier="watchdog")))
    assert calls == [{"model": "smollm2-135m", "gain": 2.0, "modifier": "watchdog", "tools": 0}]
