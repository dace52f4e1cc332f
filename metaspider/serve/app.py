"""The FastAPI app: OpenAI's chat-completions API over one chat model, with its uncertainty on every answer.

`create_app` takes any LangChain chat model that behaves like `MetaSpiderChatModel` (fields
`temperature`, `top_p`, `max_tokens`, `seed`; `get_num_tokens_from_messages` in the model's tokens; a
last chunk with the finish reason, usage and `uncertainty`), so the HTTP layer is tested with a fake
and served with the real one. The model loads in a background thread after the port opens: until it is
ready `/health` and the API answer 503 with `Retry-After`."""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from metaspider.errors import MetaspiderError
from metaspider.serve.convert import ChunkMapper, call_arguments, sse, to_langchain
from metaspider.serve.errors import ApiError, bad_request, from_validation
from metaspider.serve.metrics import Metrics
from metaspider.serve.queue import RequestQueue, Ticket
from metaspider.serve.schemas import ChatCompletionRequest, ModelCard, ModelList

log = logging.getLogger("metaspider.serve")

CLIENT_CLOSED = 499
"""Status recorded (never sent) for a request whose client went away: nginx's convention."""


@dataclass
class ServeConfig:
    """What the app needs besides the chat model."""

    model_id: str
    """The name clients put in `model`."""
    n_ctx: int
    """The context window (prompt plus completion), in tokens."""
    api_key: str | None = None
    """When set, `/v1/*` requires `Authorization: Bearer <api_key>`."""
    max_queue: int = 16
    """Requests that may wait while one runs; one more gets 429."""
    default_temperature: float = 0.0
    """For requests without `temperature` (OpenAI's own default of 1 makes small models ramble)."""
    retry_after_loading: int = 2


class _Loading:
    """The model's loading state, written by the loader thread and read by requests."""

    def __init__(self) -> None:
        self.state: Literal["loading", "ready", "failed"] = "loading"
        self.error: str | None = None
        self.seconds: float | None = None


def create_app(
    llm: BaseChatModel,
    config: ServeConfig,
    load: Callable[[], None] = lambda: None,
    on_load_error: Callable[[Exception], None] | None = None,
) -> FastAPI:
    """The server for `llm`. `load` (run once, in a thread, at start-up) loads the model and warms it up;
    `on_load_error` is told if it fails (the CLI stops the server then)."""
    metrics = Metrics()
    queue = RequestQueue(config.max_queue, metrics)
    loading = _Loading()
    created = int(time.time())

    def run_load() -> None:
        start = time.perf_counter()
        try:
            load()
        except Exception as exc:  # reported on /health and to the CLI
            loading.state, loading.error = "failed", str(exc) or type(exc).__name__
            log.error("loading %s failed: %s", config.model_id, loading.error)
            if on_load_error is not None:
                on_load_error(exc)
            return
        loading.seconds = time.perf_counter() - start
        loading.state = "ready"
        log.info("%s ready in %.1f s", config.model_id, loading.seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=run_load, name="metaspider-load", daemon=True).start()
        yield

    app = FastAPI(title="metaspider", summary="OpenAI-compatible chat completions with uncertainty", lifespan=lifespan)
    app.state.metrics = metrics
    app.state.queue = queue

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        return ApiError(exc.status_code, str(exc.detail), type=kind).response()

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return ApiError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error").response()

    def check_key(request: Request) -> None:
        if config.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ApiError(
                401,
                "No API key provided: send 'Authorization: Bearer <key>' (the key is in the environment "
                "variable given to `metaspider serve --api-key-env`).",
                type="invalid_request_error",
                code="invalid_api_key",
            )
        if not hmac.compare_digest(given.strip().encode(), config.api_key.encode()):
            raise ApiError(401, "Incorrect API key provided.", type="invalid_request_error", code="invalid_api_key")

    def check_ready() -> None:
        if loading.state == "loading":
            raise ApiError(
                503,
                f"{config.model_id} is still loading; retry shortly.",
                type="service_unavailable",
                code="model_loading",
                headers={"Retry-After": str(config.retry_after_loading)},
            )
        if loading.state == "failed":
            raise ApiError(
                503, f"{config.model_id} failed to load: {loading.error}", type="server_error", code="model_failed"
            )

    def check_model(name: str) -> None:
        if name != config.model_id:
            raise ApiError(
                404,
                f"The model '{name}' does not exist on this server; it serves '{config.model_id}' (GET /v1/models).",
                param="model",
                code="model_not_found",
            )

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 once the model is ready; 503 while it loads (with `Retry-After`) or if loading failed."""
        body: dict[str, Any] = {"status": loading.state, "model": config.model_id, "queue": queue.pending}
        if loading.state == "ready":
            body["load_seconds"] = round(loading.seconds or 0.0, 3)
            return JSONResponse({**body, "status": "ok"})
        if loading.error:
            body["error"] = loading.error
        headers = {"Retry-After": str(config.retry_after_loading)} if loading.state == "loading" else {}
        return JSONResponse(body, status_code=503, headers=headers)

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text format."""
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models")
    async def models(request: Request) -> JSONResponse:
        check_key(request)
        return JSONResponse(ModelList(data=[ModelCard(id=config.model_id, created=created)]).model_dump())

    @app.get("/v1/models/{name:path}")
    async def model(name: str, request: Request) -> JSONResponse:
        check_key(request)
        check_model(name)
        return JSONResponse(ModelCard(id=config.model_id, created=created).model_dump())

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        """OpenAI's chat completions; every answer also carries `metaspider.uncertainty`."""
        arrived = time.perf_counter()
        try:
            check_key(request)
            body = await request.body()
            try:
                chat = ChatCompletionRequest.model_validate_json(body)
            except ValidationError as exc:
                raise from_validation(exc.errors()) from None
            check_model(chat.model)
            check_ready()
            messages = to_langchain(chat.messages)
            call = call_arguments(chat)
            max_tokens = _fit_context(llm, messages, call, chat.completion_limit, config.n_ctx)
            ticket = queue.admit()
        except ApiError as exc:
            metrics.requests.labels(status=str(exc.status)).inc()
            raise
        update: dict[str, Any] = {
            "temperature": chat.temperature if chat.temperature is not None else config.default_temperature,
            "top_p": chat.top_p,
            "max_tokens": max_tokens,
            "seed": chat.seed,
            "stop": chat.stops or None,
        }
        if chat.metaspider is not None:
            update.update(chat.metaspider.model_dump(exclude_none=True))
        per_request = llm.model_copy(update=update)
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            mapper = ChunkMapper(config.model_id, include_usage=include_usage)
            events = _events(per_request, messages, call, mapper, ticket, metrics, arrived)
            return _EventStream(events, on_close=ticket.release)
        mapper = ChunkMapper(config.model_id)

        async def generate() -> None:
            async with ticket.turn():
                async for message in per_request.astream(messages, **call):
                    mapper.add(message)

        try:
            await _unless_disconnected(request, generate())
        except _ClientGone:
            metrics.cancelled.inc()
            metrics.requests.labels(status=str(CLIENT_CLOSED)).inc()
            return Response(status_code=CLIENT_CLOSED)
        except MetaspiderError as exc:
            metrics.requests.labels(status="400").inc()
            raise bad_request(None, str(exc)) from None
        except Exception:
            metrics.requests.labels(status="500").inc()
            raise
        finally:
            ticket.release()
        metrics.requests.labels(status="200").inc()
        metrics.observe(mapper.outcome, arrived)
        return Response(mapper.completion().model_dump_json(), media_type="application/json")

    return app


