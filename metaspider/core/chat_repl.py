"""The plain chat REPL: the bare model (or a wrapper) one turn at a time, answers streamed.

Reads standard input line by line, so it also works with a pipe (`echo hi | metaspider chat`)."""

from __future__ import annotations

from rich.console import Console

from metaspider.core.backbones import load_backbone
from metaspider.core.backbones.base import GenerationEnd, SamplingParams, TokenOut
from metaspider.core.backbones.chat_template import Message
from metaspider.core.pipeline import Pipeline
from metaspider.core.wrapper.handle import load_wrapper

console = Console()


def run_chat(model: str, backend: str, wrapper: str | None, max_tokens: int, system: str | None) -> None:
    """The plain chat REPL (`metaspider chat`): one turn per line of input, with u and the decision after each
    answer when a wrapper is given."""
    with console.status(f"loading {model} ({backend})…"):
        backbone = load_backbone(model, backend)
        pipeline = Pipeline(backbone, load_wrapper(backbone, wrapper, backend))
    console.print(f"[bold]{model}[/] on {backend}. Empty line or Ctrl-D to quit.")
    history: list[Message] = [{"role": "system", "content": system}] if system else []
    params = SamplingParams(max_tokens=max_tokens)
    while True:
        try:
            question = console.input("[bold green]you>[/] ")
        except (EOFError, KeyboardInterrupt):
            break
        if not question.strip():
            break
        history.append({"role": "user", "content": question})
        history.append({"role": "assistant", "content": _answer(pipeline, history, params)})


def _answer(pipeline: Pipeline, history: list[Message], params: SamplingParams) -> str:
    assessment = pipeline.assess(history)
    console.print("[bold blue]model>[/] ", end="")
    pieces: list[str] = []
    try:
        for item in pipeline.stream(assessment, params):
            if isinstance(item, TokenOut):
                pieces.append(item.text)
                console.print(item.text, end="", markup=False, highlight=False)
            elif isinstance(item, GenerationEnd) and item.finish_reason == "length":
                console.print(" [dim](max tokens)[/]", end="")
    except KeyboardInterrupt:
        console.print(" [dim](cancelled)[/]", end="")
    console.print()
    u = assessment.uncertainty
    if u.score is not None:
        console.print(f"[dim]uncertainty {u.score:.2f} → {u.decision}[/]")
    return "".join(pieces)
