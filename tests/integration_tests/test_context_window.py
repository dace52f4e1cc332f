"""The context window on the real default model: a prompt too long gets one error with the numbers,
max_tokens is clamped to the room left, and the agent's view of a long thread with a huge tool result fits."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from metaspider.errors import ContextOverflowError
from metaspider.graph.agent_middleware import cap_result, prompt_view
from metaspider.graph.spec import AgentSpec
from metaspider.runtime.chat_model import MetaSpiderChatModel
from metaspider.runtime.engine import get_engine

N_CTX = 384


def test_a_prompt_longer_than_the_context_is_one_clear_error() -> None:
    llm = MetaSpiderChatModel(n_ctx=N_CTX, n_threads=1, max_tokens=8)
    with pytest.raises(
        ContextOverflowError, match=rf"the prompt is \d+ tokens but the context window .* holds {N_CTX}"
    ):
        llm.invoke("apple " * 1000)


def test_max_tokens_is_clamped_to_the_room_left() -> None:
    llm = MetaSpiderChatModel(n_ctx=N_CTX, n_threads=1, max_tokens=1000)
    backbone = get_engine(llm.model, llm.backend, N_CTX, 1).backbone
    text = "Repeat the word apple forever: " + "apple " * 300
    n_prompt = len(backbone.chat_ids([{"role": "user", "content": text}]))
    assert n_prompt < N_CTX
    message = llm.invoke(text)
    usage = message.usage_metadata
    assert usage is not None and usage["input_tokens"] + usage["output_tokens"] <= N_CTX


def test_the_agent_view_of_a_long_thread_fits_the_context() -> None:
    spec = AgentSpec(
        model="smollm2-135m",
        wrapper=None,
        policy={"answer_below": 0.5},
        n_ctx=512,
        max_tokens=64,
        tool_result_tokens=100,
    )
    backbone = get_engine(spec.model, spec.backend, spec.n_ctx).backbone
    messages: list = []
    for i in range(40):
        messages += [HumanMessage(f"Question {i}: what is {i} plus {i}?"), AIMessage(f"It is {2 * i}.")]
    page = "lorem ipsum dolor sit amet " * 20_000  # ~100,000 bytes, as http_get's default cap
    capped = cap_result(spec, ToolMessage(page, tool_call_id="c1", name="http_get"))
    assert capped.text.endswith("tokens cut]") and len(backbone.tokenize(capped.text)) < 130
    call = AIMessage("", tool_calls=[{"name": "http_get", "args": {"url": "u"}, "id": "c1", "type": "tool_call"}])
    messages += [HumanMessage("Summarise the page."), call, capped]
    view = prompt_view(spec, messages)
    roles = {"human": "user", "ai": "assistant", "system": "system"}
    ids = backbone.chat_ids([{"role": roles[m.type], "content": m.text} for m in view])
    assert len(ids) + spec.max_tokens <= spec.n_ctx
    assert "Summarise the page." in view[-1].text and "tokens cut]" in view[-1].text
