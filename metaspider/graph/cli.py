"""`metaspider agent run SPEC`: the refusal-aware REPL, or one question for scripts (`--question`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from metaspider.errors import MetaspiderError
from metaspider.graph.spec import AgentSpec, line_of

agent_app = typer.Typer(help="Run agents that route on their own uncertainty.", no_args_is_help=True)
stderr = Console(stderr=True)


@agent_app.callback()
def agent() -> None:
    """Agents from a spec (agents/*.yaml): answer, refuse, use a tool or escalate, by uncertainty."""


@agent_app.command("run")
def run(
    spec: Annotated[Path, typer.Argument(help="The agent spec, e.g. agents/qa.yaml.")],
    question: Annotated[str | None, typer.Option("--question", "-q", help="Ask one question and exit.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --question: print one JSON object.")] = False,
    thread: Annotated[str | None, typer.Option("--thread", help="Conversation thread to continue.")] = None,
) -> None:
    """Open the REPL on SPEC, or answer --question. An escalation to a human reads the reply from the
    terminal (or one line of standard input); without one the turn stays paused on its thread."""
    from metaspider.graph.builder import AgentSession, new_thread_id
    from metaspider.graph.spec import load_spec

    agent_spec = load_spec(spec)
    check_model_and_wrapper(agent_spec, spec)
    if question is None:
        from metaspider.graph.repl import run_repl

        run_repl(agent_spec, thread)
        return
    session = AgentSession(agent_spec, thread or new_thread_id())
    try:
        result = session.run(question)
        if result.escalation is not None:
            reply = _human_reply(result.escalation)
            if reply is not None:
                for _ in session.resume(reply):
                    pass
                result = session.result()
    finally:
        session.close()
    if as_json:
        print(json.dumps(result.as_json(), ensure_ascii=False))
        return
    print(result.answer if result.answer is not None else "(waiting for a human answer)")
    score = "n/a" if result.score is None else f"{result.score:.2f}"
    stderr.print(f"[dim]{result.decision} · uncertainty {score} · thread {result.thread_id}[/]")


def check_model_and_wrapper(agent_spec: AgentSpec, path: Path) -> None:
    """Fail before loading anything, and name the spec's field and line, when the model or the
    wrapper cannot be found (the spec's schema cannot know which files exist)."""
    from metaspider.core.models.registry import resolve
    from metaspider.core.wrapper.handle import resolve_wrapper_path

    checks = [("model", lambda: resolve(agent_spec.model))]
    if agent_spec.wrapper is not None:
        checks.append(("wrapper", lambda: resolve_wrapper_path(agent_spec.wrapper, agent_spec.model)))
    for field, check in checks:
        try:
            check()
        except MetaspiderError as exc:
            raise MetaspiderError(f"{path}:{line_of(path, field)}: {field}: {exc}") from None


def _human_reply(escalation: dict) -> str | None:
    """The human's answer: asked on the terminal, or one line of a pipe; None when there is none."""
    stderr.print(f"[bold yellow]escalated[/] (uncertainty {escalation['score']:.2f}): {escalation['question']}")
    if escalation.get("draft"):
        stderr.print(f"[dim]model's draft: {escalation['draft']}[/]")
    if sys.stdin.isatty():
        stderr.print("human> ", end="")
    line = sys.stdin.readline()
    return line.strip() or None
