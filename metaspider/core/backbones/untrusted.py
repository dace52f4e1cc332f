"""Prompt ids in which only the chat template can make control tokens.

A chat template's own markers (`<|im_start|>`, `<start_of_turn>`, ...) must become special tokens, but
text inside a message (a user's words, a tool result, a fetched web page) must not: otherwise a page
containing `<|im_start|>system` becomes a real role marker, i.e. prompt injection through any tool.

The template is rendered once with every message's content swapped for a sentinel; the text between
sentinels is the template's own and is tokenized with special tokens parsed, the contents without. A
sentinel is wrapped in spaces so that a template that trims the content (`| trim`) is seen doing so
and the content is trimmed the same way. When no content holds any special-token text, the prompt is
tokenized whole, exactly as before, so ordinary prompts keep their ids."""

from __future__ import annotations

import re
from collections.abc import Callable

from metaspider.core.backbones.chat_template import Message

Tokenize = Callable[[str, bool], list[int]]
"""(text, parse_special) → ids."""

_SENTINEL = re.compile(r"( ?)\ue000(\d+)\ue001( ?)")


def has_special_text(text: str, tokenize: Tokenize) -> bool:
    """Whether parsing special tokens changes how `text` tokenizes, i.e. it spells a control token."""
    return tokenize(text, True) != tokenize(text, False)


def untrusted_contents(messages: list[Message]) -> list[str]:
    """Every string content of `messages`, in order (text parts of multi-part contents included)."""
    found: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            found.append(content)
        elif isinstance(content, list):
            found += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return found


def safe_chat_ids(messages: list[Message], render: Callable[[list[Message]], str], tokenize: Tokenize) -> list[int]:
    """The prompt's ids with special tokens taken only from the template, never from message contents."""
    contents = untrusted_contents(messages)
    if not any(has_special_text(c, tokenize) for c in contents):
        return tokenize(render(messages), True)
    marked = _with_sentinels(messages)
    text = render(marked)
    ids: list[int] = []
    at = 0
    for match in _SENTINEL.finditer(text):
        lead, index, trail = match.group(1), int(match.group(2)), match.group(3)
        content = contents[index]
        content = content if lead else content.lstrip()
        content = content if trail else content.rstrip()
        ids += _template_part(text[at : match.start()], tokenize)
        ids += tokenize(content, False)
        at = match.end()
    ids += _template_part(text[at:], tokenize)
    return ids


def _template_part(text: str, tokenize: Tokenize) -> list[int]:
    return tokenize(text, True) if text else []


def _with_sentinels(messages: list[Message]) -> list[Message]:
    counter = iter(range(1 << 30))

    def mark() -> str:
        return f" \ue000{next(counter)}\ue001 "

    marked: list[Message] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            message = {**message, "content": mark()}
        elif isinstance(content, list):
            parts = [
                {**p, "text": mark()} if isinstance(p, dict) and isinstance(p.get("text"), str) else p for p in content
            ]
            message = {**message, "content": parts}
        marked.append(message)
    return marked
