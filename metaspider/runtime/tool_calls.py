"""LangChain messages ↔ chat-template messages, and tool calls ↔ text.

Two tool-call formats:
- native: the model's chat template knows tools (Hermes/Qwen style `<tool_call>{json}</tool_call>`);
  tools go to the template and calls/results are rendered by it.
- protocol: every other template. The tools and a one-line JSON reply format are described in the
  system prompt; past calls and tool results are rendered as plain assistant/user text, so any
  template (even one that knows nothing but user/assistant turns) renders them.
Either way a call is the JSON object {"name": ..., "arguments": {...}}, which is also what the grammar
forces when a tool call is required."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage

from metaspider.errors import MetaspiderError

Message = dict[str, Any]

_NATIVE_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_IGNORED_BLOCKS = {"tool_use", "tool_call", "thinking", "reasoning", "redacted_thinking", "server_tool_call"}
_ARGUMENT_KEYS = ("arguments", "parameters", "args", "input")
_CALL_OPENING = re.compile(
    r'^(?:```(?:json)?\s*)?(?:<tool_call>\s*)?\{+\s*"name"\s*:\s*"[^"]*"\s*,\s*"(?:'
    + "|".join(_ARGUMENT_KEYS)
    + r')"\s*:'
)
_JSON = json.JSONDecoder(strict=False)
"""Lenient about raw control characters in strings, which small models write (and llama.cpp's
schema grammar lets through)."""


@dataclass(frozen=True)
class ToolCall:
    """A tool call parsed from the model's text: the name, the arguments and an id for the ToolMessage reply."""

    name: str
    args: dict[str, Any]
    id: str

    def as_langchain(self) -> dict[str, Any]:
        """The call in LangChain's `AIMessage.tool_calls` form."""
        return {"name": self.name, "args": self.args, "id": self.id, "type": "tool_call"}


def has_native_tool_calls(chat_template: str) -> bool:
    """Whether the chat template renders tools itself (Qwen-style `<tool_call>`), so tools need no prompt of ours."""
    return "<tool_call>" in chat_template and "tools" in chat_template


def new_call_id() -> str:
    """A fresh tool-call id in OpenAI's `call_...` form."""
    return f"call_{uuid.uuid4().hex[:24]}"


def text_of(content: str | list | None) -> str:
    """The text a template should see for LangChain content (a string, blocks, or nothing)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") not in _IGNORED_BLOCKS:
            raise MetaspiderError(
                f"content block of type {block.get('type')!r} is not supported: this model reads text only"
            )
    return "".join(parts)


def to_template_messages(messages: Sequence[BaseMessage], native: bool) -> list[Message]:
    """Plain dicts with string content for the Jinja chat template (never None, never a list)."""
    names_by_id: dict[str, str] = {}
    rendered: list[Message] = []
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                names_by_id[call.get("id") or ""] = call["name"]
            rendered.append(_assistant(message, native))
        elif isinstance(message, ToolMessage):
            name = message.name or names_by_id.get(message.tool_call_id, "tool")
            rendered.append(_tool_result(message, name, native))
        elif isinstance(message, SystemMessage):
            rendered.append({"role": "system", "content": text_of(message.content)})
        elif isinstance(message, HumanMessage):
            rendered.append({"role": "user", "content": text_of(message.content)})
        elif isinstance(message, ChatMessage):
            rendered.append({"role": message.role, "content": text_of(message.content)})
        else:
            raise MetaspiderError(f"unsupported message type {type(message).__name__}")
    return rendered


def tool_results(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Each tool result of `messages` with the call it answers: name, args, result, status."""
    calls: dict[str | None, dict[str, Any]] = {
        c.get("id"): dict(c) for m in messages if isinstance(m, AIMessage) for c in m.tool_calls
    }
    return [
        {
            "name": m.name or calls.get(m.tool_call_id, {}).get("name", "tool"),
            "args": calls.get(m.tool_call_id, {}).get("args", {}),
            "result": text_of(m.content),
            "status": m.status,
        }
        for m in messages
        if isinstance(m, ToolMessage)
    ]