def _fit_context(
    llm: BaseChatModel, messages: list[BaseMessage], call: dict[str, Any], asked: int | None, n_ctx: int
) -> int:
    """The completion budget: what the request asked for, or the rest of the context; 400 with the
    numbers when the prompt (plus what was asked for) does not fit."""
    try:
        prompt = llm.get_num_tokens_from_messages(messages, **call)
    except MetaspiderError as exc:
        param = "response_format" if "response_format" in call else "tools" if "tools" in call else "messages"
        raise bad_request(param, str(exc)) from None
    if prompt >= n_ctx:
        raise bad_request(
            "messages",
            f"This model's maximum context length is {n_ctx} tokens. However, your messages resulted in {prompt} "
            "tokens, which leaves no room for a completion. Please reduce the length of the messages.",
            "context_length_exceeded",
        )
    if asked is not None and prompt + asked > n_ctx:
        raise bad_request(
            "max_tokens",
            f"This model's maximum context length is {n_ctx} tokens. However, you requested {prompt + asked} tokens "
            f"({prompt} in the messages, {asked} in the completion). Please reduce the length of the messages or "
            "completion.",
            "context_length_exceeded",
        )
    return asked if asked is not None else n_ctx - prompt


async def _events(
    llm: BaseChatModel,
    messages: list[BaseMessage],
    call: dict[str, Any],
    mapper: ChunkMapper,
    ticket: Ticket,
    metrics: Metrics,
    arrived: float,
) -> AsyncIterator[bytes]:
    """The server-sent events of one streamed completion. Cancelled when the client disconnects: the
    cancellation reaches the chat model's generation thread, which stops at its next token."""
    status = "200"
    try:
        async with ticket.turn():
            async for message in llm.astream(messages, **call):
                for chunk in mapper.chunks(message):
                    yield sse(chunk)
        yield sse("[DONE]")
        metrics.observe(mapper.outcome, arrived)
    except (asyncio.CancelledError, GeneratorExit):
        status = str(CLIENT_CLOSED)
        metrics.cancelled.inc()
        raise
    except Exception as exc:  # headers are sent: the error goes into the stream, in OpenAI's shape
        status = "500"
        log.exception("streamed completion failed")
        kind = "invalid_request_error" if isinstance(exc, MetaspiderError) else "server_error"
        yield sse(ApiError(500, f"{type(exc).__name__}: {exc}", type=kind).body())
    finally:
        ticket.release()
        metrics.requests.labels(status=status).inc()


class _EventStream(StreamingResponse):
    """Server-sent events that release the request's queue place however the response ends (even when
    the client is gone before the first byte, and the body iterator never starts)."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]):
        super().__init__(
            content, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with suppress(RuntimeError):
                    await aclose()


class _ClientGone(Exception):
    pass


async def _unless_disconnected(request: Request, work: Awaitable[None]) -> None:
    """Run `work`, cancelling it as soon as the client disconnects (then raise `_ClientGone`)."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            watcher.cancel()
            raise _ClientGone
        watcher.cancel()
    task.result()
