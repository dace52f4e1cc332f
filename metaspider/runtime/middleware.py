"""`UncertaintyMiddleware`: routes each model call of a LangChain `create_agent` agent on the model's own u.

```python
from langchain.agents import create_agent
from metaspider import MetaSpiderChatModel, UncertaintyMiddleware

agent = create_agent(
    MetaSpiderChatModel(model="qwen2.5-coder-0.5b"),
    tools=[my_tool],
    middleware=[UncertaintyMiddleware(answer_below=0.4, tool_below=0.8)],
)
agent.invoke({"messages": [("user", "What is the secret code of vault 7?")]})
```

Before every model call (in `wrap_model_call`, which sees the model and the tools) the middleware asks
the chat model for u with `MetaSpiderChatModel.assess`, on the current question and this turn's tool
results only (the last human message and what follows it, after the system prompt): the history of
earlier turns does not raise u. The policy turns u into a route:

- **answer** (u < answer_below): the call goes through; the model may still call tools itself, until every
  tool offered was called this turn or `max_steps` is reached: then it answers without tools.
- **tool** (answer_below <= u < tool_below): the call is made with a tool required (`tool_choice="any"`)
  among the agent's tools not yet called this turn. When every tool offered was called already (or there
  is none), no tool is left to try: the turn answers from its tool results if it has any, and is refused
  otherwise. So a tool is forced at most once per turn, and a model that repeats a call cannot loop.
- **escalate** (u >= escalate_above): with `fallback=` (any `BaseChatModel`) that model answers the
  turn; otherwise the model drafts an answer and `interrupt()` hands the question, the draft, u and the
  reason to a human. Resume with `Command(resume=True)` (accept the draft), `Command(resume="...")`
  (the human's own answer) or `Command(resume=False)` (refuse). Interrupts need a checkpointer. On resume
  LangGraph runs the model step again: u is read again and the draft written again (greedy decoding: the
  same draft) before the human's answer is taken.
- **refuse** (anything else): a refusal AIMessage without tool calls, so the run ends with it.

The model call of an answer, tool or escalation step carries the step's u as the call argument
`assessed_u`: `MetaSpiderChatModel` then decides and injects its Doubter on that u rather than on a second
reading of the full prompt, whose tool instructions the wrapper never saw in training (on
qwen2.5-coder-1.5b they can push u over the threshold, and the Doubter refused answers the route let through).

Each step's route, u, reason and the whole `Uncertainty` record land in the agent state (`routing`: the
last step, `routing_log`: every step) and in the `response_metadata["routing"]` of the AIMessage the step
produced, for UIs and logs.

Cache: the assessed prompt (system prompt, question, this turn's tool results) is shorter than the prompt
the model then answers (the whole history, and the tools' instructions), so the answer reuses the cache
only up to their common prefix (at least the system prompt); the assessment is one prefill of the short
prompt, never a generation."""

from __future__ import annotations

import asyncio
import operator
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, NotRequired, Protocol, runtime_checkable

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.types import Command, interrupt

from metaspider.core.pipeline import Uncertainty
from metaspider.errors import MetaspiderError
from metaspider.graph.policy import Decision, Thresholds, decide

BASELINE_THRESHOLDS = Thresholds(answer_below=0.5, tool_below=0.9, source="baseline default")
"""The policy without a wrapper and without thresholds, on the baseline u = 1 − the max softmax probability
of the first answer token: answer below 0.5, a tool (if any) up to 0.9, refuse above."""

REFUSAL = "I'm not sure enough to answer that."
REPEATED_CALLS = 2
"""Calls of one tool in a turn after which an answer step gets no tools: the model is repeating itself."""


@runtime_checkable
class Assessor(Protocol):
    """A chat model that gives u before answering (`MetaSpiderChatModel` is one)."""

    def assess(self, messages: list[BaseMessage]) -> Uncertainty:
        """Pass 1 on `messages`: the `Uncertainty` record the answer will carry."""
        ...


class UncertaintyState(AgentState):
    """The agent state with each step's routing: `routing` is the last step, `routing_log` all of them."""

    routing: NotRequired[dict[str, Any]]
    routing_log: NotRequired[Annotated[list[dict[str, Any]], operator.add]]


