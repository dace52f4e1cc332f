"""MetaSpiderChatModel on the real default model: concurrency, streaming, metadata, tools, JSON."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from metaspider import MetaSpiderChatModel
from metaspider.core.backbones.base import SamplingParams
from metaspider.core.models.registry import DEFAULT_MODEL
from metaspider.core.wrapper.handle import SHIPPED_WRAPPERS
from metaspider.runtime.engine import get_engine

QUESTION = "What is the capital of Peru?"


def model(**overrides) -> MetaSpiderChatModel:
    return MetaSpiderChatModel(**{"n_threads": 1, "max_tokens": 24, **overrides})


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@tool
def get_time() -> str:
    """The current time."""
    return "noon"


class City(BaseModel):
    """A city and its country."""

    name: str = Field(description="the city")
    country: str = Field(description="its country")


def test_eight_threads_with_different_gains_equal_each_request_alone(random_wrapper):
    gains = [0.0, 1.0, 4.0, 8.0, 0.0, 1.0, 4.0, 8.0]
    llms = [model(wrapper=random_wrapper, gain=g, max_tokens=12) for g in gains]
    alone = [llm.invoke(QUESTION).content for llm in llms[:4]] * 2
    assert len(set(alone)) > 1, "the gain must change the text, or this test proves nothing"
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda llm: llm.invoke(QUESTION).content, llms))
    assert together == alone


def test_one_instance_from_many_threads_and_tasks(random_wrapper):
    llm = model(wrapper=random_wrapper, max_tokens=8)
    expected = llm.invoke(QUESTION).content
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda _: llm.invoke(QUESTION).content, range(4))) == [expected] * 4
        assert [m.content for m in llm.batch([QUESTION] * 3)] == [expected] * 3

    async def streamed() -> str:
        return "".join([c.content async for c in llm.astream(QUESTION)])

    async def all_at_once() -> list[str]:
        return await asyncio.gather(streamed(), streamed(), llm.ainvoke(QUESTION))

    first, second, third = asyncio.run(all_at_once())
    assert [first, second, third.content] == [expected] * 3


@pytest.mark.parametrize("with_wrapper", [False, True])
def test_uncertainty_equals_the_pipeline_score_on_invoke_and_stream(with_wrapper, random_wrapper):
    wrapper = random_wrapper if with_wrapper else None
    llm = model(wrapper=wrapper)
    pipeline = get_engine(DEFAULT_MODEL, n_threads=1).pipeline(wrapper, None, None)
    with pipeline.backbone.lock:
        expected = pipeline.run([{"role": "user", "content": QUESTION}], SamplingParams(max_tokens=24)).uncertainty
    message = llm.invoke(QUESTION)
    last = list(llm.stream(QUESTION))[-1]
    for metadata in (message.response_metadata, last.response_metadata):
        assert metadata["uncertainty"] == expected.as_dict()
        assert isinstance(metadata["uncertainty"]["score"], float)
    assert expected.decision == (
        "answer" if with_wrapper and expected.score < 0.5 else "refuse" if with_wrapper else "unassessed"
    )


def test_stream_is_token_by_token_and_matches_invoke():
    llm = model(max_tokens=16)
    chunks = list(llm.stream("Write a poem about the sea."))
    text_chunks = [c for c in chunks if c.content]
    assert len(text_chunks) >= 12  # one per token, but for pieces held back mid-character
    assert "".join(c.content for c in chunks) == llm.invoke("Write a poem about the sea.").content
    last = chunks[-1]
    assert last.chunk_position == "last"
    assert last.usage_metadata["output_tokens"] == 16
    assert last.usage_metadata["total_tokens"] == last.usage_metadata["input_tokens"] + 16
    assert last.response_metadata["finish_reason"] == "length"
    assert last.response_metadata["model_name"] == DEFAULT_MODEL
    assert all(c.usage_metadata is None for c in chunks[:-1])


def test_logprobs_in_openai_format():
    message = model(max_tokens=6).invoke(QUESTION, logprobs=True, top_logprobs=3)
    entries = message.response_metadata["logprobs"]["content"]
    assert len(entries) == message.usage_metadata["output_tokens"]
    assert "".join(e["token"] for e in entries) == message.content
    for entry in entries:
        assert entry["bytes"] == list(entry["token"].encode())
        assert entry["logprob"] <= 0
        assert len(entry["top_logprobs"]) == 3
        assert entry["top_logprobs"][0]["logprob"] >= entry["logprob"] - 1e-6
    assert "logprobs" not in model(max_tokens=4).invoke(QUESTION).response_metadata


@pytest.mark.parametrize(
    "choice", ["any", "required", "multiply", {"type": "function", "function": {"name": "multiply"}}]
)
def test_forced_tool_calls_always_parse(choice):
    llm = model(max_tokens=40).bind_tools([multiply, get_time], tool_choice=choice)
    message = llm.invoke("Hello!")
    assert len(message.tool_calls) >= 1
    call = message.tool_calls[0]
    assert call["name"] in ({"multiply", "get_time"} if choice in ("any", "required") else {"multiply"})
    if call["name"] == "multiply":
        assert set(call["args"]) == {"a", "b"} and all(isinstance(v, int) for v in call["args"].values())
    assert message.content == ""
    assert message.response_metadata["finish_reason"] == "tool_calls"


def test_forced_call_fits_the_token_budget():
    """Unbounded, the greedy 135M model loops inside the first string until max_tokens cuts it off."""
    llm = model(max_tokens=48)
    assert isinstance(llm.with_structured_output(City).invoke("Tell me about Lima."), City)
    assert isinstance(llm.with_structured_output(City, method="json_schema").invoke("Tell me about Lima."), City)


def test_tool_choice_none_never_calls():
    message = model().bind_tools([multiply], tool_choice="none").invoke("Multiply 3 by 4 with the tool.")
    assert message.tool_calls == []
    assert message.content


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_structured_output_methods(method):
    llm = model(max_tokens=60).with_structured_output(City.model_json_schema(), method=method)
    result = llm.invoke("Name a city in Peru as JSON with keys name and country.")
    assert isinstance(result, dict)
    if method != "json_mode":
        assert set(result) == {"name", "country"}


def test_structured_output_include_raw_keeps_the_message():
    out = model(max_tokens=40).with_structured_output(City, include_raw=True).invoke("Lima?")
    assert isinstance(out["parsed"], City)
    assert out["raw"].response_metadata["uncertainty"]["score"] is not None


def test_streamed_tool_call_is_not_leaked_as_content():
    chunks = list(model(max_tokens=40).bind_tools([multiply], tool_choice="multiply").stream("3 times 4?"))
    assert all(not c.content for c in chunks)
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert isinstance(full, AIMessageChunk)
    assert full.tool_calls[0]["name"] == "multiply"


def test_model_override_per_call_and_timeout():
    from metaspider.core.models.registry import resolve

    path = str(resolve(DEFAULT_MODEL))
    assert model(max_tokens=2).invoke(QUESTION, model=path).response_metadata["model_name"] == path
    with pytest.raises(TimeoutError):
        model(max_tokens=200, timeout=0.05).invoke("Write a long story.")


def test_torch_backend_with_a_forced_call():
    message = model(backend="torch", max_tokens=40).bind_tools([multiply], tool_choice="multiply").invoke("3 times 4?")
    assert message.tool_calls[0]["name"] == "multiply"
    assert message.response_metadata["uncertainty"]["score"] is not None


def test_shipped_wrapper():
    folder = resources.files("metaspider") / "wrappers" / SHIPPED_WRAPPERS[DEFAULT_MODEL]
    assert folder.is_dir(), f"the default model's wrapper is not shipped: {folder}"
    message = model(wrapper="default").invoke(QUESTION)
    uncertainty = message.response_metadata["uncertainty"]
    assert 0.0 <= uncertainty["score"] <= 1.0
    assert uncertainty["decision"] in ("answer", "refuse")
    assert uncertainty["threshold"] is not None


def test_unknown_call_argument_is_refused():
    from metaspider.errors import MetaspiderError

    with pytest.raises(MetaspiderError, match="temprature"):
        model().invoke(QUESTION, temprature=0.5)


def test_json_schema_answer_streams_token_by_token_and_parses():
    schema = City.model_json_schema()
    llm = model(max_tokens=40).bind(response_format={"type": "json_schema", "json_schema": {"schema": schema}})
    chunks = [c.content for c in llm.stream("Give me a JSON object describing Lima.")]
    assert len([c for c in chunks if c]) > 5
    assert set(json.loads("".join(chunks))) == {"name", "country"}


def test_naming_the_wrappers_own_modifier_keeps_its_trained_bias():
    from metaspider.core.wrapper.folder import load_manifest
    from metaspider.core.wrapper.handle import resolve_wrapper_path
    from metaspider.runtime.engine import get_engine

    trained = load_manifest(resolve_wrapper_path("default", "smollm2-135m")).modifier
    engine = get_engine("smollm2-135m")
    assert engine.pipeline("default", "doubter", None).modifier == trained
    assert engine.pipeline("default", "watchdog", None).modifier.name == "watchdog"


def test_an_assessed_u_drives_the_decision_of_the_shipped_wrapper():
    """`assessed_u` (what UncertaintyMiddleware passes): the reply's decision is taken on that u, with the
    shipped wrapper's own threshold, while pass 1 still reads the prompt."""
    llm = model(wrapper="default")
    sure = llm.invoke(QUESTION, assessed_u=0.05).response_metadata["uncertainty"]
    unsure = llm.invoke(QUESTION, assessed_u=0.95).response_metadata["uncertainty"]
    assert (sure["score"], sure["decision"]) == (0.05, "answer")
    assert (unsure["score"], unsure["decision"]) == (0.95, "refuse")


