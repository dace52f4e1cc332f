"""The refusal-aware REPL: the answer as it streams, an uncertainty bar, the decision and the tool calls.

Ctrl-C cancels the current answer (the turn is closed as cancelled so the thread stays consistent);
Ctrl-D or /exit leaves. The conversation lives in the spec's memory, so the next run continues it."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.messages import HumanMessage
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from metaspider.core.names import MODIFIER_NAMES
from metaspider.graph.builder import AgentSession, TurnResult, new_thread_id
from metaspider.graph.policy import Thresholds
from metaspider.graph.spec import AgentSpec
from metaspider.graph.state import OUTCOME_LABELS

BAR_WIDTH = 24
MODIFIERS = MODIFIER_NAMES
STREAMED_NODES = {"model"}
HELP = f"""\
/gain X          injection gain for the next answers (1 = as trained, 0 = bare model)
/modifier NAME   {" | ".join(MODIFIER_NAMES)}
/why             the numbers behind the last decision
/thread [ID]     show the thread, or switch to thread ID
/reset           start a new thread
/help            this list
/exit            leave (or Ctrl-D); Ctrl-C cancels the current answer"""


def run_repl(spec: AgentSpec, thread_id: str | None, console: Console | None = None) -> None:
    """The agent REPL (`metaspider agent run SPEC`): load the spec's model, then read questions and commands."""
    _listen_for_ctrl_c()
    console = console or Console(highlight=False)
    with console.status(f"loading {spec.model}…"):
        session = AgentSession(spec, thread_id)
    try:
        Repl(session, console).loop()
    finally:
        session.close()


