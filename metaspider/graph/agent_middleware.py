"""The spec's own middleware around `UncertaintyMiddleware` in the agent `metaspider agent run` builds.

```
create_agent(model, tools, system_prompt, checkpointer,
             middleware=[SpecMiddleware (outer), UncertaintyMiddleware, PromptMiddleware (inner)])
```

- `SpecMiddleware` (outside the uncertainty middleware, so u is assessed with the knobs in force):
  builds the chat model with the run's gain and modifier (`configurable` of the run config, else the
  spec's), offers only the tools that apply to the question and were not called yet this turn, and runs
  each tool call: an exception becomes an error result the model reads, and a long result is cut to
  the spec's `tool_result_tokens`.
- `PromptMiddleware` (inside it, so it sees the step's route): writes the prompt the model answers
  from (`model_view`: past questions and answers, this turn's tool results as context before the
  question) trimmed to the spec's `n_ctx`; turns the wrapper's injection off (gain 0) for text that is
  not the model's own answer (a forced tool call, an answer read from tool results, an escalation's
  draft); keeps the draft out of the token stream; and completes the model's tool arguments from the
  question where the spec's tools ask for it.

A 135M model shown its own earlier JSON tool call imitates it instead of answering, so the prompt keeps
past turns as question/answer pairs; the state keeps the faithful AIMessage/ToolMessage pair. Measured in
benchmarks/results/agent_prompt_view.md: on smollm2-135m, answering from the raw `create_agent` messages
(where the chat model asks again, with the results in the question, when the reply imitates a call) gave
the tool's result in 3 of 8 calculator answers, this prompt in 6 of 8."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware.types import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langgraph.config import get_config
from langgraph.constants import TAG_NOSTREAM
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from metaspider.graph import nodes
from metaspider.graph.context_budget import cap_tool_result, history_budget, trim_history
from metaspider.graph.nodes import AgentTool, current_turn_start, model_view
from metaspider.graph.spec import AgentSpec


def knobs(spec: AgentSpec) -> tuple[float, str | None]:
    """(gain, modifier) for the running step: the run's `configurable`, else the spec's."""
    try:
        configurable = get_config().get("configurable", {})
    except RuntimeError:  # outside a graph run
        configurable = {}
    return configurable.get("gain", spec.gain), configurable.get("modifier", spec.modifier)


def spec_chat_model(spec: AgentSpec, gain: float | None = None, modifier: str | None = None) -> BaseChatModel:
    """The spec's chat model with these knobs (the spec's own when None)."""
    return nodes.MetaSpiderChatModel(
        model=spec.model,
        backend=spec.backend,
        wrapper=spec.wrapper,
        modifier=modifier if modifier is not None else spec.modifier,
        gain=gain if gain is not None else spec.gain,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        n_ctx=spec.n_ctx,
    )


def cap_result(spec: AgentSpec, result: ToolMessage) -> ToolMessage:
    """The tool's result cut to the spec's `tool_result_tokens` tokens, with a visible marker."""
    backbone = nodes.backbone(spec)
    text = cap_tool_result(
        result.text, spec.tool_result_tokens, lambda t: backbone.tokenize(t, special=False), backbone.detokenize
    )
    return result if text == result.text else result.model_copy(update={"content": text})


def prompt_view(spec: AgentSpec, messages: list[BaseMessage]) -> list[BaseMessage]:
    """What the model answers from: the system prompt, past questions and answers, this turn's question with
    its tool results as context, trimmed (oldest turns first) so the answer still fits `n_ctx`."""
    backbone = nodes.backbone(spec)
    view = model_view(messages, spec.system_prompt)
    budget = history_budget(spec.n_ctx, spec.max_tokens)
    return trim_history(view, budget, lambda text: len(backbone.tokenize(text, special=False)))


def _thread_id() -> str | None:
    try:
        return get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:
        return None


def question_of(messages: list[BaseMessage]) -> str:
    """The current turn's question text."""
    return messages[current_turn_start(messages)].text


