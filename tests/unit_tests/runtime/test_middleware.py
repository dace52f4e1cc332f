"""UncertaintyMiddleware in LangChain's own `create_agent`: every route, the policy defaults, the routing
record in state and metadata, interrupt and resume. The chat model is a fake that reports a scripted u
through `assess` (the real model runs in tests/integration_tests/runtime/test_middleware_agent.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel, FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import Field

from metaspider import Uncertainty, UncertaintyMiddleware
from metaspider.errors import MetaspiderError
from metaspider.runtime.middleware import BASELINE_THRESHOLDS, REFUSAL

CODE = "4711"


@tool
def vault_code(vault: str) -> str:
    """The secret code of a vault."""
    return CODE


class AssessingFake(BaseChatModel):
    """Reports the scripted scores in turn (the last one repeats) through `assess`; answers a tool result by
    quoting it, calls the first tool when one is required, and otherwise answers "A guess."."""

    scores: list[float] = Field(default_factory=lambda: [0.1])
    threshold: float | None = None
    reply: str = "A guess."
    assessed: list[list[BaseMessage]] = Field(default_factory=list)
    generated: list[dict[str, Any]] = Field(default_factory=list)
    given_u: list[float | None] = Field(default_factory=list)
    """The `assessed_u` call argument of every generation."""

    @property
    def _llm_type(self) -> str:
        return "assessing-fake"

    def assess(self, messages: list[BaseMessage]) -> Uncertainty:
        score = self.scores[min(len(self.assessed), len(self.scores) - 1)]
        self.assessed.append(list(messages))
        decision = "unassessed" if self.threshold is None else "answer" if score < self.threshold else "refuse"
        return Uncertainty(score, decision, self.threshold, None, 1.0)

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs)

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        tools = kwargs.get("tools") or []
        self.generated.append({"tool_choice": kwargs.get("tool_choice"), "n_messages": len(messages)})
        self.given_u.append(kwargs.get("assessed_u"))
        if isinstance(messages[-1], ToolMessage):
            message = AIMessage(f"The code is {messages[-1].text}.")
        elif tools and kwargs.get("tool_choice") == "any":
            name = tools[0]["function"]["name"]
            message = AIMessage(
                "", tool_calls=[{"name": name, "args": {"vault": "7"}, "id": f"c{len(self.generated)}"}]
            )
        else:
            message = AIMessage(self.reply)
        return ChatResult(generations=[ChatGeneration(message=message)])


def run(model: AssessingFake, middleware: UncertaintyMiddleware, tools=(), question: str = "Code of vault 7?", **kw):
    agent = create_agent(model, tools=list(tools), middleware=[middleware], system_prompt="Be brief.", **kw)
    return agent.invoke({"messages": [HumanMessage(question)]})


def test_answer_goes_through_and_is_recorded_in_state_and_metadata():
    model = AssessingFake(scores=[0.1])
    state = run(model, UncertaintyMiddleware(answer_below=0.5), tools=[vault_code])
    last = state["messages"][-1]
    assert last.text == "A guess."
    assert last.response_metadata["routing"]["route"] == "answer"
    assert last.response_metadata["routing"]["u"] == 0.1
    assert "answer_below=0.50" in last.response_metadata["routing"]["reason"]
    assert state["routing"] == last.response_metadata["routing"]
    assert [s["route"] for s in state["routing_log"]] == ["answer"]
    assert model.generated == [{"tool_choice": None, "n_messages": 2}]  # not forced: the model may call tools


@pytest.mark.parametrize("scores", [[0.1], [0.6, 0.1]])
def test_each_model_call_gets_the_u_its_step_was_routed_on(scores):
    """The chat model decides and injects its Doubter on the u the route was chosen on (`assessed_u`),
    not on a second reading of the prompt with the tools' instructions."""
    model = AssessingFake(scores=scores)
    run(model, UncertaintyMiddleware(answer_below=0.5, tool_below=0.9), tools=[vault_code])
    assert model.given_u == scores


def test_the_fallback_model_gets_no_assessed_u():
    model, fallback = AssessingFake(scores=[0.9]), AssessingFake(reply="The fallback's answer.")
    run(model, UncertaintyMiddleware(answer_below=0.5, escalate_above=0.8, fallback=fallback))
    assert fallback.given_u == [None]


def test_u_is_assessed_on_this_turn_only_not_the_history():
    model = AssessingFake(scores=[0.1])
    agent = create_agent(model, middleware=[UncertaintyMiddleware(answer_below=0.5)], system_prompt="Be brief.")
    history = [HumanMessage("Hi"), AIMessage("Hello."), HumanMessage("Who wrote Hamlet?")]
    agent.invoke({"messages": history})
    (view,) = model.assessed
    assert [type(m).__name__ for m in view] == ["SystemMessage", "HumanMessage"]
    assert view[-1].text == "Who wrote Hamlet?"