class UncertaintyMiddleware(AgentMiddleware[UncertaintyState, Any, Any]):
    """Answer, call a tool, refuse or escalate, before each model call, on the model's own u.

    `answer_below`, `tool_below`, `escalate_above`: thresholds on u (see the module doc). `max_risk` (with
    `delta`) instead of `answer_below`: the wrapper's calibrated threshold whose selective risk is at most
    `max_risk` with probability at least 1 − `delta` (`metaloom calibrate` stores them). With none given,
    the wrapper's own answer threshold (the `threshold` its `Uncertainty` record reports: the manifest's
    `answer_below`) is used with no tool or escalation band; without a wrapper, `BASELINE_THRESHOLDS`.
    `fallback`: a chat model that answers escalated turns instead of a human. `refusal`: the refusal text, or a
    function of the step (route, u, reason) that writes it. `unanswered`: the reply when the human gives no
    answer (default: the refusal). `max_steps`: model calls per turn; a tool route at or past it is refused, so
    a model that keeps calling tools cannot loop. Refusals carry `response_metadata["refusal"] = True`.

    The step's routing is also handed to the middleware inside this one (in `request.state["routing"]`),
    so they can tell a forced tool call, an answer and an escalation's draft apart."""

    state_schema = UncertaintyState

    def __init__(
        self,
        answer_below: float | None = None,
        tool_below: float | None = None,
        escalate_above: float | None = None,
        *,
        fallback: BaseChatModel | None = None,
        refusal: str | Callable[[dict[str, Any]], str] = REFUSAL,
        unanswered: str | None = None,
        max_steps: int | None = None,
        max_risk: float | None = None,
        delta: float = 0.1,
    ):
        super().__init__()
        given = [t for t in (answer_below, tool_below, escalate_above) if t is not None]
        if any(not 0.0 <= t <= 1.0 for t in given):
            raise MetaspiderError(f"UncertaintyMiddleware: thresholds are probabilities in [0, 1], got {given}")
        if max_risk is not None and (answer_below is not None or not 0.0 < max_risk < 1.0 or not 0.0 < delta < 1.0):
            raise MetaspiderError(
                "UncertaintyMiddleware: give max_risk (in (0, 1), with delta in (0, 1)) or answer_below, not both"
            )
        if given and answer_below is None and max_risk is None:
            raise MetaspiderError("UncertaintyMiddleware: tool_below and escalate_above need answer_below or max_risk")
        self.thresholds = (
            Thresholds(answer_below, tool_below, escalate_above, "middleware") if answer_below is not None else None
        )
        self.max_risk, self.delta = max_risk, delta
        self._bands = (tool_below, escalate_above)
        self._calibrated: dict[tuple[str, str | None], Thresholds] = {}
        self.fallback = fallback
        self.refusal = refusal
        self.unanswered = unanswered
        self.max_steps = max_steps

    def policy(self, uncertainty: Uncertainty, model: Any = None) -> Thresholds:
        """The thresholds in force for this record: the middleware's own, else with `max_risk` the wrapper's
        calibrated threshold for that risk (from `model`'s wrapper), else the wrapper's answer threshold,
        else the default."""
        if self.thresholds is not None:
            return self.thresholds
        if self.max_risk is not None:
            return self._calibrated_thresholds(model)
        if uncertainty.threshold is not None:
            return Thresholds(uncertainty.threshold, source="wrapper")
        return BASELINE_THRESHOLDS

    def _calibrated_thresholds(self, model: Any) -> Thresholds:
        from metaspider.graph.policy import calibrated_threshold

        wrapper = getattr(model, "wrapper", None)
        if wrapper is None:
            raise MetaspiderError(
                "UncertaintyMiddleware(max_risk=...) needs a chat model with a calibrated wrapper "
                "(MetaSpiderChatModel(wrapper=...)); this model has none"
            )
        key = (str(wrapper), getattr(model, "model", None))
        if key not in self._calibrated:
            assert self.max_risk is not None
            answer_below, source = calibrated_threshold(key[0], key[1], self.max_risk, self.delta)
            self._calibrated[key] = Thresholds(answer_below, *self._bands, source)
        return self._calibrated[key]

    def route(
        self, uncertainty: Uncertainty, *, has_tools: bool, has_tool_results: bool, model: Any = None
    ) -> Decision:
        """The route for one step: `decide` on the policy's thresholds. `has_tools`: a tool not yet called
        this turn is offered; `model`: the chat model (for `max_risk`)."""
        if uncertainty.score is None:
            return Decision("refuse", "the model gave no score")
        thresholds = self.policy(uncertainty, model)
        return decide(
            uncertainty.score,
            thresholds,
            tool_available=has_tools,
            has_tool_results=has_tool_results,
            can_escalate=True,
        )

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """Assess, then answer / require a tool / refuse / escalate, and record the step. A refusal's
        AIMessage has no tool call, so the agent loop ends with it."""
        step = self._step(request, _assessor(request).assess(turn_view(request)))
        route = step["route"]
        request = _with_routing(request, step)
        if route == "refuse":
            return self._respond(ModelResponse([self._refusal(step)]), step)
        if route == "tool":
            return self._respond(handler(_forcing_untried(request)), step)
        if route == "escalate":
            if self.fallback is not None:
                return self._respond(handler(_to_fallback(request, self.fallback)), step)
            return self._respond(self._ask_human(request, handler(request), step), step)
        return self._respond(handler(self._answering(request, step)), step)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """The async form of `wrap_model_call` (the assessment runs on a worker thread)."""
        uncertainty = await asyncio.to_thread(_assessor(request).assess, turn_view(request))
        step = self._step(request, uncertainty)
        route = step["route"]
        request = _with_routing(request, step)
        if route == "refuse":
            return self._respond(ModelResponse([self._refusal(step)]), step)
        if route == "tool":
            return self._respond(await handler(_forcing_untried(request)), step)
        if route == "escalate":
            if self.fallback is not None:
                return self._respond(await handler(_to_fallback(request, self.fallback)), step)
            return self._respond(self._ask_human(request, await handler(request), step), step)
        return self._respond(await handler(self._answering(request, step)), step)

    def _step(self, request: ModelRequest[Any], uncertainty: Uncertainty) -> dict[str, Any]:
        turn = turn_view(request)
        called = {m.name for m in turn if isinstance(m, ToolMessage)}
        untried = [t for t in request.tools if _tool_name(t) not in called]
        has_tool_results = any(isinstance(m, ToolMessage) for m in turn)
        decision = self.route(
            uncertainty, has_tools=bool(untried), has_tool_results=has_tool_results, model=request.model
        )
        steps = 1 + sum(isinstance(m, AIMessage) for m in turn)
        route, reason = decision.route, decision.reason
        if route == "tool" and self.max_steps is not None and steps >= self.max_steps:
            route, reason = "refuse", f"{reason}; the step budget (max_steps={self.max_steps}) is used up"
        score = uncertainty.score
        from_tool_results = (
            route == "answer" and score is not None and score >= self.policy(uncertainty, request.model).answer_below
        )
        return {
            "route": route,
            "u": uncertainty.score,
            "reason": reason,
            "steps": steps,
            "uncertainty": uncertainty.as_dict(),
            "from_tool_results": from_tool_results,
        }

    def _answering(self, request: ModelRequest[Any], step: dict[str, Any]) -> ModelRequest[Any]:
        """The request of an answer step. The model answers without tools (`tool_choice="none"`), from the
        results it has, when the step answers from tool results in the tool band (every tool was tried), when
        it already called one tool twice this turn (a model repeating its call would loop), or when the step
        budget is used up. Otherwise the model may still call a tool itself, once more than before: small
        models often call a tool a second time before they answer from its result, and without tools in the
        prompt some write the call out as text instead of answering."""
        turn = turn_view(request)
        calls = Counter(m.name for m in turn if isinstance(m, ToolMessage))
        repeated = max(calls.values(), default=0) >= REPEATED_CALLS
        over_budget = self.max_steps is not None and step["steps"] >= self.max_steps
        if request.tools and (step.get("from_tool_results") or repeated or over_budget):
            return request.override(tool_choice="none")
        return request

    def _refusal(self, step: dict[str, Any], text: str | None = None) -> AIMessage:
        if text is None:
            text = self.refusal(step) if callable(self.refusal) else self.refusal
        return AIMessage(text, response_metadata={"refusal": True})

    def _ask_human(self, request: ModelRequest[Any], draft: ModelResponse[Any], step: dict[str, Any]) -> ModelResponse:
        question = current_question(request.messages)
        draft_message = _last_ai(draft)
        answer = interrupt(
            {
                "question": question.text if question is not None else "",
                "draft": draft_message.text if draft_message is not None else "",
                "u": step["u"],
                "reason": step["reason"],
            }
        )
        if answer is True:
            return draft
        if isinstance(answer, dict):
            answer = answer.get("answer")
        if isinstance(answer, str) and answer.strip():
            return ModelResponse([AIMessage(answer.strip(), name="human")])
        return ModelResponse([self._refusal(step, self.unanswered)])

    @staticmethod
    def _respond(response: ModelResponse[Any], step: dict[str, Any]) -> ExtendedModelResponse[Any]:
        result = [
            m.model_copy(update={"response_metadata": {**m.response_metadata, "routing": step}})
            if isinstance(m, AIMessage)
            else m
            for m in response.result
        ]
        return ExtendedModelResponse(
            ModelResponse(result, response.structured_response),
            Command(update={"routing": step, "routing_log": [step]}),
        )


