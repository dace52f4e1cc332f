"""`metaspider serve` as a real process on 127.0.0.1 (smollm2-135m, its shipped wrapper, one thread),
driven by real clients, unchanged: the openai SDK (sync, async, streaming, tools, response_format,
logprobs) reading the uncertainty from `model_extra`, and langchain-openai's `ChatOpenAI` inside
LangChain's `create_agent` with a tool. Errors are checked over HTTP as a client sees them."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

MODEL = "smollm2-135m"
KEY = "test-key-7d1e"
DECISIONS = {"answer", "refuse"}

LONG_JSON = {
    "type": "json_schema",
    "json_schema": {
        "name": "numbers",
        "schema": {
            "type": "object",
            "properties": {"numbers": {"type": "array", "items": {"type": "integer"}, "minItems": 400}},
            "required": ["numbers"],
        },
    },
}
"""A reply the grammar keeps going for well over a thousand tokens (tens of seconds on one thread)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """The running server, and what its client saw while the model was loading."""

    def __init__(
        self,
        url: str,
        process: subprocess.Popen,
        loading_health: httpx.Response | None,
        loading_chat: httpx.Response | None,
    ):
        self.url, self.process = url, process
        self.loading_health, self.loading_chat = loading_health, loading_chat

    def chat(self, **body) -> httpx.Response:
        payload = {"model": MODEL, "messages": [{"role": "user", "content": "What is the capital of Peru?"}], **body}
        return httpx.post(
            f"{self.url}/v1/chat/completions", json=payload, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
        )

    def metric(self, name: str) -> float:
        for line in httpx.get(f"{self.url}/metrics").text.splitlines():
            if line.split(" ")[0] == name:
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Served:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("serve") / "server.log"
    command = [
        str(Path(sys.executable).parent / "metaspider"),
        "serve",
        "--model",
        MODEL,
        "--wrapper",
        "default",
        "--threads",
        "1",
        "--port",
        str(port),
        "--api-key-env",
        "METASPIDER_TEST_KEY",
        "--max-queue",
        "1",
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "METASPIDER_TEST_KEY": KEY}
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    loading_health = loading_chat = None
    deadline = time.monotonic() + 120
    try:
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not ready in 120 s:\n{log.read_text()}"
            try:
                health = httpx.get(f"{url}/health", timeout=5)
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            if health.status_code == 200:
                break
            if loading_health is None:
                loading_health = health
                loading_chat = Served(url, process, None, None).chat()
            time.sleep(0.02)
        yield Served(url, process, loading_health, loading_chat)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)


def _check_uncertainty(extra: dict | None) -> dict:
    assert extra is not None, "no metaspider field"
    u = extra["metaspider"]["uncertainty"]
    assert 0.0 <= u["score"] <= 1.0 and u["decision"] in DECISIONS
    assert u["threshold"] is not None and u["modifier"] == "doubter" and u["gain"] == 1.0
    return u


def test_503_while_loading(server):
    assert server.loading_health is not None and server.loading_health.status_code == 503
    assert server.loading_health.json()["status"] == "loading"
    assert server.loading_chat is not None
    assert server.loading_chat.status_code in (503, 200)  # the model may finish loading in between
    if server.loading_chat.status_code == 503:
        assert int(server.loading_chat.headers["retry-after"]) >= 1
        assert server.loading_chat.json()["error"]["code"] == "model_loading"


def test_sdk_sync_completion_carries_uncertainty(client):
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the capital of Peru?"}]
    )
    _check_uncertainty(completion.model_extra)
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content and choice.finish_reason in ("stop", "length")
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    if _check_uncertainty(completion.model_extra)["decision"] == "answer":
        assert "lima" in choice.message.content.lower()


def test_sdk_models_list(client):
    assert [m.id for m in client.models.list()] == [MODEL]


async def test_sdk_async_concurrent_requests(server):
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    questions = ["What is the capital of Japan?", "What is the capital of France?"]
    completions = await asyncio.gather(
        *(
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": q}], max_tokens=24)
            for q in questions
        )
    )
    for completion in completions:
        _check_uncertainty(completion.model_extra)
        assert completion.choices[0].message.content


def test_sdk_streaming_with_usage(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of Peru?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    _check_uncertainty(finals[0].model_extra)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    whole = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the capital of Peru?"}]
    )
    assert whole.choices[0].message.content.split()[:2] == text.split()[:2]  # greedy: the same answer either way


async def test_sdk_async_streaming(server):
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Name a color."}], stream=True, max_tokens=16
    )
    extras = [c.model_extra.get("metaspider") async for c in stream]
    assert extras[-1] is not None and extras[-1]["uncertainty"]["decision"] in DECISIONS


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_sdk_tool_call(client):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    _check_uncertainty(completion.model_extra)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    assert isinstance(json.loads(call.function.arguments)["city"], str)


def test_sdk_response_format(client):
    schema = {"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"]}
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of Peru?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
    )
    _check_uncertainty(completion.model_extra)
    assert isinstance(json.loads(completion.choices[0].message.content)["capital"], str)
    anything = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Peru in JSON."}],
        response_format={"type": "json_object"},
        max_tokens=120,
    )
    assert isinstance(json.loads(anything.choices[0].message.content), dict)


