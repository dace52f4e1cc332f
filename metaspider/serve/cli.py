"""The `metaspider serve` command (typer); FastAPI and uvicorn are imported only when it runs."""

from __future__ import annotations

from typing import Annotated

import typer

from metaspider.core.models.registry import DEFAULT_MODEL


def serve_command(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Registry name, .gguf path or hf:OWNER/REPO/FILE.")
    ] = DEFAULT_MODEL,
    wrapper: Annotated[
        str | None, typer.Option(help="A wrapper folder, a GGUF sidecar, 'default', or none (bare model).")
    ] = None,
    modifier: Annotated[str | None, typer.Option(help="watchdog, doubter or none; default: the wrapper's own.")] = None,
    gain: Annotated[float | None, typer.Option(help="Injection gain; default: the wrapper's own.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key_env: Annotated[
        str | None, typer.Option(help="Name of an environment variable holding the API key clients must send.")
    ] = None,
    max_queue: Annotated[int, typer.Option(help="Requests that may wait while one runs; more get 429.")] = 16,
    n_ctx: Annotated[int, typer.Option(help="Context window in tokens (prompt plus completion).")] = 2048,
    threads: Annotated[int | None, typer.Option(help="llama.cpp threads; default: half the cores.")] = None,
    backend: Annotated[str, typer.Option(help="llama_cpp or torch.")] = "llama_cpp",
    temperature: Annotated[float, typer.Option(help="Temperature for requests that do not set one.")] = 0.0,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Serve a model over HTTP in OpenAI's chat-completions format; every answer carries its uncertainty."""
    from metaspider.serve.server import serve

    serve(
        model=model,
        wrapper=wrapper,
        modifier=modifier,
        gain=gain,
        host=host,
        port=port,
        api_key_env=api_key_env,
        max_queue=max_queue,
        n_ctx=n_ctx,
        threads=threads,
        backend=backend,
        temperature=temperature,
        log_level=log_level,
    )