def test_tool_route_requires_a_tool_then_answers_from_its_result():
    model = AssessingFake(scores=[0.6, 0.6])
    state = run(model, UncertaintyMiddleware(answer_below=0.5, tool_below=0.9), tools=[vault_code])
    assert CODE in state["messages"][-1].text
    assert [s["route"] for s in state["routing_log"]] == ["tool", "answer"]
    assert "answering from the tool results" in state["routing"]["reason"]
    assert [g["tool_choice"] for g in model.generated] == ["any", "none"]  # every tool called: answer without
    assert sum(isinstance(m, ToolMessage) for m in state["messages"]) == 1
    second = model.assessed[1]
    assert [type(m).__name__ for m in second] == ["SystemMessage", "HumanMessage", "AIMessage", "ToolMessage"]


@tool
def vault_owner(vault: str) -> str:
    """The owner of a vault."""
    return "Ada"


class RepeatingFake(AssessingFake):
    """Calls the first tool whenever tools are bound and not switched off: a small model echoing its call."""

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        tools = kwargs.get("tools") or []
        self.generated.append({"tool_choice": kwargs.get("tool_choice"), "n_messages": len(messages)})
        self.given_u.append(kwargs.get("assessed_u"))
        if tools and kwargs.get("tool_choice") != "none":
            call = {"name": tools[0]["function"]["name"], "args": {"vault": "7"}, "id": f"c{len(self.generated)}"}
            return ChatResult(generations=[ChatGeneration(message=AIMessage("", tool_calls=[call]))])
        return ChatResult(generations=[ChatGeneration(message=AIMessage(f"The code is {messages[-1].text}."))])


@pytest.mark.parametrize(("scores", "calls"), [([0.1], 2), ([0.6, 0.6], 1)])
def test_a_model_repeating_its_tool_call_cannot_loop(scores, calls):
    # Answer band: the model may call a tool again once, then answers without tools. Tool band: the forced
    # call, then an answer from its result without tools.
    model = RepeatingFake(scores=scores)
    state = run(model, UncertaintyMiddleware(answer_below=0.5, tool_below=0.9), tools=[vault_code])
    assert sum(isinstance(m, ToolMessage) for m in state["messages"]) == calls
    assert CODE in state["messages"][-1].text and not state["messages"][-1].tool_calls
    assert model.generated[-1]["tool_choice"] == "none"


def test_max_steps_ends_the_tool_calls_of_a_model_answering_on_its_own():
    model = RepeatingFake(scores=[0.1])
    middleware = UncertaintyMiddleware(answer_below=0.5, tool_below=0.9, max_steps=2)
    state = run(model, middleware, tools=[vault_code, vault_owner])
    assert len(model.generated) == 2  # one call, then the budget: an answer without tools
    assert model.generated[-1]["tool_choice"] == "none"
    assert not state["messages"][-1].tool_calls


def test_tool_band_without_tools_refuses():
    model = AssessingFake(scores=[0.6])
    state = run(model, UncertaintyMiddleware(answer_below=0.5, tool_below=0.9))
    assert state["messages"][-1].text == REFUSAL
    assert state["routing"]["route"] == "refuse"
    assert "no tool applies" in state["routing"]["reason"]
    assert model.generated == []


def test_refuse_ends_the_run_without_calling_the_model():
    model = AssessingFake(scores=[0.95])
    state = run(model, UncertaintyMiddleware(answer_below=0.5, refusal="No idea."), tools=[vault_code])
    last = state["messages"][-1]
    assert last.text == "No idea." and not last.tool_calls
    assert last.response_metadata["routing"]["route"] == "refuse"
    assert model.generated == []
    assert len(state["messages"]) == 2


def test_escalate_to_a_fallback_model():
    model, fallback = AssessingFake(scores=[0.9]), AssessingFake(reply="The fallback's answer.")
    state = run(model, UncertaintyMiddleware(answer_below=0.5, escalate_above=0.8, fallback=fallback))
    assert state["messages"][-1].text == "The fallback's answer."
    assert state["routing"]["route"] == "escalate"
    assert model.generated == [] and len(fallback.generated) == 1


