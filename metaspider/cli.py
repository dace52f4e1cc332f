"""The `metaspider` command. Each part brings its own sub-command group; this module only mounts them
and turns `MetaspiderError` into a one-line message and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from metaspider.errors import MetaspiderError

app = typer.Typer(help="Make a frozen LLM admit uncertainty, and let agents act on it.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


def _mount() -> None:
    from metaspider.core.cli import chat, doctor, models_app
    from metaspider.deploy.cli import deploy_app
    from metaspider.graph.cli import agent_app
    from metaspider.loom.cli import loom_app
    from metaspider.serve.cli import serve_command

    app.add_typer(models_app, name="models", help="List and fetch models.")
    app.add_typer(loom_app, name="loom", help="Collect, train, evaluate and calibrate wrappers.")
    app.add_typer(deploy_app, name="deploy", help="Export wrappers to GGUF and check them on llama.cpp.")
    app.add_typer(agent_app, name="agent", help="Run agents that route on their own uncertainty.")
    app.command("chat")(chat)
    app.command("doctor")(doctor)
    app.command("serve")(serve_command)


_mount()


def main() -> None:
    """The `metaspider` command."""
    _run(app)


def loom_main() -> None:
    """The `metaloom` command (the same as `metaspider loom`)."""
    from metaspider.loom.cli import loom_app

    _run(loom_app)


def _run(typer_app: typer.Typer) -> None:
    try:
        typer_app(standalone_mode=False)
    except MetaspiderError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click's usage errors (typer may vendor its own click: matched by shape)
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        raise