def fold_tool_results(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The conversation with the current turn's tool calls and results written into its question as plain
    text, and the turn's assistant steps dropped: what a model is asked when, with the tools hidden, it keeps
    writing calls instead of answering from their results (it then answers from them as from any text)."""
    at = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    results = tool_results(messages[at + 1 :]) if at >= 0 else []
    if not results:
        return list(messages)
    lines = [
        f"- {r['name']}({json.dumps(r['args'], ensure_ascii=False)}){' (error)' if r['status'] == 'error' else ''}"
        f" returned: {r['result']}"
        for r in results
    ]
    question = text_of(messages[at].content)
    return [*messages[:at], HumanMessage(f"{question}\n\nTool results:\n" + "\n".join(lines))]


def _assistant(message: AIMessage, native: bool) -> Message:
    text = text_of(message.content)
    if not message.tool_calls:
        return {"role": "assistant", "content": text}
    if native:
        calls = [
            {"type": "function", "id": c.get("id"), "function": {"name": c["name"], "arguments": c["args"]}}
            for c in message.tool_calls
        ]
        return {"role": "assistant", "content": text, "tool_calls": calls}
    lines = [call_json(c["name"], c["args"]) for c in message.tool_calls]
    return {"role": "assistant", "content": "\n".join([text, *lines] if text else lines)}


def _tool_result(message: ToolMessage, name: str, native: bool) -> Message:
    text = text_of(message.content)
    if native:
        return {"role": "tool", "content": text, "tool_call_id": message.tool_call_id, "name": name}
    status = " (error)" if message.status == "error" else ""
    return {"role": "user", "content": f"Result of tool {name}{status}: {text}"}


_SCHEMA_KEY_ORDER = ("type", "properties", "required")


def template_tool(tool: dict) -> dict:
    """An OpenAI-format tool with its parameters' keys in the order Hugging Face's `get_json_schema` writes
    them (`type`, `properties`, `required`), the order native-format models saw in training. LangChain writes
    `properties` first, and qwen2.5-coder-0.5b then copies the schema (`{"properties": ...}`) as the call's
    arguments instead of filling them in."""
    function = dict(tool["function"])
    parameters = function.get("parameters")
    if isinstance(parameters, dict):
        ordered = {k: parameters[k] for k in _SCHEMA_KEY_ORDER if k in parameters}
        function["parameters"] = ordered | {k: v for k, v in parameters.items() if k not in ordered}
    return {**tool, "function": function}


def call_json(name: str, args: dict[str, Any]) -> str:
    """A tool call as the JSON object the model is asked to write."""
    return json.dumps({"name": name, "arguments": args}, ensure_ascii=False)


def protocol_prompt(tools: Sequence[dict], required: str | None) -> str:
    """System-prompt text that teaches a template without tool support how to call `tools`.

    `required` is None (the model may answer in text), "any", or the one tool name it must call."""
    specs = "\n".join(json.dumps(t["function"], ensure_ascii=False) for t in tools)
    if required is None:
        rule = "If a tool helps, reply with only this JSON object and nothing else; otherwise answer normally:"
    elif required == "any":
        rule = "You must call one of the tools. Reply with only this JSON object:"
    else:
        rule = f"You must call the tool {required}. Reply with only this JSON object:"
    return f"You can call these tools:\n{specs}\n{rule}\n" + '{"name": "<tool name>", "arguments": {<arguments>}}'


def with_system_text(messages: list[Message], text: str) -> list[Message]:
    """Append `text` to the system prompt, creating one if the conversation has none."""
    if messages and messages[0]["role"] == "system":
        first = dict(messages[0])
        first["content"] = f"{first['content']}\n\n{text}" if first["content"] else text
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def call_schema(tools: Sequence[dict]) -> dict:
    """The JSON schema of one call to one of `tools`, for the grammar that forces a call."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t["function"]["name"]},
                "arguments": _arguments_schema(t["function"].get("parameters")),
            },
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def _arguments_schema(parameters: dict | None) -> dict:
    if not parameters or not parameters.get("properties"):
        return {"type": "object", "properties": {}, "additionalProperties": False}
    return parameters


def parse_tool_calls(text: str, tool_names: Sequence[str], json_calls: bool = True) -> tuple[str, list[ToolCall]]:
    """(remaining text, calls): native `<tool_call>` blocks, else (with `json_calls`) a bare or fenced JSON
    call object in the text.

    Only calls to bound tools count, so ordinary JSON in an answer is left alone. A model whose template
    has a native call format is parsed with `json_calls=False`: its JSON outside `<tool_call>` is text
    (often an earlier call echoed back), not a new call."""
    native = [m.group(1) for m in _NATIVE_CALL.finditer(text)]
    if native:
        calls = [c for body in native for c in _calls_in(_loads(body), tool_names)]
        if calls:
            return _NATIVE_CALL.sub("", text).strip(), calls
    if not json_calls:
        return text, []
    decoder = _JSON
    for match in re.finditer(r"[\[{]", text):
        try:
            value, end = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        calls = _calls_in(value, tool_names)
        if calls:
            more, end = _following_calls(text, end, tool_names)
            before, after = text[: match.start()], text[end:]
            if before.rstrip().endswith("{"):
                # Qwen2.5's template shows the call format as `{{"name": ..., "arguments": ...}}`, and its
                # models copy the doubled braces (not always both closing ones): they wrap the call, they
                # are not text of the reply.
                before = before.rstrip()[:-1]
                after = after.lstrip()[1:] if after.lstrip().startswith("}") else after
            remaining = _strip_fence(before) + _strip_fence(after)
            return remaining.strip(), calls + more
    return text, []


def writes_call(text: str) -> bool:
    """Whether a reply opens with a tool call written out as text, to any tool and whole or cut short.

    Such a reply tried to call rather than answer: a call to a tool that was not offered (qwen2.5-coder-1.5b
    invents `{"name": "riddle", ...}` for "tell me a riddle"), a call after the tools were hidden, or a call
    cut by `max_tokens`. It is not an answer a user can read."""
    return _CALL_OPENING.match(text.strip()) is not None


def _following_calls(text: str, start: int, tool_names: Sequence[str]) -> tuple[list[ToolCall], int]:
    """Parallel calls in the protocol format: further call objects right after the first one."""
    decoder = _JSON
    calls: list[ToolCall] = []
    while True:
        at = len(text) - len(text[start:].lstrip(" \t\r\n,"))
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return calls, start
        found = _calls_in(value, tool_names)
        if not found:
            return calls, start
        calls, start = calls + found, end


def _loads(body: str) -> Any:
    try:
        return _JSON.raw_decode(body.strip())[0]
    except json.JSONDecodeError:
        return None


def _calls_in(value: Any, tool_names: Sequence[str]) -> list[ToolCall]:
    items = value if isinstance(value, list) else [value]
    calls: list[ToolCall] = []
    for item in items:
        if not isinstance(item, dict):
            return []
        name = item.get("name")
        if name is None and isinstance(item.get("function"), dict):
            item = item["function"]
            name = item.get("name")
        if name not in tool_names:
            return []
        args: Any = next((item[k] for k in _ARGUMENT_KEYS if k in item), {})
        if isinstance(args, str):
            args = _loads(args)
        if not isinstance(args, dict):
            return []
        calls.append(ToolCall(str(name), args, new_call_id()))
    return calls


def _strip_fence(text: str) -> str:
    return re.sub(r"```(?:json)?", "", text)
