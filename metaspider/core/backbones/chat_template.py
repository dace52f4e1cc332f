"""Chat messages → prompt text, rendered the same way for every backbone.

Both backbones render the model's own Jinja chat template with this one function and then tokenize
the text with special tokens parsed, so the same messages give the same token ids on Torch and on
llama.cpp (checked by `metaspider doctor`)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from metaspider.errors import MetaspiderError

Message = dict[str, Any]


def _raise(message: str) -> None:
    raise TemplateError(message)


@lru_cache(maxsize=16)
def _compiled(template: str) -> Template:
    """Compiling a template costs milliseconds, more than rendering it: once per template."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.filters["tojson"] = _tojson
    return env.from_string(template)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
    import json

    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


def render_chat(
    template: str,
    messages: list[Message],
    *,
    bos_token: str,
    eos_token: str,
    add_generation_prompt: bool = True,
    tools: list[dict] | None = None,
) -> str:
    """The prompt text up to and including the assistant header (the decision point)."""
    try:
        return _compiled(template).render(
            messages=messages,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
            tools=tools,
        )
    except TemplateError as exc:
        raise MetaspiderError(f"the model's chat template failed on these messages: {exc}") from None