@pytest.mark.parametrize(
    ("resume", "expected", "name"),
    [
        ("Vault 7 opens with 4711.", "Vault 7 opens with 4711.", "human"),
        (True, "A guess.", None),
        (False, REFUSAL, None),
    ],
)
def test_escalate_interrupts_for_a_human_and_resumes(resume, expected, name):
    model = AssessingFake(scores=[0.9])
    agent = create_agent(
        model,
        middleware=[UncertaintyMiddleware(answer_below=0.5, escalate_above=0.8)],
        checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"thread_id": "t1"}}
    paused = agent.invoke({"messages": [HumanMessage("Code of vault 7?")]}, config)
    (pending,) = paused["__interrupt__"]
    assert pending.value == {
        "question": "Code of vault 7?",
        "draft": "A guess.",
        "u": 0.9,
        "reason": "u=0.90 is at or above escalate_above=0.80",
    }
    state = agent.invoke(Command(resume=resume), config)
    last = state["messages"][-1]
    assert last.text == expected
    assert last.name == name
    assert last.response_metadata["routing"]["route"] == "escalate"
    assert [s["route"] for s in state["routing_log"]] == ["escalate"]


def test_defaults_take_the_wrappers_threshold_else_the_baseline_policy():
    middleware = UncertaintyMiddleware()
    wrapped = Uncertainty(0.35, "refuse", 0.3, "doubter", 1.0)
    assert middleware.policy(wrapped).answer_below == 0.3
    assert middleware.route(wrapped, has_tools=True, has_tool_results=False).route == "refuse"
    assert (
        middleware.route(Uncertainty(0.2, "answer", 0.3, None, 1.0), has_tools=True, has_tool_results=False).route
        == "answer"
    )
    bare = Uncertainty(0.7, "unassessed", None, None, 1.0)
    assert middleware.policy(bare) == BASELINE_THRESHOLDS
    assert middleware.route(bare, has_tools=True, has_tool_results=False).route == "tool"
    assert middleware.route(bare, has_tools=False, has_tool_results=False).route == "refuse"
    assert (
        middleware.route(Uncertainty(0.95, "unassessed", None, None, 1.0), has_tools=True, has_tool_results=False).route
        == "refuse"
    )
    assert (
        middleware.route(Uncertainty(0.4, "unassessed", None, None, 1.0), has_tools=False, has_tool_results=False).route
        == "answer"
    )
    assert UncertaintyMiddleware(answer_below=0.9).policy(wrapped).answer_below == 0.9


def test_defaults_in_an_agent_follow_the_wrapper_record():
    state = run(AssessingFake(scores=[0.35], threshold=0.3), UncertaintyMiddleware())
    assert state["routing"]["route"] == "refuse"
    assert state["routing"]["uncertainty"]["threshold"] == 0.3


def test_async_agent_routes_the_same():
    model = AssessingFake(scores=[0.6, 0.6])
    agent = create_agent(
        model, tools=[vault_code], middleware=[UncertaintyMiddleware(answer_below=0.5, tool_below=0.9)]
    )
    state = asyncio.run(agent.ainvoke({"messages": [HumanMessage("Code of vault 7?")]}))
    assert CODE in state["messages"][-1].text
    assert [s["route"] for s in state["routing_log"]] == ["tool", "answer"]


def test_a_model_without_assess_and_bad_thresholds_are_named():
    plain = create_agent(FakeListChatModel(responses=["Hi."]), middleware=[UncertaintyMiddleware(answer_below=0.5)])
    with pytest.raises(MetaspiderError, match="assess.*FakeListChatModel"):
        plain.invoke({"messages": [HumanMessage("Hello?")]})
    with pytest.raises(MetaspiderError, match=r"\[0, 1\]"):
        UncertaintyMiddleware(answer_below=1.5)
    with pytest.raises(MetaspiderError, match="need answer_below"):
        UncertaintyMiddleware(tool_below=0.5)


def test_max_risk_takes_the_wrappers_calibrated_threshold_and_keeps_the_bands():
    from types import SimpleNamespace

    model = SimpleNamespace(wrapper="default", model="smollm2-135m")  # the shipped wrapper: risk 0.7 -> u < 0.21
    middleware = UncertaintyMiddleware(max_risk=0.7, tool_below=0.6)
    record = Uncertainty(0.3, "refuse", 0.5, "doubter", 1.0)
    policy = middleware.policy(record, model)
    assert (policy.answer_below, policy.tool_below) == (0.21, 0.6)
    assert "max_risk 0.7" in policy.source
    assert middleware.route(record, has_tools=True, has_tool_results=False, model=model).route == "tool"
    with pytest.raises(MetaspiderError, match="no calibrated threshold"):
        UncertaintyMiddleware(max_risk=0.3).policy(record, model)
    with pytest.raises(MetaspiderError, match="needs a chat model with a calibrated wrapper"):
        UncertaintyMiddleware(max_risk=0.7).policy(record, SimpleNamespace(wrapper=None, model="x"))
    with pytest.raises(MetaspiderError, match="not both"):
        UncertaintyMiddleware(answer_below=0.4, max_risk=0.3)