def _tool_name(tool: Any) -> str | None:
    if isinstance(tool, dict):
        return (tool.get("function") or tool).get("name")
    return getattr(tool, "name", None)


def _forcing_untried(request: ModelRequest[Any]) -> ModelRequest[Any]:
    """The request with a tool call required, among the tools not yet called this turn."""
    called = {m.name for m in turn_view(request) if isinstance(m, ToolMessage)}
    untried = [t for t in request.tools if _tool_name(t) not in called]
    return request.override(tools=untried or request.tools, tool_choice="any")


def _with_routing(request: ModelRequest[Any], step: dict[str, Any]) -> ModelRequest[Any]:
    """The request with this step's routing in its state, for the middleware inside this one, and the
    step's u as the model's `assessed_u`: the answer's decision and its Doubter then act on the u the route
    was chosen on (read without the tools' instructions, which the wrapper was not trained on), not on
    a second reading of the longer prompt."""
    state: Any = {**request.state, "routing": step}  # UncertaintyState, the agent's state with routing
    settings = dict(request.model_settings)
    if step["u"] is not None:
        settings["assessed_u"] = step["u"]
    return request.override(state=state, model_settings=settings)


def _to_fallback(request: ModelRequest[Any], fallback: BaseChatModel) -> ModelRequest[Any]:
    """The request for the fallback model, which knows nothing of `assessed_u`."""
    settings = {k: v for k, v in request.model_settings.items() if k != "assessed_u"}
    return request.override(model=fallback, model_settings=settings)


def _assessor(request: ModelRequest[Any]) -> Assessor:
    model = request.model
    if not isinstance(model, Assessor):
        raise MetaspiderError(
            f"UncertaintyMiddleware needs a chat model with assess(messages) (MetaSpiderChatModel), "
            f"got {type(model).__name__}"
        )
    return model


def current_question(messages: Sequence[BaseMessage]) -> HumanMessage | None:
    """The last human message: the question of the current turn."""
    return next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)


def turn_view(request: ModelRequest[Any]) -> list[BaseMessage]:
    """What u is assessed on: the system prompt, the current question and this turn's tool calls and results."""
    messages: list[BaseMessage] = list(request.messages)
    starts = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    turn = messages[starts[-1] :] if starts else messages
    return [request.system_message, *turn] if request.system_message is not None else turn


def _last_ai(response: ModelResponse[Any]) -> AIMessage | None:
    return next((m for m in reversed(response.result) if isinstance(m, AIMessage)), None)