@pytest.mark.slow
def test_qwen_1_5b_with_the_tools_hidden_answers_from_the_results_instead_of_writing_a_call():
    """The answer step UncertaintyMiddleware makes after two forced calls (tools bound, `tool_choice="none"`):
    qwen2.5-coder-1.5b writes a third call as text on this conversation; the reply is an answer from the
    calculator's result."""
    import yaml
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    from metaspider.runtime.tool_calls import writes_call
    from metaspider.tools.calculator import calculator
    from metaspider.tools.knowledge_base import make_knowledge_base_tool

    repo = Path(__file__).resolve().parents[3]
    spec = yaml.safe_load((repo / "agents" / "qa.yaml").read_text(encoding="utf-8"))
    kb = make_knowledge_base_tool(repo / "agents" / "kb", top_k=3)
    calls = [("calculator", {"expression": "2177 * 58"}, "126266"), ("knowledge_base", {"query": "2177 * 58"}, None)]
    messages = [SystemMessage(spec["system_prompt"]), HumanMessage("What is 2177 * 58?")]
    for i, (name, args, result) in enumerate(calls):
        messages.append(AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"c{i}", "type": "tool_call"}]))
        messages.append(ToolMessage(result or f"no passage matches '{args['query']}'", tool_call_id=f"c{i}", name=name))
    llm = model(model="qwen2.5-coder-1.5b", max_tokens=128).bind_tools([calculator, kb], tool_choice="none")
    reply = llm.invoke(messages)
    assert not reply.tool_calls and not writes_call(reply.text), reply.text
    assert "126266" in reply.text.replace(",", ""), reply.text
