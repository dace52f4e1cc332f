"""The agent (`create_agent` with the spec's middleware) routing on real models: an answer, a tool call and the answer from its result, a human
escalation with the bare model's draft, an escalation to a stronger model, and the wrapper's score.
Every route and its edge cases are tested with a fake model in tests/unit_tests/graph."""

from pathlib import Path

import pytest
from agent_specs import KB_FOLDER, agent, routing, run
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.types import Command

from metaspider.graph.builder import run_config, turn_result

CALCULATOR = {"name": "calculator"}
KNOWLEDGE_BASE = {"name": "knowledge_base", "folder": str(KB_FOLDER)}


def test_answer_route(tmp_path: Path):
    graph = agent(tmp_path, policy={"answer_below": 1.0})
    path, updates = run(graph, "What is the capital of France?")
    assert path == ["answer"]
    step = routing(updates[0])
    assert 0 < step["u"] < 1 and step["route"] == "answer"
    result = turn_result(graph, run_config("t"))
    assert result.decision == "answered" and result.answer
    message = graph.get_state(run_config("t")).values["messages"][-1]
    assert "uncertainty" in message.response_metadata


def test_tool_route_reassesses_with_the_result_and_answers_from_it(tmp_path: Path):
    graph = agent(
        tmp_path, policy={"answer_below": 0.0, "tool_below": 1.0}, tools=[CALCULATOR, KNOWLEDGE_BASE], tool_hints=True
    )
    path, updates = run(graph, "What is 1234 * 5678?")
    assert path == ["tool", "tools", "answer"]
    assert routing(updates[0])["route"] == "tool"
    (request,) = updates[0]["model"]["messages"]
    (result,) = updates[1]["tools"]["messages"]
    assert request.tool_calls[0]["name"] == "calculator"  # the knowledge base does not apply: no passage matches
    assert isinstance(result, ToolMessage) and result.text == "7006652"
    assert routing(updates[2])["steps"] == 2  # assessed again, now with the tool result in context
    final = turn_result(graph, run_config("t"))
    assert final.decision == "used_tool" and "7006652" in final.answer.replace(",", "")


def test_human_escalation_interrupts_and_resumes_with_the_answer(tmp_path: Path):
    graph = agent(tmp_path, policy={"answer_below": 0.0, "escalate_above": 0.0}, escalation={"kind": "human"})
    path, updates = run(graph, "What is my neighbour's cat called?")
    assert path == ["__interrupt__"]  # the draft is written inside the model step, before the interrupt
    pending = updates[-1]["__interrupt__"][0].value
    assert pending["question"] == "What is my neighbour's cat called?"
    assert pending["draft"] and 0 < pending["u"] < 1
    paused = turn_result(graph, run_config("t"))
    assert paused.escalation == {**pending, "score": pending["u"]} and paused.answer is None

    path, _ = run(graph, Command(resume="Her name is Miso."))
    assert path == ["escalate"]
    result = turn_result(graph, run_config("t"))
    assert result.decision == "escalated" and result.answer == "Her name is Miso."
    messages = graph.get_state(run_config("t")).values["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage] and messages[-1].name == "human"


def test_escalation_to_a_stronger_model_answers_with_that_model(tmp_path: Path):
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


@pytest.fixture(scope="module")
def random_wrapper(tmp_path_factory) -> Path:
    """An untrained wrapper shaped for the default model: enough to check which score the agent uses."""
    from random_wrappers import make_wrapper

    from metaspider.core.models.model_files import fingerprint
    from metaspider.core.models.registry import DEFAULT_MODEL, resolve
    from metaspider.core.wrapper.config import WrapperConfig, default_layers

    read, inject = default_layers(30)
    config = WrapperConfig(d_model=576, read_layers=read, inject_layers=inject, bottleneck=32, n_heads=2)
    return make_wrapper(tmp_path_factory.mktemp("wrapper") / "random", config, fingerprint(resolve(DEFAULT_MODEL)))


def test_with_a_wrapper_the_agent_routes_on_the_score_the_chat_model_reports(tmp_path: Path, random_wrapper: Path):
    graph = agent(tmp_path, wrapper=str(random_wrapper), modifier="watchdog", policy={"answer_below": 1.0})
    path, updates = run(graph, "What is the capital of France?")
    assert path == ["answer"]
    reported = updates[0]["model"]["messages"][0].response_metadata["uncertainty"]
    assert routing(updates[0])["u"] == pytest.approx(reported["score"], abs=1e-6)
    assert reported["modifier"] == "watchdog"
