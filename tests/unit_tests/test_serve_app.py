"""The HTTP layer of `metaspider serve` on a fake chat model: request validation (400 naming the
parameter), errors in OpenAI's shape, the queue, loading, auth and the mapping of chat-model chunks to
OpenAI's completion and chunk objects. The real model path is in tests/integration_tests/test_serve.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from metaspider.serve.app import ServeConfig, create_app
from metaspider.serve.errors import param_path

UNCERTAINTY = {"score": 0.25, "decision": "answer", "threshold": 0.5, "modifier": "doubter", "gain": 1.0}
MODEL = "fake-model"


class FakeChatModel(BaseChatModel):
    """Streams its reply word by word, then a last chunk shaped like MetaSpiderChatModel's."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None
    stop: list[str] | None = None
    modifier: str | None = None
    gain: float | None = None
    reply: str = "Lima is the capital of Peru."
    calls: ClassVar[list[dict[str, Any]]] = []
    gate: ClassVar[threading.Event] = threading.Event()

    @property
    def _llm_type(self) -> str:
        return "fake"

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Any = None, **kwargs: Any) -> int:
        return 5 + sum(len(m.text.split()) for m in messages)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        raise NotImplementedError

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        FakeChatModel.calls.append(
            {
                "temperature": self.temperature,
                "top_p": self.top_p,
                "max_tokens": self.max_tokens,
                "seed": self.seed,
                "stop": self.stop,
                "modifier": self.modifier,
                "gain": self.gain,
                "messages": messages,
                **kwargs,
            }
        )
        if "WAIT" in messages[-1].text:
            assert FakeChatModel.gate.wait(10)
        words = self.reply.split(" ")[: self.max_tokens]
        logprobs = kwargs.get("logprobs")
        for i, word in enumerate(words):
            text = word if i == 0 else f" {word}"
            metadata = (
                {
                    "logprobs": {
                        "content": [{"token": text, "logprob": -0.5, "bytes": list(text.encode()), "top_logprobs": []}]
                    }
                }
                if logprobs
                else {}
            )
            yield ChatGenerationChunk(message=AIMessageChunk(content=text, response_metadata=metadata))
        calls = []
        if kwargs.get("tool_choice") not in (None, "auto"):
            name = kwargs["tools"][0]["function"]["name"]
            calls = [{"name": name, "args": '{"x": 1}', "id": "call_1", "index": 0, "type": "tool_call_chunk"}]
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                tool_call_chunks=calls,
                usage_metadata={"input_tokens": 7, "output_tokens": len(words), "total_tokens": 7 + len(words)},
                response_metadata={
                    "finish_reason": "length" if len(words) == self.max_tokens else "stop",
                    "uncertainty": UNCERTAINTY,
                },
            )
        )


@pytest.fixture
def make_client():
    clients = []

    def make(**config: Any) -> TestClient:
        load = config.pop("load", lambda: None)
        app = create_app(
            FakeChatModel(), ServeConfig(model_id=MODEL, n_ctx=config.pop("n_ctx", 100), **config), load=load
        )
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    FakeChatModel.calls.clear()
    FakeChatModel.gate.clear()
    yield make
    FakeChatModel.gate.set()
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "What is the capital of Peru?"}], **extra}


def _ready(client: TestClient) -> None:
    deadline = time.monotonic() + 5
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_completion_carries_uncertainty_usage_and_openai_fields(client):
    _ready(client)
    response = client.post("/v1/chat/completions", json=body())
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion" and data["id"].startswith("chatcmpl-") and data["model"] == MODEL
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Lima is the capital of Peru.",
        "refusal": None,
        "tool_calls": None,
    }
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"] == {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13}
    assert data["metaspider"] == {"uncertainty": UNCERTAINTY}


def test_request_parameters_reach_the_chat_model(client):
    _ready(client)
    response = client.post(
        "/v1/chat/completions",
        json=body(
            temperature=0.7, top_p=0.9, max_completion_tokens=3, seed=42, stop=["\n"], logprobs=True, top_logprobs=2
        ),
    )
    assert response.status_code == 200
    call = FakeChatModel.calls[-1]
    assert (call["temperature"], call["top_p"], call["max_tokens"], call["seed"], call["stop"]) == (
        0.7,
        0.9,
        3,
        42,
        ["\n"],
    )
    assert call["logprobs"] is True and call["top_logprobs"] == 2
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert [e["token"] for e in choice["logprobs"]["content"]] == ["Lima", " is", " the"]


