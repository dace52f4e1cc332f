"""`MetaSpiderChatModel`: a LangChain chat model on a local GGUF that reports its own uncertainty.

Every answer goes through the two-pass pipeline (pass 1 reads u, pass 2 generates with the wrapper's
injection), so `response_metadata["uncertainty"]` is the very score the agent routes on. Requests run
on a shared engine per model and are serialised on its context lock; tokens stream as they are
decided, and the last chunk carries usage, the finish reason and the uncertainty."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any, Literal, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolCallChunk, ToolMessage
from langchain_core.output_parsers import JsonOutputKeyToolsParser, JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import PydanticToolsParser
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, Field

from metaspider.core.backbones.model_lock import (  # noqa: F401  (public: callers catch these)
    DEFAULT_IDLE_LIMIT,
    DEFAULT_WAIT_LIMIT,
    ModelBusyError,
    ModelReentryError,
    StreamAbandonedError,
)
from metaspider.core.names import Backend, ModifierName
from metaspider.core.pipeline import Uncertainty
from metaspider.errors import ContextOverflowError, MetaspiderError
from metaspider.runtime.engine import Engine, get_engine
from metaspider.runtime.tool_calls import (
    ToolCall,
    call_json,
    call_schema,
    fold_tool_results,
    has_native_tool_calls,
    parse_tool_calls,
    protocol_prompt,
    template_tool,
    to_template_messages,
    with_system_text,
    writes_call,
)

_CALL_KWARGS = {
    "tools",
    "tool_choice",
    "response_format",
    "logprobs",
    "top_logprobs",
    "model",
    "stream",
    "assessed_u",
}
_NATIVE_MARKER = "<tool_call>"
_PROTOCOL_STARTS = ("{", "[", "```", _NATIVE_MARKER)


class RequestTimeoutError(MetaspiderError, TimeoutError):
    """A running request went past the chat model's `timeout`."""


