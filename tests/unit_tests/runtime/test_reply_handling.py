"""What the chat model makes of a reply: with a native call format, JSON is a call only before the turn's
first tool result (after it, an echo), a call written out to a tool not offered is asked again without
tools, a reply cut by max_tokens is "length" and makes no call, every
reply carries a numeric score, and `assess` gives the very record the answer reports."""

from __future__ import annotations

import math

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from metaspider import MetaSpiderChatModel, Uncertainty
from metaspider.core.models.model_files import CHATML_TEMPLATE
from metaspider.core.pipeline import first_token_doubt
from metaspider.errors import MetaspiderError

from .scripted_backbone import NATIVE_TEMPLATE, SURE, VOCAB, ScriptedBackbone, install


@tool
def secret(key: str) -> str:
    """Look up the secret stored under `key`."""
    return "42"


CALL_JSON = '{"name": "secret", "arguments": {"key": "x"}}'


def chat(monkeypatch: pytest.MonkeyPatch, reply: str, template: str | None = None, **fields) -> MetaSpiderChatModel:
    backbone = ScriptedBackbone(reply, template) if template else ScriptedBackbone(reply)
    return MetaSpiderChatModel(model=install(monkeypatch, backbone), **fields)


AFTER_A_RESULT = [
    HumanMessage("What is the secret?"),
    AIMessage("", tool_calls=[{"name": "secret", "args": {"key": "x"}, "id": "c1", "type": "tool_call"}]),
    ToolMessage("42", tool_call_id="c1"),
]


@pytest.mark.parametrize("reply", [CALL_JSON, f"```json\n{CALL_JSON}\n```", f"I would call {CALL_JSON}"])
def test_json_after_a_tool_result_is_text_when_the_template_has_its_own_call_format(monkeypatch, reply):
    message = chat(monkeypatch, reply, NATIVE_TEMPLATE).bind_tools([secret]).invoke(AFTER_A_RESULT)
    assert message.tool_calls == []
    assert message.content == reply
    assert message.response_metadata["finish_reason"] == "stop"


@pytest.mark.parametrize("reply", [CALL_JSON, f"```json\n{CALL_JSON}\n```"])
def test_json_before_any_tool_result_is_a_call_in_every_template(monkeypatch, reply):
    """Small models with a native format (qwen2.5-coder-0.5b) call tools with bare or fenced JSON."""
    for template in (NATIVE_TEMPLATE, None):
        message = chat(monkeypatch, reply, template).bind_tools([secret]).invoke("What is the secret?")
        assert [(c["name"], c["args"]) for c in message.tool_calls] == [("secret", {"key": "x"})]
        assert message.response_metadata["finish_reason"] == "tool_calls"


def test_a_new_question_after_an_earlier_turn_with_tools_may_call_again(monkeypatch):
    history = [*AFTER_A_RESULT, AIMessage("It is 42."), HumanMessage("And the secret under y?")]
    message = chat(monkeypatch, CALL_JSON, NATIVE_TEMPLATE).bind_tools([secret]).invoke(history)
    assert [c["name"] for c in message.tool_calls] == ["secret"]


def test_native_tag_is_still_a_call(monkeypatch):
    message = chat(monkeypatch, f"<tool_call>\n{CALL_JSON}\n</tool_call>", NATIVE_TEMPLATE).bind_tools([secret])
    reply = message.invoke("What is the secret?")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("secret", {"key": "x"})]
    assert reply.response_metadata["finish_reason"] == "tool_calls"


def test_json_after_a_tool_result_is_still_a_call_without_a_native_format(monkeypatch):
    """The protocol format of other templates is JSON itself: a new call after a result is a call."""
    other = '{"name": "secret", "arguments": {"key": "y"}}'
    message = chat(monkeypatch, other).bind_tools([secret]).invoke(AFTER_A_RESULT)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("secret", {"key": "y"})]