class SpecMiddleware(AgentMiddleware):
    """The outer middleware: the run's knobs, the tools that apply, and safe tool calls (see the module doc)."""

    def __init__(self, spec: AgentSpec, tools: list[AgentTool]):
        super().__init__()
        self.spec = spec
        self.agent_tools = tools

    def tools_left(self, messages: list[BaseMessage]) -> list[AgentTool]:
        """Tools that apply to the question and were not called yet this turn."""
        start = current_turn_start(messages)
        used = {m.name for m in messages[start:] if isinstance(m, ToolMessage)}
        question = messages[start].text
        return [t for t in self.agent_tools if t.tool.name not in used and t.applies(question)]

    def _prepare(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        gain, modifier = knobs(self.spec)
        left = {t.tool.name for t in self.tools_left(list(request.messages))}
        tools = [t for t in request.tools if getattr(t, "name", None) in left]
        return request.override(model=spec_chat_model(self.spec, gain, modifier), tools=tools)

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> Any:
        """Swap in the chat model with the run's knobs and offer only the tools left for this question."""
        return handler(self._prepare(request))

    async def awrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]
    ) -> Any:
        """The async form of `wrap_model_call`."""
        return await handler(self._prepare(request))

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolMessage | Command]
    ) -> ToolMessage | Command:
        """Run the tool; an exception becomes an error result (user tools may raise), a long result is cut."""
        try:
            result = handler(request)
        except Exception as exc:  # noqa: BLE001  (the model reads the error; the turn goes on)
            return _error_result(request, exc)
        return cap_result(self.spec, result) if isinstance(result, ToolMessage) else result

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command]]
    ) -> ToolMessage | Command:
        """The async form of `wrap_tool_call`."""
        try:
            result = await handler(request)
        except Exception as exc:  # noqa: BLE001  (the model reads the error; the turn goes on)
            return _error_result(request, exc)
        return cap_result(self.spec, result) if isinstance(result, ToolMessage) else result


def _error_result(request: ToolCallRequest, exc: Exception) -> ToolMessage:
    call = request.tool_call
    return ToolMessage(
        f"error: {type(exc).__name__}: {exc}", tool_call_id=call["id"], name=call["name"], status="error"
    )


class PromptMiddleware(AgentMiddleware):
    """The inner middleware: the prompt, the injection and the tool arguments (see the module doc)."""

    def __init__(
        self,
        spec: AgentSpec,
        tools: list[AgentTool],
        fallback: BaseChatModel | None = None,
        live_steps: dict[str, dict[str, Any]] | None = None,
    ):
        super().__init__()
        self.spec = spec
        self.by_name = {t.tool.name: t for t in tools}
        self.fallback = fallback
        self.live_steps = live_steps if live_steps is not None else {}
        """The routing of the model step running now, per thread: a turn cancelled while its answer streams
        has written nothing to the state yet, and still reports its u and route."""

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> Any:
        """Write the prompt, pick the injection, and complete the tool calls of the reply."""
        return self._finish(request, handler(self._prepare(request)))

    async def awrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]
    ) -> Any:
        """The async form of `wrap_model_call`."""
        return self._finish(request, await handler(self._prepare(request)))

    def _prepare(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        messages = list(request.messages)
        step = request.state.get("routing") or {}
        route = step.get("route")
        thread = _thread_id()
        if thread is not None:
            self.live_steps[thread] = step
        forced = request.tool_choice not in (None, "auto", "none")
        grounded = any(isinstance(m, ToolMessage) for m in messages[current_turn_start(messages) :])
        model = request.model
        if model is not self.fallback:
            update: dict[str, Any] = {}
            if forced or grounded or route == "escalate":
                update["gain"] = 0.0  # not the model's own answer: the Doubter would refuse in it
            if forced or route == "escalate":
                update["tags"] = [*(model.tags or []), TAG_NOSTREAM]  # a call or a draft: not printed
            model = model.model_copy(update=update) if update else model
        view = prompt_view(self.spec, messages)
        system = view[0] if view and isinstance(view[0], SystemMessage) else None
        return request.override(model=model, system_message=system, messages=[m for m in view if m is not system])

    def _finish(self, request: ModelRequest[Any], response: ModelResponse[Any]) -> ModelResponse[Any]:
        messages = list(request.messages)
        forced = request.tool_choice not in (None, "auto", "none")
        return ModelResponse(
            [self._complete(m, messages, forced, request) for m in response.result], response.structured_response
        )

    def _complete(self, message: BaseMessage, messages: list[BaseMessage], forced: bool, request: ModelRequest) -> Any:
        """The reply with each tool call's arguments completed from the question (per tool); a forced call that
        the token budget cut before any call parsed becomes a call with no arguments (the tool says what is
        missing)."""
        if not isinstance(message, AIMessage):
            return message
        calls = list(message.tool_calls)
        if forced and not calls and request.tools:
            calls = [nodes.empty_call(request.tools[0].name)]
        if not calls:
            return message
        question = question_of(messages)
        completed = []
        for call in calls:
            tool = self.by_name.get(call["name"])
            completed.append({**call, "args": tool.complete_args(call["args"], question)} if tool else call)
        return AIMessage(
            "",
            tool_calls=completed,
            response_metadata=message.response_metadata,
            usage_metadata=message.usage_metadata,
            id=message.id,
        )
