"""Messages → template dicts → prompt text in every template we ship, and tool calls ← text."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from tool_call_examples import ADDER, HISTORY, assert_history_rendered

from metaspider.core.backbones.chat_template import render_chat
from metaspider.core.models.model_files import CHATML_TEMPLATE
from metaspider.core.models.registry import GEMMA_CHAT_TEMPLATE
from metaspider.errors import MetaspiderError
from metaspider.runtime.chat_model import normalize_tool_choice
from metaspider.runtime.tool_calls import (
    call_schema,
    fold_tool_results,
    has_native_tool_calls,
    parse_tool_calls,
    protocol_prompt,
    text_of,
    to_template_messages,
    with_system_text,
    writes_call,
)

TEMPLATE_SOURCES = {"chatml": CHATML_TEMPLATE, "gemma": GEMMA_CHAT_TEMPLATE}
"""Our fallback and the registry's Gemma template; the templates inside model files are tested in
tests/integration_tests/runtime/test_tool_calls.py."""


@pytest.mark.parametrize("name", TEMPLATE_SOURCES)
def test_tool_history_renders_in_every_template(name):
    source = TEMPLATE_SOURCES[name]
    native = has_native_tool_calls(source)
    messages = to_template_messages(HISTORY, native)
    assert all(isinstance(m["content"], str) for m in messages)
    text = render_chat(source, messages, bos_token="", eos_token="", tools=[ADDER] if native else None)
    assert_history_rendered(text)
    assert not native


def test_protocol_rendering_names_the_tool_of_a_nameless_result():
    messages = to_template_messages(HISTORY, native=False)
    assert messages[2] == {
        "role": "assistant",
        "content": 'Let me add.\n{"name": "add", "arguments": {"a": 1, "b": 2}}',
    }
    assert messages[3] == {"role": "user", "content": "Result of tool add: 3"}
    assert messages[5]["content"] == "Result of tool add (error): Error: b must be positive"


def test_native_rendering_keeps_calls_structured():
    messages = to_template_messages(HISTORY, native=True)
    assert messages[4]["content"] == ""
    assert messages[4]["tool_calls"][0]["function"] == {"name": "add", "arguments": {"a": 3, "b": 0}}
    assert messages[5] == {"role": "tool", "content": "Error: b must be positive", "tool_call_id": "c2", "name": "add"}


def test_content_none_and_unsupported_blocks():
    assert text_of(None) == ""
    with pytest.raises(MetaspiderError, match="image"):
        text_of([{"type": "image", "base64": "xx", "mime_type": "image/png"}])


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "add", "arguments": {"a": 1, "b": 2}}',
        '```json\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n```',
        '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>',
        '{"name": "add", "parameters": {"a": 1, "b": 2}}',
        '{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}',
    ],
)
def test_calls_are_parsed_from_native_and_protocol_text(text):
    remaining, calls = parse_tool_calls(text, ["add"])
    assert remaining == ""
    assert [(c.name, c.args) for c in calls] == [("add", {"a": 1, "b": 2})]
    assert calls[0].id.startswith("call_")


def test_a_raw_line_break_inside_an_argument_string_is_still_a_call():
    """JSON forbids it, small models write it (smollm2-135m under the forced-call grammar)."""
    remaining, calls = parse_tool_calls('{"name": "calc", "arguments": {"expression": "1 +\n2"}}', ["calc"])
    assert remaining == "" and [c.args for c in calls] == [{"expression": "1 +\n2"}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{{"name": "riddle", "arguments": {"riddle": "What has keys?"}}}', True),
        ('{"name": "calculator", "arguments": {"expression": "1111', True),  # cut by max_tokens
        ('```json\n{"name": "add", "arguments": {}}\n```', True),
        ('<tool_call>\n{"name": "add", "arguments": {}}', True),
        ('The answer is {"name": "add", "arguments": {}}', False),
        ('{"name": "Ada", "born": 1815}', False),
        ("Paris.", False),
    ],
)
def test_writes_call(text, expected):
    assert writes_call(text) is expected


def test_fold_tool_results_writes_the_turns_results_into_its_question():
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("Earlier?"),
        AIMessage("Earlier answer."),
        HumanMessage("What is 2 + 3?"),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "c1", "type": "tool_call"}]),
        ToolMessage("5", tool_call_id="c1"),
        AIMessage("", tool_calls=[{"name": "lookup", "args": {"q": "x"}, "id": "c2", "type": "tool_call"}]),
        ToolMessage("not found", tool_call_id="c2", status="error"),
    ]
    folded = fold_tool_results(messages)
    assert folded[:3] == messages[:3] and len(folded) == 4
    assert folded[3].content == (
        'What is 2 + 3?\n\nTool results:\n- add({"a": 2, "b": 3}) returned: 5\n'
        '- lookup({"q": "x"}) (error) returned: not found'
    )
    assert fold_tool_results(messages[:4]) == messages[:4]  # no tool result: unchanged


def test_parallel_calls_and_text_around_them():
    text = 'Sure.\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>\n<tool_call>\n{"name": "add", "arguments": {"a": 5, "b": 6}}\n</tool_call>'
    remaining, calls = parse_tool_calls(text, ["add"])
    assert remaining == "Sure."
    assert [c.args["a"] for c in calls] == [1, 5]
    remaining, calls = parse_tool_calls(
        '{"name": "add", "arguments": {"a": 1, "b": 2}}\n{"name": "add", "arguments": {"a": 3, "b": 4}}', ["add"]
    )
    assert len(calls) == 2 and remaining == ""


def test_json_that_is_not_a_call_to_a_bound_tool_stays_text():
    for text in ['{"a": 1}', '{"name": "subtract", "arguments": {}}', "The answer is 3."]:
        assert parse_tool_calls(text, ["add"]) == (text, [])


def test_call_schema_pins_the_name_and_defaults_empty_arguments():
    empty = {
        "type": "function",
        "function": {"name": "now", "description": "", "parameters": {"type": "object", "properties": {}}},
    }
    schema = call_schema([ADDER, empty])
    names = [option["properties"]["name"]["const"] for option in schema["anyOf"]]
    assert names == ["add", "now"]
    assert schema["anyOf"][1]["properties"]["arguments"]["additionalProperties"] is False


def test_protocol_prompt_and_system_text():
    prompt = protocol_prompt([ADDER], "add")
    assert json.dumps(ADDER["function"]) in prompt and "must call the tool add" in prompt
    merged = with_system_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], "X")
    assert merged[0]["content"] == "Be brief.\n\nX" and len(merged) == 2
    assert with_system_text([{"role": "user", "content": "hi"}], "X")[0] == {"role": "system", "content": "X"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, "auto"),
        ("auto", "auto"),
        ("any", "any"),
        ("required", "any"),
        (True, "any"),
        ("none", "none"),
        ("add", "add"),
        ({"type": "function", "function": {"name": "add"}}, "add"),
        ({"type": "tool", "name": "add"}, "add"),
        ({"type": "any"}, "any"),
    ],
)
def test_tool_choice_forms(choice, expected):
    assert normalize_tool_choice(choice, ["add"]) == expected


def test_unknown_tool_choice_names_the_bound_tools():
    with pytest.raises(MetaspiderError, match=r"\['add'\]"):
        normalize_tool_choice("multiply", ["add"])


def test_streamed_text_holds_back_only_what_may_be_a_call():
    from metaspider.runtime.chat_model import _Holdback

    def stream(mode: str, pieces: list[str]) -> tuple[str, str, list]:
        holdback = _Holdback(mode)
        released = "".join(holdback.push(p) for p in pieces)
        rest, calls = holdback.finish(["add"])
        return released, rest, [c.name for c in calls]

    call = ["<tool", "_call>\n", '{"name": "add", "arguments": {"a": 1, "b": 2}}', "\n</tool_call>"]
    assert stream("native", ["Sure", ", adding.", " ", *call]) == ("Sure, adding. ", "", ["add"])
    assert stream("auto", [" ", "{", '"name": "add", "arguments": {}}']) == ("", "", ["add"])
    assert stream("auto", ["The", " answer", " {is} 3"]) == ("The answer {is} 3", "", [])
    assert stream("forced", ['{"name": "add", "arguments": {}}']) == ("", "", ["add"])
    assert stream("text", ['{"name": "add", "arguments": {}}']) == ('{"name": "add", "arguments": {}}', "", [])