@pytest.mark.parametrize(
    ("reply", "template"),
    [
        (CALL_JSON, None),  # the same call again, in the protocol format
        (f"<tool_call>\n{CALL_JSON}\n</tool_call>", NATIVE_TEMPLATE),  # the same call again, natively
        (CALL_JSON, NATIVE_TEMPLATE),  # the call echoed as JSON text
        ("{" + CALL_JSON + "}", NATIVE_TEMPLATE),  # in the doubled braces of Qwen2.5's template
        ("", NATIVE_TEMPLATE),  # nothing at all
    ],
)
def test_a_reply_that_only_repeats_the_turns_call_is_asked_again_without_tools(monkeypatch, reply, template):
    """qwen2.5-coder-1.5b repeats its call after the result while the tools stay offered: the loop of
    `create_agent` would never end. The chat model asks once more with the tools hidden."""
    backbone = ScriptedBackbone(reply, template or CHATML_TEMPLATE, no_tools_reply="It is 42.")
    model = MetaSpiderChatModel(model=install(monkeypatch, backbone))
    message = model.bind_tools([secret]).invoke(AFTER_A_RESULT)
    assert message.content == "It is 42."
    assert message.tool_calls == []
    assert message.response_metadata["finish_reason"] == "stop"
    assert isinstance(message.response_metadata["uncertainty"]["score"], float)


@pytest.mark.parametrize(
    ("reply", "template"),
    [
        ('{{"name": "riddle", "arguments": {"riddle": "What has keys?"}}}', NATIVE_TEMPLATE),  # a tool not offered
        ('{"name": "riddle", "arguments": {"riddle": "What has keys?"}}', None),
        ('<tool_call>\n{"name": "riddle", "arguments": {}}\n</tool_call>', NATIVE_TEMPLATE),
    ],
)
def test_a_first_reply_calling_a_tool_not_offered_is_asked_again_without_tools(monkeypatch, reply, template):
    """Asked for a riddle with tools bound, qwen2.5-coder-1.5b may call an invented `riddle` tool: that JSON
    is no answer, so the chat model asks once more with the tools hidden."""
    backbone = ScriptedBackbone(reply, template or CHATML_TEMPLATE, no_tools_reply="A piano.")
    model = MetaSpiderChatModel(model=install(monkeypatch, backbone))
    message = model.bind_tools([secret]).invoke("Tell me a riddle.")
    assert message.content == "A piano."
    assert message.tool_calls == []
    assert message.response_metadata["finish_reason"] == "stop"


def test_a_first_call_cut_by_max_tokens_is_asked_again_without_tools(monkeypatch):
    reply = '{"name": "secret", "arguments": {"key": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'
    backbone = ScriptedBackbone(reply, NATIVE_TEMPLATE, no_tools_reply="It is 42.")
    model = MetaSpiderChatModel(model=install(monkeypatch, backbone), max_tokens=len(reply) - 5)
    message = model.bind_tools([secret]).invoke("What is the secret?")
    assert message.content == "It is 42."
    assert message.response_metadata["finish_reason"] == "stop"


def test_a_first_call_of_an_offered_tool_is_not_asked_again(monkeypatch):
    backbone = ScriptedBackbone(CALL_JSON, NATIVE_TEMPLATE, no_tools_reply="It is 42.")
    message = MetaSpiderChatModel(model=install(monkeypatch, backbone)).bind_tools([secret]).invoke("The secret?")
    assert [c["name"] for c in message.tool_calls] == ["secret"]


@pytest.mark.parametrize("reply", [CALL_JSON, "{" + CALL_JSON + "}", ""])
@pytest.mark.parametrize("hidden", ["tool_choice none", "no tools bound"])
def test_with_the_tools_hidden_a_reply_that_is_no_answer_is_asked_with_the_results_in_the_question(
    monkeypatch, reply, hidden
):
    """After two forced calls UncertaintyMiddleware hides the tools, and qwen2.5-coder-1.5b may write a third
    call as text or say nothing: the chat model asks once more with the turn's results in the question."""
    backbone = ScriptedBackbone(reply, NATIVE_TEMPLATE, folded_reply="It is 42.")
    model = MetaSpiderChatModel(model=install(monkeypatch, backbone))
    runnable = model.bind_tools([secret], tool_choice="none") if hidden == "tool_choice none" else model
    message = runnable.invoke(AFTER_A_RESULT)
    assert message.content == "It is 42."
    assert message.tool_calls == []
    folded = backbone.prompts[-1]
    assert 'What is the secret?\n\nTool results:\n- secret({"key": "x"}) returned: 42' in folded
    assert "<|im_start|>tool" not in folded