class Repl:
    """The REPL's loop and its slash commands over one agent session."""

    def __init__(self, session: AgentSession, console: Console):
        self.session = session
        self.console = console
        self.last: TurnResult | None = None
        self.commands: dict[str, Callable[[str], bool]] = {
            "/gain": self.set_gain,
            "/modifier": self.set_modifier,
            "/why": lambda _: self.why(),
            "/thread": self.thread,
            "/reset": lambda _: self.reset(),
            "/help": lambda _: self.show(HELP),
            "/exit": lambda _: False,
        }

    def loop(self) -> None:
        """Read lines until /exit or end of input; a question runs a turn, a slash command changes the session."""
        spec = self.session.spec
        self.console.print(f"[bold]{spec.model}[/] agent · thread {self.session.thread_id} · /help for commands")
        turns = sum(isinstance(m, HumanMessage) for m in self.session.history())
        if turns:
            self.console.print(f"[dim]continuing a conversation of {turns} turn(s)[/]")
        while True:
            try:
                line = self.console.input("[bold green]you>[/] ").strip()
            except EOFError:
                self.console.print()
                return
            except KeyboardInterrupt:
                self.console.print()
                continue
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    return
                continue
            self.ask(line)

    # --- a turn -----------------------------------------------------------------------------------------

    def ask(self, question: str) -> None:
        """Run one question: stream the answer, then show the uncertainty bar and the decision."""
        printed: list[str] = []
        try:
            self.show_events(self.session.stream(question), printed)
            result = self.session.result()
            while result.escalation is not None:
                reply = self.ask_human(result.escalation)
                if reply is None:
                    self.console.print("[dim]escalation left open on this thread[/]")
                    break
                self.show_events(self.session.resume(reply), printed)
                result = self.session.result()
        except KeyboardInterrupt:
            self.console.print(" [dim](cancelled)[/]")
            self.session.cancel("".join(printed))
            result = self.session.result()
        except Exception as exc:  # noqa: BLE001  (a failed turn is reported; the REPL goes on)
            self.console.print(f"\n[bold red]this turn failed:[/] {exc}", markup=True, highlight=False)
            try:
                self.session.fail(str(exc))
            except Exception as again:  # noqa: BLE001
                self.console.print(f"[dim](the failure could not be recorded in the thread: {again})[/]")
            return
        self.last = result
        self.show_verdict(result)

    def show_events(self, events: Iterator[tuple[str, Any]], printed: list[str]) -> None:
        """Print the streamed answer tokens, the replies that were not streamed (a refusal, a human's
        answer) and the tool calls, as they arrive."""
        streamed = False  # the current model step's reply is being printed token by token
        calls: dict[str, dict] = {}
        for mode, data in events:
            if mode == "messages":
                chunk, meta = data
                if (
                    meta.get("langgraph_node") in STREAMED_NODES
                    and chunk.text
                    and not getattr(chunk, "tool_calls", None)
                ):
                    if not streamed:
                        self.console.print("[bold blue]agent>[/] ", end="")
                        streamed = True
                    printed.append(chunk.text)
                    self.console.print(chunk.text, end="", markup=False)
                continue
            for node, update in data.items():
                if node == "model" and update:
                    message = update["messages"][-1]
                    calls |= {call["id"]: call for call in message.tool_calls}
                    if streamed:
                        self.console.print()
                    elif message.text and not message.tool_calls:
                        self.console.print(f"[bold blue]{escape(message.name or 'agent')}>[/] {escape(message.text)}")
                    streamed = False
                elif node == "tools" and update:
                    for result in update["messages"]:
                        call = calls.get(result.tool_call_id, {})
                        args = ", ".join(f"{k}={v!r}" for k, v in call.get("args", {}).items())
                        name = call.get("name", result.name or "tool")
                        self.console.print(
                            f"[magenta]tool[/] {escape(name)}({escape(args)}) → {escape(_short(result.text))}"
                        )
        if streamed:
            self.console.print()

    def ask_human(self, escalation: dict) -> str | None:
        """Ask the person at the terminal to answer an escalated question; None when they give no reply."""
        self.console.print(
            f"[bold yellow]escalated to you[/] (uncertainty {escalation['u']:.2f}): {escape(escalation['question'])}"
        )
        if escalation.get("draft"):
            self.console.print(f"[dim]model's draft: {escape(escalation['draft'])}[/]")
        try:
            reply = self.console.input("[bold yellow]human>[/] ").strip()
        except EOFError:
            return None
        return reply or None

    def show_verdict(self, result: TurnResult) -> None:
        """The uncertainty bar with the thresholds, and the decision's label."""
        label = OUTCOME_LABELS.get(result.decision or "", result.decision or "no decision")
        self.console.print(uncertainty_bar(result.score, self.session.thresholds) + Text(f"  {label}", style="bold"))

    # --- commands ---------------------------------------------------------------------------------------

    def command(self, line: str) -> bool:
        """Run a slash command; False means leave."""
        name, _, argument = line.partition(" ")
        handler = self.commands.get(name)
        if handler is None:
            self.console.print(f"[red]unknown command {escape(name)}[/] (/help lists them)")
            return True
        return handler(argument.strip())

    def show(self, text: str) -> bool:
        """Print plain text; returns True so command handlers can `return self.show(...)`."""
        self.console.print(text, markup=False)
        return True

    def set_gain(self, argument: str) -> bool:
        """/gain X: the injection gain for the next answers."""
        try:
            self.session.gain = float(argument)
        except ValueError:
            return self.show(f"/gain needs a number, e.g. /gain 1.5 (got {argument!r})")
        return self.show(f"gain {self.session.gain:g}")

    def set_modifier(self, argument: str) -> bool:
        """/modifier NAME: the modifier for the next answers."""
        if argument not in MODIFIERS:
            return self.show(f"/modifier needs one of {', '.join(MODIFIERS)} (got {argument!r})")
        self.session.modifier = argument
        return self.show(f"modifier {argument}")

    def why(self) -> bool:
        """/why: the numbers behind the last decision."""
        if self.last is None:
            return self.show("no decision yet: ask a question first")
        last, t = self.last, self.session.thresholds
        gain, modifier = self.session.effective_knobs()
        score = "n/a" if last.score is None else f"{last.score:.3f}"
        lines = [
            f"decision   {OUTCOME_LABELS.get(last.decision or '', last.decision)} (route {last.route})",
            f"u          {score}",
            f"why        {last.reason}",
            f"thresholds answer_below {t.answer_below} ({t.source}), tool_below {t.tool_below}, escalate_above {t.escalate_above}",
            f"knobs      modifier {modifier}, gain {gain:g}",
            f"steps      {last.steps} of {self.session.spec.max_steps}",
        ]
        lines += [f"tool call  {c['name']}({c['args']}) → {_short(c['result'])}" for c in last.tool_calls]
        return self.show("\n".join(lines))

    def thread(self, argument: str) -> bool:
        """/thread [ID]: show the thread's messages, or switch to thread ID."""
        if argument:
            self.session.thread_id = argument
            self.last = None
        turns = sum(isinstance(m, HumanMessage) for m in self.session.history())
        return self.show(f"thread {self.session.thread_id} ({turns} turn(s))")

    def reset(self) -> bool:
        """/reset: start a new thread."""
        self.session.thread_id = new_thread_id()
        self.last = None
        return self.show(f"new thread {self.session.thread_id}")


def uncertainty_bar(score: float | None, thresholds: Thresholds) -> Text:
    """`u [██████░░░░░░] 0.42`, coloured by the band the score falls in."""
    if score is None:
        return Text("u [" + "·" * BAR_WIDTH + "] n/a", style="dim")
    filled = round(min(max(score, 0.0), 1.0) * BAR_WIDTH)
    if score < thresholds.answer_below:
        style = "green"
    elif thresholds.tool_below is not None and score < thresholds.tool_below:
        style = "yellow"
    else:
        style = "red"
    bar = Text("u [")
    bar.append("█" * filled, style=style)
    bar.append("░" * (BAR_WIDTH - filled), style="dim")
    bar.append(f"] {score:.2f}")
    return bar


def _short(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listen_for_ctrl_c() -> None:
    """Ctrl-C cancels an answer. A process started as a background job of a script (`cmd &`) inherits SIGINT
    ignored, and Python then leaves it ignored: the REPL takes it back so Ctrl-C works however it was started."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