class MetaSpiderChatModel(BaseChatModel):
    """A drop-in LangChain chat model for a local model, with an uncertainty score on every answer.

    ```python
    from metaspider import MetaSpiderChatModel

    llm = MetaSpiderChatModel(wrapper="default", modifier="doubter")
    message = llm.invoke("What is the capital of Australia?")
    message.response_metadata["uncertainty"]  # {"score": 0.31, "decision": "answer", ...}
    ```
    """

    model: str = "smollm2-135m"
    """A registry name (`metaspider models list`) or a path to a GGUF file or Hugging Face folder."""
    backend: Backend = "llama_cpp"
    wrapper: str | None = None
    """A wrapper folder, "default" for the one shipped for `model`, or None for the bare model."""
    modifier: ModifierName | None = None
    """None: the wrapper's own default."""
    gain: float | None = None
    """Injection gain; None: the wrapper's own default (1 = as trained, 0 = the bare model)."""
    temperature: float = 0.0
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    """Nucleus sampling (only with temperature > 0)."""
    max_tokens: int = 256
    stop: list[str] | None = None
    n_ctx: int = 2048
    n_threads: int | None = None
    seed: int | None = None
    timeout: float | None = None
    """Seconds a request may take, waiting for the shared model included; exceeding it raises a
    `TimeoutError` (`ModelBusyError` while waiting, `RequestTimeoutError` once running). None: no limit on
    the run, and the model lock's default wait limit (`DEFAULT_WAIT_LIMIT`) on the wait.

    Requests on one model are serialised: one thread holds the model for a whole request, streaming
    included. Starting a second request from a thread whose earlier stream is still open raises
    `ModelReentryError`; a stream left unread while others wait loses the model after
    `DEFAULT_IDLE_LIMIT` seconds (`StreamAbandonedError` if resumed)."""
    max_retries: int = 0
    """Accepted for drop-in compatibility: a local model has no transient failures to retry."""
    streaming: bool = False
    logprobs: bool = False
    """Put OpenAI-format token logprobs in `response_metadata["logprobs"]`."""
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    @property
    def _llm_type(self) -> str:
        return "metaspider"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "wrapper": self.wrapper,
            "modifier": self.modifier,
            "gain": self.gain,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "n_ctx": self.n_ctx,
            "seed": self.seed,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="metaspider",
            ls_model_name=kwargs.get("model") or self.model,
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
        )
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # --- tools and structured output -------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: str | dict | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """`tool_choice`: "auto" (default), "none", "any"/"required"/True (some tool must be called), a
        tool name, or an OpenAI/Anthropic-style dict naming one. Forced calls are grammar-constrained."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        names = [t["function"]["name"] for t in formatted]
        choice = normalize_tool_choice(tool_choice, names)
        return cast(
            Runnable[LanguageModelInput, AIMessage], super().bind(tools=formatted, tool_choice=choice, **kwargs)
        )

    def with_structured_output(
        self,
        schema: dict | type,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict | Any]:
        """All three methods decode under a grammar, so the output always parses (`json_mode`: any JSON
        object; the prompt must say which keys)."""
        if kwargs:
            raise MetaspiderError(f"with_structured_output: unsupported argument(s) {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        if method == "function_calling":
            name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools([schema], tool_choice=name, ls_structured_output_format=trace)
            parser: Runnable = (
                PydanticToolsParser(tools=[cast(type[BaseModel], schema)], first_tool_only=True)
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            if method == "json_schema":
                response_format = {"type": "json_schema", "json_schema": {"schema": convert_to_json_schema(schema)}}
            else:
                response_format = {"type": "json_object"}
            llm = self.bind(response_format=response_format, ls_structured_output_format=trace)
            parser = (
                PydanticOutputParser(pydantic_object=cast(type[BaseModel], schema))
                if is_pydantic
                else JsonOutputParser()
            )
        else:
            raise MetaspiderError(
                f"with_structured_output: method must be function_calling, json_schema or json_mode, got {method!r}"
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence | None = None, **kwargs: Any
    ) -> int:
        """The prompt's length in the model's own tokens, as pass 1 will see it: chat template, tool
        instructions and `response_format` (given as call arguments) included. Lets a caller refuse a
        prompt that does not fit `n_ctx` before it waits for the model."""
        call = dict(kwargs)
        if tools:
            call["tools"] = [convert_to_openai_tool(t) for t in tools]
            names = [t["function"]["name"] for t in call["tools"]]
            call["tool_choice"] = normalize_tool_choice(call.get("tool_choice"), names)
        request = self._request(messages, None, call)
        return len(request.engine.backbone.chat_ids(request.messages, request.tools))

    # --- pass 1 ------------------------------------------------------------------------------------

    def assess(self, messages: LanguageModelInput, **kwargs: Any) -> Uncertainty:
        """Pass 1 alone: u for `messages` before anything is generated, the very `Uncertainty` record an
        answer to the same messages carries in `response_metadata["uncertainty"]` (the wrapper's score, or
        without a wrapper the baseline `first_token_doubt`). An agent routes on it before it lets the model
        answer (see `UncertaintyMiddleware`).

        `kwargs` are the call arguments the answer would get (`tools`, `tool_choice`, `response_format`), so
        the prompt read is the one the answer's pass 1 reads. The cache is left holding that prompt: an
        answer that follows on the same messages re-evaluates only the decision token, not the whole prompt
        (on different messages, only their common prefix is reused)."""
        unknown = set(kwargs) - _CALL_KWARGS
        if unknown:
            raise MetaspiderError(f"MetaSpiderChatModel.assess: unsupported call argument(s) {sorted(unknown)}")
        call = dict(kwargs)
        tools = call.get("tools")
        if tools:
            call["tools"] = [convert_to_openai_tool(t) for t in tools]
            names = [t["function"]["name"] for t in call["tools"]]
            call["tool_choice"] = normalize_tool_choice(call.get("tool_choice"), names)
        request = self._request(self._convert_input(messages).to_messages(), None, call)
        engine = request.engine
        lock = engine.lock
        lease = lock.acquire(timeout=self.timeout, on_revoke=engine.backbone.abandon)
        try:
            self._check_fits(request)
            return (
                engine.pipeline(self.wrapper, self.modifier, self.gain)
                .assess(request.messages, request.tools)
                .uncertainty
            )
        finally:
            lock.release(lease)

    def _check_fits(self, request: _Request) -> None:
        engine = request.engine
        n_prompt = len(engine.backbone.chat_ids(request.messages, request.tools))
        if n_prompt >= engine.n_ctx:
            raise ContextOverflowError(
                f"the prompt is {n_prompt} tokens but the context window of {request.model} holds {engine.n_ctx} "
                "(n_ctx): shorten the input or raise n_ctx"
            )

    # --- generation ---------------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(ChatGenerationChunk(message=c) for c in self._chunks(messages, stop, kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for message in self._chunks(messages, stop, kwargs):
            chunk = ChatGenerationChunk(message=message)
            if run_manager and message.content:
                run_manager.on_llm_new_token(message.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """A dedicated thread drives the generation: the context lock belongs to the thread that took it,
        so the tokens of one request cannot hop between executor threads."""
        async for message in _in_thread(lambda: self._chunks(messages, stop, kwargs)):
            chunk = ChatGenerationChunk(message=message)
            if run_manager and message.content:
                await run_manager.on_llm_new_token(message.text, chunk=chunk)
            yield chunk

    def _chunks(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> Generator[AIMessageChunk, None, None]:
        unknown = set(kwargs) - _CALL_KWARGS
        if unknown:
            raise MetaspiderError(f"MetaSpiderChatModel: unsupported call argument(s) {sorted(unknown)}")
        request = self._request(messages, stop, kwargs)
        deadline = time.monotonic() + self.timeout if self.timeout else None
        lock = request.engine.lock
        lease = lock.acquire(timeout=self.timeout, on_revoke=request.engine.backbone.abandon)
        try:
            for chunk in self._generate_locked(request, deadline):
                lease.park()
                yield chunk
                lease.resume()
        finally:
            lock.release(lease)

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> _Request:
        from metaspider.core.backbones.base import SamplingParams

        model = kwargs.get("model") or self.model
        engine = get_engine(model, self.backend, self.n_ctx, self.n_threads)
        tools = kwargs.get("tools") or []
        choice = kwargs.get("tool_choice") or "auto"
        native = has_native_tool_calls(engine.backbone.chat_template)
        rendered = to_template_messages(messages, native)
        top = kwargs.get("top_logprobs", self.top_logprobs)
        logprobs = bool(kwargs.get("logprobs", self.logprobs) or top)
        stops = stop if stop is not None else self.stop
        params = SamplingParams(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=tuple(stops or ()),
            top_logprobs=int(top or 0),
        )
        # A template with its own call format: JSON outside <tool_call> is a call only before this turn has
        # a tool result (small models such as qwen2.5-coder-0.5b call tools with bare JSON, then echo that
        # JSON after the result, which must not call again).
        json_calls = not native or not _turn_has_tool_results(messages)
        assessed = kwargs.get("assessed_u")
        request = _Request(engine, model, rendered, None, [], "text", None, params, logprobs, json_calls)
        request = replace(request, answered=_turn_calls(messages))
        if assessed is not None:
            request = replace(request, assessed_u=float(assessed))
        if tools and choice != "none":
            return replace(_with_tools(request, tools, choice, native), fallback=_folding(request, messages, native))
        response_format = kwargs.get("response_format")
        if response_format:
            return _with_response_format(request, response_format)
        return _folding(request, messages, native)

    def _generate_locked(self, request: _Request, deadline: float | None) -> Generator[AIMessageChunk, None, None]:
        """One reply. A reply that is no answer is not returned while the request has a fallback: with tools
        offered, the model is asked again with the tools hidden; after a tool result in this turn, with no
        tools offered, it is asked again with the turn's calls and results written into the question as plain
        text. No answer is a call written out as text (to a tool that was not offered, after the tools were
        hidden, or cut short), and, after a tool result, a reply that only repeats a call the turn already made
        or says nothing. (qwen2.5-coder-1.5b repeats its call after the result, turn after turn, when the tools
        stay offered, and a loop such as `create_agent`'s would never end; asked for a riddle, it calls an
        invented `riddle` tool; with the tools hidden after two calls, it writes a third call as text.)"""
        reply = yield from self._attempt(request, deadline)
        while request.fallback is not None and not reply.streamed and reply.is_no_answer(request):
            request = request.fallback
            reply = yield from self._attempt(request, deadline)
        yield reply.final

    def _attempt(self, request: _Request, deadline: float | None) -> Generator[AIMessageChunk, None, _Reply]:
        """Pass 1 and pass 2 of one prompt: streams the visible chunks, returns the reply's last chunk."""
        from metaspider.core.backbones.base import GenerationEnd

        engine = request.engine
        pipeline = engine.pipeline(self.wrapper, self.modifier, self.gain)
        self._check_fits(request)
        assessment = pipeline.assess(request.messages, request.tools, u=request.assessed_u)
        if deadline is not None and time.monotonic() > deadline:
            raise RequestTimeoutError(f"reading the prompt (pass 1) exceeded timeout={self.timeout}s")
        constraint = engine.grammar(request.grammar) if request.grammar else None
        # The answer gets the room the prompt leaves: generation never runs out of context mid-stream.
        room = engine.n_ctx - len(assessment.ids)
        params = replace(request.params, constraint=constraint, max_tokens=min(request.params.max_tokens, room))
        holdback = _Holdback(request.mode, request.json_calls)
        end: GenerationEnd | None = None
        tokens = []
        streamed = False
        with closing(pipeline.stream(assessment, params)) as stream:
            for item in stream:
                if isinstance(item, GenerationEnd):
                    end = item
                    break
                tokens.append(item)
                text = holdback.push(item.text)
                metadata = (
                    {"logprobs": {"content": [self._logprob(engine, item)]}}
                    if request.logprobs and item.token_id >= 0
                    else {}
                )
                if text or metadata:
                    streamed = streamed or bool(text)
                    yield AIMessageChunk(content=text, response_metadata=metadata)
                if deadline is not None and time.monotonic() > deadline:
                    raise RequestTimeoutError(f"generation exceeded timeout={self.timeout}s")
        assert end is not None
        content, calls = holdback.finish(request.tool_names, cut=end.finish_reason == "length")
        uncertainty = pipeline.after_answer(assessment, tokens)
        final = AIMessageChunk(
            content=content,
            tool_call_chunks=[_call_chunk(c, i) for i, c in enumerate(calls)],
            usage_metadata={
                "input_tokens": end.n_prompt_tokens,
                "output_tokens": end.n_generated,
                "total_tokens": end.n_prompt_tokens + end.n_generated,
            },
            response_metadata={
                "model_name": request.model,
                "model_provider": "metaspider",
                "finish_reason": "tool_calls" if calls else end.finish_reason,  # a cut reply has no calls (_Holdback)
                "uncertainty": uncertainty.as_dict(),
            },
            chunk_position="last",
        )
        return _Reply(streamed, final, content, calls)

    @staticmethod
    def _logprob(engine: Engine, token) -> dict[str, Any]:
        """OpenAI's chat-completions logprob entry for one token."""
        entry = _logprob_entry(engine, token.token_id, token.logprob)
        entry["top_logprobs"] = [_logprob_entry(engine, i, lp) for i, lp in token.top_logprobs]
        return entry


def normalize_tool_choice(tool_choice: str | dict | bool | None, names: Sequence[str]) -> str:
    """ "auto", "none", "any", or one tool's name."""
    if tool_choice is None or tool_choice == "auto" or tool_choice is False:
        return "auto"
    if tool_choice in ("any", "required") or tool_choice is True:
        return "any"
    if tool_choice == "none":
        return "none"
    if isinstance(tool_choice, dict):
        kind = tool_choice.get("type")
        if kind in ("any", "required", "auto", "none"):
            return normalize_tool_choice(kind, names)
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        return normalize_tool_choice(name, names) if name else _bad_choice(tool_choice, names)
    if isinstance(tool_choice, str) and tool_choice in names:
        return tool_choice
    return _bad_choice(tool_choice, names)


def _bad_choice(tool_choice: Any, names: Sequence[str]) -> str:
    raise MetaspiderError(
        f"tool_choice={tool_choice!r}: expected 'auto', 'none', 'any', 'required' or one of the bound tools {list(names)}"
    )


@dataclass
class _Request:
    engine: Engine
    model: str
    messages: list[dict]
    tools: list[dict] | None
    """Given to the chat template (native tool format only)."""
    tool_names: list[str]
    mode: Literal["text", "auto", "native", "forced"]
    grammar: str | None
    params: Any
    logprobs: bool
    json_calls: bool = True
    """Whether a bare or fenced JSON call object in the reply is a call (see `_Holdback`)."""
    fallback: _Request | None = None
    """What is asked when the reply is no answer (`_Reply.is_no_answer`): the same request with no tools
    offered, and after that, once the turn has a tool result, the one with the results in the question."""
    answered: tuple[str, ...] = ()
    """The calls this turn has made already, as `call_json` text (empty before its first tool result)."""
    assessed_u: float | None = None
    """u already assessed for this turn (the `assessed_u` call argument): the decision and the Doubter use it."""


@dataclass
class _Reply:
    streamed: bool
    """Whether any of the reply's text was streamed already (then it cannot be taken back)."""
    final: AIMessageChunk
    content: str
    calls: list[ToolCall]

    def is_no_answer(self, request: _Request) -> bool:
        """Whether the reply is no answer: a call written out as text (to a tool not offered, cut short, or,
        after a tool result, outside the template's own call format, which is not a call then); and after a
        tool result also an empty reply or one that only makes calls the turn made already."""
        if self.calls:
            repeated = all(call_json(c.name, c.args) in request.answered for c in self.calls)
            return bool(request.answered) and not self.content.strip() and repeated
        if writes_call(self.content):
            return True
        if not request.answered:
            return False
        text, _ = parse_tool_calls(self.content, request.tool_names, json_calls=True)
        return not text.strip()


def _with_tools(request: _Request, tools: list[dict], choice: str, native: bool) -> _Request:
    from metaspider.runtime.constrained import schema_grammar

    names = [t["function"]["name"] for t in tools]
    forced = None if choice == "auto" else choice
    messages = request.messages
    if not native:
        messages = with_system_text(messages, protocol_prompt(tools, forced))
    elif forced:
        target = "one of the tools" if forced == "any" else f"the tool {forced}"
        messages = with_system_text(messages, f"You must call {target}.")
    grammar = None
    if forced:
        allowed = tools if forced == "any" else [t for t in tools if t["function"]["name"] == forced]
        grammar = schema_grammar(call_schema(allowed), request.params.max_tokens)
    mode: Literal["auto", "native", "forced"] = "forced" if forced else ("native" if native else "auto")
    return replace(
        request,
        messages=messages,
        tools=[template_tool(t) for t in tools] if native else None,
        tool_names=names,
        mode=mode,
        grammar=grammar,
    )


def _folding(request: _Request, messages: Sequence[BaseMessage], native: bool) -> _Request:
    """A request without tools, given the fallback of the same conversation with this turn's tool calls and
    results written into its question (`fold_tool_results`), when the turn has a tool result. Its replies
    are held back while they start like JSON, so one that writes a call out can still be asked again."""
    if not _turn_has_tool_results(messages):
        return request
    folded = replace(request, messages=to_template_messages(fold_tool_results(messages), native), answered=())
    return replace(request, mode="auto", fallback=folded)


def _with_response_format(request: _Request, response_format: dict) -> _Request:
    from metaspider.runtime.constrained import json_object_grammar, schema_grammar

    kind = response_format.get("type")
    if kind == "json_object":
        return replace(
            request,
            messages=with_system_text(request.messages, "Reply with only a JSON object."),
            grammar=json_object_grammar(request.params.max_tokens),
        )
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema", spec)
        instruction = f"Reply with only a JSON object that follows this JSON schema: {json.dumps(schema)}"
        return replace(
            request,
            messages=with_system_text(request.messages, instruction),
            grammar=schema_grammar(schema, request.params.max_tokens),
        )
    raise MetaspiderError(f"response_format type must be 'json_object' or 'json_schema', got {kind!r}")


class _Holdback:
    """Holds back text that may turn out to be a tool call, so calls never leak into streamed content.

    `auto`: a reply that starts like a call (JSON, a code fence) is held until the end. `native`: the
    template has its own call format; a `<tool_call>` tag (at the start or later) holds text, and so does a
    reply starting like JSON while `json_calls` (no tool result yet in this turn). Once the turn holds a
    tool result, JSON in the reply stays text: a model echoing a call's JSON does not call again.
    `forced`: all of it (the grammar writes one JSON call). `text`: nothing."""

    def __init__(self, mode: str, json_calls: bool = True):
        self._mode = mode
        self._held = ""
        self._at_start = mode != "text"
        self._json_calls = json_calls or mode == "forced"
        # JSON after a tool result is held too (it may echo a call, see `_Reply.repeats`), but it is not a call.
        self._starts = _PROTOCOL_STARTS

    def push(self, text: str) -> str:
        if self._mode == "text":
            return text
        self._held += text
        if self._mode == "forced":
            return ""
        if self._at_start:
            head = self._held.lstrip()
            if not head or any(p.startswith(head) or head.startswith(p) for p in self._starts):
                return ""
            self._at_start = False
        if self._mode == "native":
            return self._release_before_marker()
        released, self._held = self._held, ""
        return released

    def _release_before_marker(self) -> str:
        at = self._held.find(_NATIVE_MARKER)
        if at == -1:
            at = next((i for i in range(len(self._held)) if _NATIVE_MARKER.startswith(self._held[i:])), len(self._held))
        released, self._held = self._held[:at], self._held[at:]
        return released

    def finish(self, tool_names: Sequence[str], cut: bool = False) -> tuple[str, list[ToolCall]]:
        """The held text (what remains of it once calls are taken out) and the calls found in it.

        `cut`: generation stopped at `max_tokens`. A reply the model did not finish makes no calls (its
        text is returned as it is, and the finish reason says "length"), except under `forced`, where the
        grammar closes the call within the token budget."""
        if not self._held or not tool_names or (cut and self._mode != "forced"):
            return self._held, []
        return parse_tool_calls(self._held, tool_names, json_calls=self._json_calls)


def _turn_calls(messages: Sequence[BaseMessage]) -> tuple[str, ...]:
    """The tool calls made since the last human message, as `call_json` text (empty before any result)."""
    calls: list[str] = []
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, AIMessage):
            calls += [call_json(c["name"], c["args"]) for c in message.tool_calls]
    return tuple(calls) if _turn_has_tool_results(messages) else ()


def _turn_has_tool_results(messages: Sequence[BaseMessage]) -> bool:
    """Whether a tool result follows the last human message (the current turn has used a tool)."""
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            return True
        if isinstance(message, HumanMessage):
            return False
    return False


def _call_chunk(call: ToolCall, index: int) -> ToolCallChunk:
    args = json.dumps(call.args, ensure_ascii=False)
    return ToolCallChunk(name=call.name, args=args, id=call.id, index=index, type="tool_call_chunk")


def _logprob_entry(engine: Engine, token_id: int, logprob: float) -> dict[str, Any]:
    text = engine.backbone.detokenize([token_id])
    return {"token": text, "bytes": list(text.encode("utf-8")), "logprob": logprob}


async def _in_thread(make: Callable[[], Generator[AIMessageChunk, None, None]]) -> AsyncIterator[AIMessageChunk]:
    """Iterate a blocking generator on its own thread, handing items to the event loop as they come."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stopped = threading.Event()
    done = object()

    def produce() -> None:
        try:
            with closing(make()) as items:
                for item in items:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                    if stopped.is_set():
                        break
        except BaseException as exc:  # handed to the awaiting task below
            loop.call_soon_threadsafe(queue.put_nowait, _Failure(exc))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    worker = threading.Thread(target=produce, name="metaspider-stream", daemon=True)
    worker.start()
    try:
        while (item := await queue.get()) is not done:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stopped.set()


@dataclass
class _Failure:
    error: BaseException
