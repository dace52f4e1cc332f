"""OpenAI request → LangChain messages and chat-model arguments; chat-model chunks → OpenAI completion,
chunks and metrics.

The server generates nothing itself: it hands the conversation to the chat model
(`MetaSpiderChatModel.astream`) and re-dresses what comes back. The chat model's last chunk carries the
finish reason, the usage, the tool calls and `response_metadata["uncertainty"]`; everything before it is
text (and logprobs) as decided."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages import SystemMessage as LcSystemMessage
from langchain_core.messages import ToolMessage as LcToolMessage

from metaspider.serve.errors import bad_request
from metaspider.serve.schemas import (
    AssistantMessage,
    CalledFunction,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    Message,
    MetaspiderExtra,
    ResponseMessage,
    SystemMessage,
    TextPart,
    TokenLogprob,
    ToolCallDelta,
    ToolCallOut,
    ToolMessage,
    UncertaintyOut,
    Usage,
    UserMessage,
)


def to_langchain(messages: list[Message]) -> list[BaseMessage]:
    """The conversation as LangChain messages; a 400 names the message part the model cannot read."""
    converted: list[BaseMessage] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if isinstance(message, SystemMessage):
            converted.append(LcSystemMessage(content=_text(message.content, where)))
        elif isinstance(message, UserMessage):
            converted.append(HumanMessage(content=_text(message.content, where)))
        elif isinstance(message, AssistantMessage):
            calls = [
                {
                    "name": c.function.name,
                    "args": _arguments(c.function.arguments, f"{where}.tool_calls[{j}]"),
                    "id": c.id,
                }
                for j, c in enumerate(message.tool_calls or [])
            ]
            converted.append(AIMessage(content=_text(message.content, where), tool_calls=calls))
        elif isinstance(message, ToolMessage):
            converted.append(LcToolMessage(content=_text(message.content, where), tool_call_id=message.tool_call_id))
    return converted


def _text(content: str | list | None, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for j, part in enumerate(content):
        if not isinstance(part, TextPart):
            raise bad_request(
                f"{where}.content[{j}].type",
                f"{where}.content[{j}]: content of type {part.type!r} is not supported; this model reads text only",
                "unsupported_content",
            )
        parts.append(part.text)
    return "".join(parts)


def _arguments(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"{where}.function.arguments", f"{where}.function.arguments is not valid JSON: {exc}"
        ) from None
    if not isinstance(value, dict):
        raise bad_request(f"{where}.function.arguments", f"{where}.function.arguments must be a JSON object")
    return value


def call_arguments(request: ChatCompletionRequest) -> dict[str, Any]:
    """The chat model's call arguments (tools, tool_choice, response_format, logprobs, top_logprobs)."""
    call: dict[str, Any] = {}
    if request.tools and request.tool_choice != "none":
        call["tools"] = [t.model_dump(exclude_none=True) for t in request.tools]
        choice = request.tool_choice or "auto"
        call["tool_choice"] = (
            "any" if choice == "required" else choice if isinstance(choice, str) else choice.function.name
        )
        names = [t.function.name for t in request.tools]
        if call["tool_choice"] not in ("auto", "any") and call["tool_choice"] not in names:
            raise bad_request(
                "tool_choice", f"tool_choice names {call['tool_choice']!r}, which is not among the tools {names}"
            )
    format_ = request.response_format
    if format_ is not None and format_.type != "text":
        spec: dict[str, Any] = {"type": format_.type}
        if format_.json_schema is not None:
            spec["json_schema"] = {"name": format_.json_schema.name, "schema": format_.json_schema.schema_}
        call["response_format"] = spec
    if request.logprobs:
        call["logprobs"] = True
        if request.top_logprobs:
            call["top_logprobs"] = request.top_logprobs
    return call


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


@dataclass
class Outcome:
    """What a finished request reports to metrics."""

    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    uncertainty: dict[str, Any] | None = None
    first_token_at: float | None = None
    finished_at: float | None = None


