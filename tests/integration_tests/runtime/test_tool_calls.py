"""Tool-call histories rendered by the chat templates inside the model files: the default model's own (no
tool support) and a native Hermes/Qwen tool template. Each test pulls the model it reads (from PyPI
through the registry, a no-op when cached), so no test depends on another having downloaded it."""

from __future__ import annotations

import functools

import pytest
from tool_call_examples import ADDER, HISTORY, assert_history_rendered

from metaspider.core.backbones.chat_template import render_chat
from metaspider.core.models.model_files import chat_template
from metaspider.core.models.registry import resolve
from metaspider.runtime.tool_calls import has_native_tool_calls, to_template_messages

MODEL_TEMPLATES = ["smollm2-135m", "qwen2.5-coder-0.5b"]


@functools.cache
def template(name: str) -> str:
    """The chat template stored in the model's GGUF file, pulling the model if it is not cached."""
    return chat_template(name, resolve(name, quiet=True))


@pytest.mark.parametrize("name", MODEL_TEMPLATES)
def test_tool_history_renders_in_every_template(name):
    source = template(name)
    native = has_native_tool_calls(source)
    messages = to_template_messages(HISTORY, native)
    assert all(isinstance(m["content"], str) for m in messages)
    text = render_chat(source, messages, bos_token="", eos_token="", tools=[ADDER] if native else None)
    assert_history_rendered(text)
    assert native == (name == "qwen2.5-coder-0.5b")


def test_openai_style_assistant_message_with_content_none():
    from langchain_core.messages import convert_to_messages

    history = convert_to_messages(
        [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
                ],
            },
            {"role": "tool", "content": "3", "tool_call_id": "c1"},
        ]
    )
    for native in (False, True):
        messages = to_template_messages(history, native)
        assert messages[1]["content"] == ("" if native else '{"name": "add", "arguments": {"a": 1, "b": 2}}')
        text = render_chat(
            template("smollm2-135m" if not native else "qwen2.5-coder-0.5b"), messages, bos_token="", eos_token=""
        )
        assert "None" not in text and "3" in text