def test_sdk_logprobs(client):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of Peru?"}],
        logprobs=True,
        top_logprobs=2,
        max_tokens=5,
    )
    entries = completion.choices[0].logprobs.content
    assert 1 <= len(entries) <= 5
    for entry in entries:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert entry.logprob <= entry.top_logprobs[0].logprob + 1e-6


def test_langchain_openai_agent_uses_the_tool(server):
    """LangChain's create_agent drives the server through ChatOpenAI, unchanged. The middleware is the
    client's prompt policy for a 135M model (as the project's own agent does it): require the tool call
    first, then ask the question again with the tool's result as context; the read-only watchdog (sent
    as the `metaspider` request field) keeps the Doubter from refusing the arithmetic."""
    from langchain.agents import create_agent
    from langchain.agents.middleware import wrap_model_call
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @wrap_model_call
    def tool_then_answer(request, handler):
        results = [m for m in request.messages if isinstance(m, ToolMessage)]
        if not results:
            return handler(request.override(tool_choice="required"))
        question = next(m for m in request.messages if isinstance(m, HumanMessage)).text
        calls = {c["id"]: c for m in request.messages if isinstance(m, AIMessage) for c in m.tool_calls}
        context = "\n".join("add: {a} + {b} = ".format(**calls[r.tool_call_id]["args"]) + r.text for r in results)
        return handler(
            request.override(
                messages=[HumanMessage(f"Context:\n{context}\n\nQuestion: {question}")], tool_choice="none"
            )
        )

    llm = ChatOpenAI(
        model=MODEL,
        base_url=f"{server.url}/v1",
        api_key=KEY,
        temperature=0,
        max_retries=0,
        max_tokens=64,
        extra_body={"metaspider": {"modifier": "watchdog"}},
    )
    agent = create_agent(llm, tools=[add], middleware=[tool_then_answer])
    state = agent.invoke({"messages": [{"role": "user", "content": "What is 17 + 25?"}]}, {"recursion_limit": 8})
    transcript = [(m.type, m.text, getattr(m, "tool_calls", None)) for m in state["messages"]]
    results = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert results and results[0].name == "add" and results[0].status != "error", transcript
    call = next(m for m in state["messages"] if m.type == "ai" and m.tool_calls).tool_calls[0]
    assert isinstance(call["args"]["a"], int) and isinstance(call["args"]["b"], int), transcript
    assert results[0].content == str(call["args"]["a"] + call["args"]["b"]), transcript  # the tool really ran
    final = state["messages"][-1]
    assert final.type == "ai" and not final.tool_calls, transcript
    assert results[0].content in final.text.replace(",", ""), transcript  # the answer uses the tool's result


def test_errors_as_a_client_sees_them(server, client):
    unknown = client.with_options(max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        unknown.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature=7)
    assert bad.value.body["param"] == "temperature"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
    no_key = httpx.post(
        f"{server.url}/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Peru " * 3000}])
    error = too_long.value.body
    assert error["code"] == "context_length_exceeded" and "2048" in error["message"]
    prompt_tokens = int(error["message"].split("resulted in ")[1].split(" ")[0])
    assert prompt_tokens > 2048


@pytest.mark.slow
def test_full_queue_is_429_and_a_disconnect_frees_the_model(server):
    """--max-queue 1: one long request runs, one waits, the third gets 429. Then both clients hang up and
    the model is free for the next request at once, not after the long generations."""
    cancelled_before = server.metric("metaspider_requests_cancelled_total")
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "List numbers."}],
        "response_format": LONG_JSON,
        "max_tokens": 1500,
    }
    running = _raw_request(server, {**body, "stream": True})
    assert running.recv(4096).startswith(b"HTTP/1.1 200")  # headers, then tokens as they come
    waiting = _raw_request(server, body)
    _wait(lambda: server.metric("metaspider_queue_depth") == 1)
    rejected = server.chat(max_tokens=4)
    assert rejected.status_code == 429
    assert int(rejected.headers["retry-after"]) >= 1 and rejected.json()["error"]["code"] == "queue_full"

    start = time.monotonic()
    running.close()  # the streaming client hangs up mid-generation
    waiting.close()  # the waiting one gives up too
    _wait(
        lambda: server.metric("metaspider_requests_in_progress") == 0 and server.metric("metaspider_queue_depth") == 0,
        5,
    )
    quick = server.chat(max_tokens=4)
    elapsed = time.monotonic() - start
    assert quick.status_code == 200 and quick.json()["metaspider"]["uncertainty"]["decision"] in DECISIONS
    assert elapsed < 10, (
        f"the next answer came {elapsed:.1f} s after the hang-ups: the abandoned generation kept the model"
    )
    assert server.metric("metaspider_requests_cancelled_total") == cancelled_before + 2


def _raw_request(server: Served, body: dict) -> socket.socket:
    """A POST on a plain socket, so the test decides exactly when the connection drops."""
    host, port = server.url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    sock = socket.create_connection((host, int(port)), timeout=60)
    sock.sendall(head.encode() + data)
    return sock


def _wait(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)