def test_metaspider_options_set_the_wrapper_knobs_per_request(client):
    _ready(client)
    options = {"metaspider": {"modifier": "watchdog", "gain": 0.5}}
    assert client.post("/v1/chat/completions", json=body(**options)).status_code == 200
    assert (FakeChatModel.calls[-1]["modifier"], FakeChatModel.calls[-1]["gain"]) == ("watchdog", 0.5)
    assert client.post("/v1/chat/completions", json=body()).status_code == 200
    assert (FakeChatModel.calls[-1]["modifier"], FakeChatModel.calls[-1]["gain"]) == (None, None)
    bad = client.post("/v1/chat/completions", json=body(metaspider={"gain": 50}))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "metaspider.gain"


def test_default_max_tokens_is_the_rest_of_the_context(client):
    _ready(client)
    assert client.post("/v1/chat/completions", json=body()).status_code == 200
    prompt = 5 + 6  # the fake counts 5 + the words of "What is the capital of Peru?"
    assert FakeChatModel.calls[-1]["max_tokens"] == 100 - prompt
    assert FakeChatModel.calls[-1]["temperature"] == 0.0


def test_conversation_with_tool_calls_is_converted(client):
    _ready(client)
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Add "}, {"type": "text", "text": "1 and 2"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
    ]
    assert client.post("/v1/chat/completions", json={"model": MODEL, "messages": messages}).status_code == 200
    sent = FakeChatModel.calls[-1]["messages"]
    assert [m.type for m in sent] == ["system", "human", "ai", "tool"]
    assert sent[1].content == "Add 1 and 2"
    assert sent[2].tool_calls[0]["args"] == {"a": 1, "b": 2} and sent[3].tool_call_id == "c1"


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add.",
            "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
        },
    }
]


def test_forced_tool_call_maps_to_openai_tool_calls(client):
    _ready(client)
    response = client.post("/v1/chat/completions", json=body(tools=TOOLS, tool_choice="required"))
    assert response.status_code == 200
    assert FakeChatModel.calls[-1]["tool_choice"] == "any"
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"x": 1}'}}
    ]
    named = client.post(
        "/v1/chat/completions", json=body(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "add"}})
    )
    assert named.status_code == 200 and FakeChatModel.calls[-1]["tool_choice"] == "add"


def test_response_format_is_passed_on(client):
    _ready(client)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    assert client.post("/v1/chat/completions", json=body(response_format=fmt)).status_code == 200
    assert FakeChatModel.calls[-1]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema},
    }
    assert client.post("/v1/chat/completions", json=body(response_format={"type": "text"})).status_code == 200
    assert "response_format" not in FakeChatModel.calls[-1]


