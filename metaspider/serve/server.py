"""`metaspider serve`: the chat model behind the app, run by uvicorn.

The model loads after the port opens (503 meanwhile) and is warmed up with one tiny generation, so the
first client does not pay for the lazy parts (wrapper, contexts, first decode)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from metaspider.errors import MetaspiderError


def served_name(model: str) -> str:
    """The id clients send as `model`: the registry name, or a file's or folder's name."""
    from metaspider.core.models.registry import MODELS

    if model in MODELS:
        return model
    return Path(model).expanduser().name.removesuffix(".gguf") or model


def api_key_from_env(variable: str | None) -> str | None:
    """The API key held by the environment variable `variable` (None: no key, the API is open)."""
    if variable is None:
        return None
    key = os.environ.get(variable, "").strip()
    if not key:
        raise MetaspiderError(f"--api-key-env {variable}: the environment variable {variable} is unset or empty")
    return key


def serve(
    model: str = "smollm2-135m",
    wrapper: str | None = None,
    modifier: str | None = None,
    gain: float | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key_env: str | None = None,
    max_queue: int = 16,
    n_ctx: int = 2048,
    threads: int | None = None,
    backend: str = "llama_cpp",
    temperature: float = 0.0,
    log_level: str = "info",
) -> None:
    """Serve `model` until interrupted; raise `MetaspiderError` if it cannot load."""
    try:
        import uvicorn

        from metaspider.serve.app import ServeConfig, create_app
    except ImportError as exc:
        raise MetaspiderError(
            f"metaspider serve needs the serve extra ({exc.name} is missing): pip install 'metaspider[serve]'"
        ) from None
    from metaspider.core.models.registry import resolve
    from metaspider.runtime.chat_model import MetaSpiderChatModel

    resolve(model)  # an unknown model fails here, before the port opens
    if max_queue < 0:
        raise MetaspiderError(f"--max-queue must be 0 or more, got {max_queue}")
    llm = MetaSpiderChatModel(
        model=model, backend=backend, wrapper=wrapper, modifier=modifier, gain=gain, n_ctx=n_ctx, n_threads=threads
    )
    config = ServeConfig(
        model_id=served_name(model),
        n_ctx=n_ctx,
        api_key=api_key_from_env(api_key_env),
        max_queue=max_queue,
        default_temperature=temperature,
    )
    failure: list[Exception] = []

    def load() -> None:
        llm.model_copy(update={"max_tokens": 1}).invoke("Hi")

    def stop(exc: Exception) -> None:
        failure.append(exc)
        server.should_exit = True

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(message)s")
    app = create_app(llm, config, load=load, on_load_error=stop)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5))
    server.run()
    if failure:
        exc = failure[0]
        raise MetaspiderError(str(exc)) if not isinstance(exc, MetaspiderError) else exc
