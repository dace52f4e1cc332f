"""OpenAI's chat-completions wire format as pydantic models: the request, the response, the streamed
chunk, the model list and the error body.

The request model is strict (unknown arguments and unsupported values are refused with a 400 that names
the parameter, as OpenAI does) so a client never silently gets something other than what it asked for.
The response models carry exactly OpenAI's fields plus one extra top-level field, `metaspider`, which
OpenAI's SDKs keep in `model_extra` and every other client ignores."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """Objects inside messages and tools: OpenAI adds fields to them over time, and ignoring an unknown
    field there cannot change what is generated."""

    model_config = ConfigDict(extra="ignore")


# --- request ---------------------------------------------------------------------------------------


class TextPart(_Open):
    """A text part of a message's content list."""

    type: Literal["text"]
    text: str


class OtherPart(_Open):
    """Any non-text part (image, audio, file): kept so the error can name it; the model reads text only."""

    type: str


ContentPart = Annotated[TextPart | OtherPart, Field(union_mode="left_to_right")]


class FunctionCall(_Open):
    """A function call as an assistant message states it: `arguments` is a JSON string."""

    name: str
    arguments: str = "{}"


class ToolCallSpec(_Open):
    """One tool call of an earlier assistant turn."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Open):
    """Instructions for the model (`developer` is OpenAI's newer name for the same role)."""

    role: Literal["system", "developer"]
    content: str | list[ContentPart]
    name: str | None = None


class UserMessage(_Open):
    """A user turn."""

    role: Literal["user"]
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(_Open):
    """An earlier assistant turn, possibly with the tool calls it made."""

    role: Literal["assistant"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallSpec] | None = None
    name: str | None = None
    refusal: str | None = None


class ToolMessage(_Open):
    """The result of one tool call, tied to it by `tool_call_id`."""

    role: Literal["tool"]
    content: str | list[ContentPart]
    tool_call_id: str


Message = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")]


class FunctionSpec(_Open):
    """A function the model may call: its name, what it does and its JSON-schema parameters."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Open):
    """A tool offered to the model (OpenAI's chat-completions tools are functions)."""

    type: Literal["function"] = "function"
    function: FunctionSpec


class NamedFunction(_Open):
    """The function a `tool_choice` object names."""

    name: str


class NamedToolChoice(_Open):
    """`tool_choice` forcing one named function."""

    type: Literal["function"] = "function"
    function: NamedFunction


class JsonSchemaSpec(_Open):
    """`response_format.json_schema`: the schema the reply must follow."""

    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    """`response_format`: free text, any JSON object, or JSON following a schema (grammar-constrained)."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type 'json_schema' needs a 'json_schema' object with a 'schema'")
        return self


class StreamOptions(_Strict):
    """`stream_options`: whether a last chunk reports token usage."""

    include_usage: bool = False


class RequestOptions(_Strict):
    """This server's own request field, `metaspider` (the openai SDK sends it with `extra_body`): the
    wrapper's knobs for this one request."""

    modifier: Literal["watchdog", "doubter", "none"] | None = None
    """watchdog: u is reported and nothing is injected; doubter: more refusals; None: the server's."""
    gain: float | None = Field(default=None, ge=-5.0, le=5.0)
    """Injection gain (1 = as trained, 0 = the bare model's text); None: the server's."""


class ChatCompletionRequest(_Strict):
    """The body of `POST /v1/chat/completions`.

    OpenAI parameters this server cannot honour (several choices, penalties, logit bias) are accepted
    at their neutral values only, so a client that sends the defaults explicitly still works."""

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    """None: the server's default (greedy unless `metaspider serve --temperature` says otherwise)."""
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    metaspider: RequestOptions | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only n=1 is supported: the model serves one request at a time")
        return value

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _no_penalty(cls, value: float) -> float:
        if value != 0:
            raise ValueError("penalties are not supported; leave it out or send 0")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _no_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value:
            raise ValueError("logit_bias is not supported; leave it out or send {}")
        return value

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("up to 4 non-empty stop strings")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise _ParamError("top_logprobs", "top_logprobs needs logprobs=true")
        if self.stream_options is not None and not self.stream:
            raise _ParamError("stream_options", "stream_options is only allowed with stream=true")
        if self.tool_choice is not None and self.tool_choice != "none" and not self.tools:
            raise _ParamError("tool_choice", "tool_choice needs tools")
        return self

    @property
    def completion_limit(self) -> int | None:
        """`max_completion_tokens`, or the older `max_tokens`."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class _ParamError(ValueError):
    """A cross-field check that knows which parameter is wrong (pydantic puts it at the model's root)."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


# --- response --------------------------------------------------------------------------------------


class TopLogprob(BaseModel):
    """One alternative token at a position."""

    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    """The chosen token at a position and the most likely alternatives."""

    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    """`choices[i].logprobs`."""

    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class CalledFunction(BaseModel):
    """A call the model made: the function's name and its arguments as a JSON string."""

    name: str
    arguments: str


class ToolCallOut(BaseModel):
    """A tool call in a completion."""

    id: str
    type: Literal["function"] = "function"
    function: CalledFunction


class ResponseMessage(BaseModel):
    """The assistant message of a non-streamed completion."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallOut] | None = None


class Choice(BaseModel):
    """`choices[0]` of a non-streamed completion."""

    index: int = 0
    message: ResponseMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"]


class Usage(BaseModel):
    """Token counts of one request."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class UncertaintyOut(BaseModel):
    """The wrapper's verdict on the answer: u = P(the answer is wrong) and what it implies."""

    score: float | None
    decision: str
    threshold: float | None
    modifier: str | None
    gain: float


class MetaspiderExtra(BaseModel):
    """The one field this server adds to OpenAI's objects."""

    uncertainty: UncertaintyOut


class ChatCompletion(BaseModel):
    """A non-streamed completion: OpenAI's `chat.completion` plus `metaspider`."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    metaspider: MetaspiderExtra


class ToolCallDelta(BaseModel):
    """A tool call in a streamed chunk (sent whole, in one chunk)."""

    index: int
    id: str
    type: Literal["function"] = "function"
    function: CalledFunction


class Delta(BaseModel):
    """What one chunk adds to the message."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(BaseModel):
    """`choices[0]` of a streamed chunk."""

    index: int = 0
    delta: Delta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"] | None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed completion: OpenAI's `chat.completion.chunk`; the chunk with
    the finish reason (and the usage chunk, when asked for) also carries `metaspider`."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    metaspider: MetaspiderExtra | None = None


class ModelCard(BaseModel):
    """One entry of `GET /v1/models`."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "metaspider"


class ModelList(BaseModel):
    """`GET /v1/models`."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    """OpenAI's error object: what went wrong, its kind, the parameter at fault and a code."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """Every error response's body: `{"error": {...}}`."""

    error: ErrorDetail