def _events(response) -> list[Any]:
    events = [line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_stream_chunks_role_text_finish_uncertainty_and_usage(client):
    _ready(client)
    response = client.post("/v1/chat/completions", json=body(stream=True, stream_options={"include_usage": True}))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    chunks = _events(response)
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"])
    assert text == "Lima is the capital of Peru."
    final = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(final) == 1 and final[0]["choices"][0]["finish_reason"] == "stop"
    assert final[0]["metaspider"] == {"uncertainty": UNCERTAINTY}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6
    assert all(c["metaspider"] is None for c in chunks if c is not final[0] and c is not chunks[-1])


def test_stream_tool_calls(client):
    _ready(client)
    chunks = _events(client.post("/v1/chat/completions", json=body(stream=True, tools=TOOLS, tool_choice="required")))
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls == [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"x": 1}'}}
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"n": 2}, "n"),
        ({"presence_penalty": 1.0}, "presence_penalty"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"top_logprobs": 30, "logprobs": True}, "top_logprobs"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "mul"}}}, "tool_choice"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0]"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0].content[0].type",
        ),
        ({"messages": [{"role": "tool", "content": "3"}]}, "messages[0].tool_call_id"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_invalid_requests_get_400_naming_the_parameter(client, extra, param):
    _ready(client)
    response = client.post("/v1/chat/completions", json=body(**extra))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param.split(".")[0].split("[")[0] in error["message"] or error["code"] == "unknown_parameter"
    assert not FakeChatModel.calls


def test_missing_model_and_bad_json(client):
    _ready(client)
    missing = client.post("/v1/chat/completions", json={"messages": body()["messages"]})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "model"
    broken = client.post("/v1/chat/completions", content=b"{not json")
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"


def test_unknown_model_is_404(client):
    _ready(client)
    response = client.post("/v1/chat/completions", json=body(model="gpt-4o"))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model" and "gpt-4o" in error["message"]
    assert client.get("/v1/models/gpt-4o").status_code == 404
    assert client.get(f"/v1/models/{MODEL}").json()["id"] == MODEL
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [MODEL]


def test_prompt_over_the_context_is_400_with_the_numbers(client):
    _ready(client)
    long = body(messages=[{"role": "user", "content": "word " * 200}])
    response = client.post("/v1/chat/completions", json=long)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert "100" in error["message"] and "205" in error["message"]
    asked = client.post("/v1/chat/completions", json=body(max_tokens=95))
    prompt = 5 + 6  # the fake counts 5 + the words of "What is the capital of Peru?"
    assert asked.status_code == 400 and asked.json()["error"]["param"] == "max_tokens"
    assert f"{prompt + 95} tokens ({prompt} in the messages, 95 in the completion)" in asked.json()["error"]["message"]


def test_api_key(make_client):
    client = make_client(api_key="s3cret")
    _ready(client)
    none = client.post("/v1/chat/completions", json=body())
    assert none.status_code == 401 and none.json()["error"]["code"] == "invalid_api_key"
    wrong = client.post("/v1/chat/completions", json=body(), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert client.get("/v1/models").status_code == 401
    good = client.post("/v1/chat/completions", json=body(), headers={"Authorization": "Bearer s3cret"})
    assert good.status_code == 200
    assert client.get("/health").status_code == 200 and client.get("/metrics").status_code == 200


def test_503_with_retry_after_while_loading(make_client):
    loaded = threading.Event()
    client = make_client(load=lambda: loaded.wait(10))
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "loading" and "retry-after" in health.headers
    response = client.post("/v1/chat/completions", json=body())
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1 and response.json()["error"]["code"] == "model_loading"
    loaded.set()
    _ready(client)
    assert client.post("/v1/chat/completions", json=body()).status_code == 200


def test_failed_load_is_reported(make_client):
    def fail() -> None:
        raise RuntimeError("no such file: model.gguf")

    client = make_client(load=fail)
    deadline = time.monotonic() + 5
    while client.get("/health").json()["status"] == "loading" and time.monotonic() < deadline:
        time.sleep(0.01)
    health = client.get("/health")
    assert health.status_code == 503 and "model.gguf" in health.json()["error"]
    response = client.post("/v1/chat/completions", json=body())
    assert response.status_code == 503 and "model.gguf" in response.json()["error"]["message"]


def test_full_queue_is_429_with_retry_after(make_client):
    client = make_client(max_queue=0)
    _ready(client)
    first: dict[str, Any] = {}
    running = threading.Thread(
        target=lambda: first.update(
            r=client.post("/v1/chat/completions", json=body(messages=[{"role": "user", "content": "WAIT"}]))
        )
    )
    running.start()
    deadline = time.monotonic() + 5
    while not FakeChatModel.calls:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    rejected = client.post("/v1/chat/completions", json=body())
    assert rejected.status_code == 429
    assert int(rejected.headers["retry-after"]) >= 1 and rejected.json()["error"]["code"] == "queue_full"
    FakeChatModel.gate.set()
    running.join(10)
    assert first["r"].status_code == 200
    assert client.post("/v1/chat/completions", json=body()).status_code == 200
    metrics = client.get("/metrics").text
    assert 'metaspider_requests_total{status="429"} 1.0' in metrics
    assert 'metaspider_requests_total{status="200"} 2.0' in metrics
    assert 'metaspider_decisions_total{decision="answer"} 2.0' in metrics
    assert "metaspider_time_to_first_token_seconds_count 2.0" in metrics


def test_unknown_route_is_openai_shaped(client):
    response = client.get("/v1/nothing")
    assert response.status_code == 404 and "error" in response.json()


def test_param_path():
    assert param_path(("body", "messages", 0, "content", "str")) == "messages[0].content"
    assert param_path(("body", "messages", 2, "user", "content")) == "messages[2].content"
    assert param_path(("body", "tool_choice", "NamedToolChoice", "function")) == "tool_choice.function"
    assert param_path(("body",)) is None