@dataclass
class ChunkMapper:
    """Turns the chat model's chunks into OpenAI objects, streamed (`chunks`) or whole (`completion`)."""

    model: str
    include_usage: bool = False
    id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    outcome: Outcome = field(default_factory=Outcome)
    _role_sent: bool = False
    _content: list[str] = field(default_factory=list)
    _logprobs: list[TokenLogprob] | None = None
    _calls: list[ToolCallOut] = field(default_factory=list)

    def chunks(self, message: AIMessageChunk) -> list[ChatCompletionChunk]:
        """The chunks to send for one chat-model chunk (none, while text is held back)."""
        out: list[ChatCompletionChunk] = []
        text = message.text
        logprobs = _logprobs_of(message)
        if text or logprobs:
            self._seen_text(text)
            out.append(self._chunk(Delta(role=self._role(), content=text), logprobs=logprobs))
        if not _is_last(message):
            return out
        calls = self._finish(message)
        if calls:
            deltas = [ToolCallDelta(index=i, id=c.id, function=c.function) for i, c in enumerate(calls)]
            out.append(self._chunk(Delta(role=self._role(), tool_calls=deltas)))
        extra = self._extra()
        out.append(self._chunk(Delta(role=self._role()), finish_reason=self.outcome.finish_reason, metaspider=extra))
        if self.include_usage:
            out.append(
                ChatCompletionChunk(
                    id=self.id,
                    created=self.created,
                    model=self.model,
                    choices=[],
                    usage=self._usage(),
                    metaspider=extra,
                )
            )
        return out

    def add(self, message: AIMessageChunk) -> None:
        """Accumulate one chat-model chunk for a non-streamed completion."""
        self._seen_text(message.text)
        logprobs = _logprobs_of(message)
        if logprobs:
            self._logprobs = (self._logprobs or []) + logprobs.content
        if _is_last(message):
            self._finish(message)

    def completion(self) -> ChatCompletion:
        """The whole completion, once the last chunk was added."""
        content = "".join(self._content)
        message = ResponseMessage(
            content=content if content or not self._calls else None, tool_calls=self._calls or None
        )
        logprobs = ChoiceLogprobs(content=self._logprobs) if self._logprobs is not None else None
        choice = Choice(message=message, logprobs=logprobs, finish_reason=self.outcome.finish_reason or "stop")
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[choice],
            usage=self._usage(),
            metaspider=self._extra(),
        )

    def _seen_text(self, text: str) -> None:
        if text:
            self._content.append(text)
            if self.outcome.first_token_at is None:
                self.outcome.first_token_at = time.perf_counter()

    def _finish(self, message: AIMessageChunk) -> list[ToolCallOut]:
        metadata = message.response_metadata
        usage = message.usage_metadata or {}
        self.outcome.finish_reason = metadata.get("finish_reason") or "stop"
        self.outcome.prompt_tokens = int(usage.get("input_tokens", 0))
        self.outcome.completion_tokens = int(usage.get("output_tokens", 0))
        self.outcome.uncertainty = metadata.get("uncertainty")
        self.outcome.finished_at = time.perf_counter()
        self._calls = [
            ToolCallOut(
                id=c.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                function=CalledFunction(name=c["name"] or "", arguments=c["args"] or "{}"),
            )
            for c in message.tool_call_chunks
        ]
        if self._calls:
            self.outcome.finish_reason = "tool_calls"
        return self._calls

    def _role(self) -> str | None:
        if self._role_sent:
            return None
        self._role_sent = True
        return "assistant"

    def _chunk(self, delta: Delta, **fields: Any) -> ChatCompletionChunk:
        logprobs = fields.pop("logprobs", None)
        choice = ChunkChoice(delta=delta, logprobs=logprobs, finish_reason=fields.pop("finish_reason", None))
        return ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=[choice], **fields)

    def _usage(self) -> Usage:
        o = self.outcome
        return Usage(
            prompt_tokens=o.prompt_tokens,
            completion_tokens=o.completion_tokens,
            total_tokens=o.prompt_tokens + o.completion_tokens,
        )

    def _extra(self) -> MetaspiderExtra:
        u = self.outcome.uncertainty or {}
        return MetaspiderExtra(
            uncertainty=UncertaintyOut(
                score=u.get("score"),
                decision=u.get("decision", "unassessed"),
                threshold=u.get("threshold"),
                modifier=u.get("modifier"),
                gain=u.get("gain", 0.0),
            )
        )


def _is_last(message: AIMessageChunk) -> bool:
    return "finish_reason" in message.response_metadata


def _logprobs_of(message: AIMessageChunk) -> ChoiceLogprobs | None:
    entries = (message.response_metadata.get("logprobs") or {}).get("content")
    if not entries:
        return None
    return ChoiceLogprobs(content=[TokenLogprob.model_validate(e) for e in entries])


def sse(payload: ChatCompletionChunk | dict[str, Any] | str) -> bytes:
    """One server-sent event; `[DONE]` ends the stream as in OpenAI's API."""
    if isinstance(payload, str):
        data = payload
    elif isinstance(payload, dict):
        data = json.dumps(payload, ensure_ascii=False)
    else:
        data = payload.model_dump_json()
    return f"data: {data}\n\n".encode()