def test_with_the_tools_hidden_a_text_answer_streams_and_is_not_asked_again(monkeypatch):
    backbone = ScriptedBackbone("It is 42.", NATIVE_TEMPLATE, folded_reply="Something else.")
    model = MetaSpiderChatModel(model=install(monkeypatch, backbone))
    chunks = [c.content for c in model.stream(AFTER_A_RESULT)]
    assert "".join(chunks) == "It is 42." and len([c for c in chunks if c]) > 1
    assert not any("Tool results:" in p for p in backbone.prompts)


def test_a_first_call_in_doubled_braces_is_one_call_with_no_text(monkeypatch):
    doubled = "{" + CALL_JSON + "}"
    message = chat(monkeypatch, doubled, NATIVE_TEMPLATE).bind_tools([secret]).invoke("What is the secret?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("secret", {"key": "x"})]
    assert message.content == ""


@pytest.mark.parametrize(
    ("reply", "template"),
    [
        (CALL_JSON + "\n" + CALL_JSON, None),
        (f"<tool_call>\n{CALL_JSON}\n</tool_call>\n<tool_call>\n{CALL_JSON}", NATIVE_TEMPLATE),
    ],
)
def test_a_reply_cut_by_max_tokens_is_length_and_makes_no_call(monkeypatch, reply, template):
    cut = len(reply) - 10  # the first call is whole, the second is a fragment
    message = chat(monkeypatch, reply, template, max_tokens=cut).bind_tools([secret]).invoke("What is the secret?")
    assert message.response_metadata["finish_reason"] == "length"
    assert message.tool_calls == []
    assert message.content == reply[:cut]


def test_an_empty_reply_has_a_numeric_score(monkeypatch):
    message = chat(monkeypatch, "").invoke("Say nothing.")
    assert message.content == ""
    score = message.response_metadata["uncertainty"]["score"]
    assert isinstance(score, float) and 0.0 <= score <= 1.0
    assert score > 0.5  # the fake is unsure, so a route `score > 0.5` works on empty replies too


def test_assess_is_the_record_the_answer_reports(monkeypatch):
    llm = chat(monkeypatch, "Paris.")
    assessed = llm.assess("What is the capital of France?")
    assert isinstance(assessed, Uncertainty)
    logits = np.zeros(VOCAB)
    logits[1] = SURE  # "P", the reply's first token
    assert math.isclose(assessed.score, first_token_doubt(logits))
    assert assessed.decision == "unassessed"
    answer = llm.invoke("What is the capital of France?")
    assert answer.content == "Paris."
    assert answer.response_metadata["uncertainty"] == assessed.as_dict()


def test_assess_reads_the_prompt_the_answer_reads(monkeypatch):
    backbone = ScriptedBackbone("Paris.")
    llm = MetaSpiderChatModel(model=install(monkeypatch, backbone))
    llm.assess("What is the capital of France?", tools=[secret])
    with_tools = backbone.evaluated[-1]
    llm.assess("What is the capital of France?")
    assert backbone.evaluated[-1] < with_tools  # the tools' instructions are part of the prompt read
    llm.bind_tools([secret]).invoke("What is the capital of France?")
    assert backbone.evaluated[-1] == with_tools
    with pytest.raises(MetaspiderError, match="unsupported call argument"):
        llm.assess("hi", temperature=0.5)


def test_native_templates_see_the_parameters_in_the_trained_key_order(monkeypatch):
    """`type`, `properties`, `required` (Hugging Face's order), whatever order LangChain wrote."""
    backbone = ScriptedBackbone("ok", NATIVE_TEMPLATE)
    llm = MetaSpiderChatModel(model=install(monkeypatch, backbone))
    request = llm._request([HumanMessage("What is the secret?")], None, {"tools": [convert_to_openai_tool(secret)]})
    assert request.tools is not None
    assert list(request.tools[0]["function"]["parameters"]) == ["type", "properties", "required"]
    prompt = backbone.render(request.messages, request.tools)
    assert '"parameters": {"type": "object", "properties": {"key":' in prompt


@pytest.mark.parametrize("given", [0.0, 0.9])
def test_an_assessed_u_is_the_u_the_reply_reports(monkeypatch, given):
    """`assessed_u` (what UncertaintyMiddleware passes): the reply's score is that u, not a new reading."""
    message = chat(monkeypatch, "It is 42.").invoke("What is the secret?", assessed_u=given)
    assert message.response_metadata["uncertainty"]["score"] == given
