"""Grading and aggregation of `agent_eval.py`, kept free of models so a unit test can check it.

Each task ends in one outcome: right, wrong, refused or escalated (plus `error`, counted as wrong, when the
agent run raised). A reply declines when the middleware marked it a refusal, when the project's own
`is_refusal` finds one of its refusal sentences, when it is empty, or when it says in other words that the
answer is not known ("I couldn't find any information about ..."). Then, by kind:

- fact, arithmetic, kb: an accepted answer (`is_correct_open`: whole words after folding case, accents and
  punctuation) is right, even with a hedge around it; otherwise a declining reply is refused, anything
  else wrong; an interrupt is escalated.
- unanswerable: declining or escalating is right; any other reply is a concrete claim, wrong.
- open_ended: any reply that does not decline is right; a declining one is refused; an interrupt escalated.
- Whatever the kind, a reply that is a tool call written out as text (`writes_call`: to a tool not offered,
  after the tools were hidden, or cut short) is wrong: it is neither an answer nor a refusal a user can read.

net score = (right − wrong) / tasks. Tool-call precision = calls of the tool the task needs / all calls."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from metaspider.loom.scoring import is_correct_open, is_refusal, normalise
from metaspider.runtime.tool_calls import writes_call

OUTCOMES = ("right", "wrong", "refused", "escalated")
ROUTES = ("answer", "tool", "refuse", "escalate")
"""The middleware's routes; `first_routes` counts each task's first one (the question alone)."""

# Normalised (see `normalise`) phrases that say the answer is not known: no concrete claim.
_UNKNOWN_PHRASES = (
    "i dont know",
    "i do not know",
    "im not sure",
    "i am not sure",
    "not sure enough",
    "no information",
    "no reliable information",
    "dont have information",
    "do not have information",
    "dont have any information",
    "do not have any information",
    "couldnt find",
    "could not find",
    "cannot find",
    "cant find",
    "unable to find",
    "unable to answer",
    "unable to provide",
    "not aware of",
    "no record",
    "no passage matches",
    "no matching passage",
    "not have matching passage",
    "not mentioned in",
    "not familiar with",
    "cannot answer",
    "cant answer",
    "cannot provide",
    "cant provide",
    "cannot help",
    "cant help",
    "does not exist",
    "doesnt exist",
    "no such",
    "not a real",
    "fictional",
    "i wont guess",
)
_UNKNOWN = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in _UNKNOWN_PHRASES) + r")\b")


def declines(text: str, *, refusal_flag: bool = False) -> bool:
    """Whether a reply declines to answer: the middleware's refusal, a refusal sentence, silence, or words
    saying the answer is not known."""
    if refusal_flag or not text.strip() or is_refusal(text):
        return True
    return _UNKNOWN.search(normalise(text)) is not None


def grade(
    kind: str,
    text: str,
    accepted: Sequence[str] = (),
    *,
    refusal_flag: bool = False,
    escalated: bool = False,
    error: bool = False,
) -> str:
    """The outcome of one task (one of `OUTCOMES`) from the final reply and how the run ended."""
    if error or (not escalated and writes_call(text)):
        return "wrong"
    if kind == "unanswerable":
        return "right" if escalated or declines(text, refusal_flag=refusal_flag) else "wrong"
    if escalated:
        return "escalated"
    if kind == "open_ended":
        return "refused" if declines(text, refusal_flag=refusal_flag) else "right"
    if not refusal_flag and accepted and is_correct_open(text, tuple(accepted)):
        return "right"
    return "refused" if declines(text, refusal_flag=refusal_flag) else "wrong"


@dataclass
class TaskResult:
    """What one agent did on one task."""

    task_id: str
    kind: str
    outcome: str
    answer: str
    tool_calls: list[str] = field(default_factory=list)
    """Names of the tools the model called, in order."""
    needed_tool: str | None = None
    seconds: float = 0.0
    routes: list[str] = field(default_factory=list)
    """The middleware's route of each step (empty without it)."""
    u: float | None = None
    """u of the first step (the question alone), when the middleware assessed it."""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return asdict(self)


def summarise(results: Iterable[TaskResult]) -> dict[str, Any]:
    """Counts and shares of each outcome, net score, tool-call precision and recall, seconds per task."""
    results = list(results)
    n = len(results)
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    calls = [(name, r.needed_tool) for r in results for name in r.tool_calls]
    right_calls = sum(name == needed for name, needed in calls)
    needing = [r for r in results if r.needed_tool is not None]
    return {
        "tasks": n,
        "counts": counts,
        "shares": {o: counts[o] / n if n else 0.0 for o in OUTCOMES},
        "errors": sum(r.error is not None for r in results),
        "net": (counts["right"] - counts["wrong"]) / n if n else 0.0,
        "tool_calls": len(calls),
        "tool_call_precision": right_calls / len(calls) if calls else None,
        "tool_recall": (sum(r.needed_tool in r.tool_calls for r in needing) / len(needing) if needing else None),
        "seconds_per_task": sum(r.seconds for r in results) / n if n else 0.0,
        "first_routes": {route: sum(bool(r.routes) and r.routes[0] == route for r in results) for route in ROUTES},
        "mean_first_u": sum(us) / len(us) if (us := [r.u for r in results if r.u is not None]) else None,
        "max_steps_hit": sum(len(r.routes) >= 6 for r in results),
    }


def summarise_by_kind(results: Iterable[TaskResult], kinds: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`summarise` for every kind present."""
    results = list(results)
    return {k: summarise(r for r in results if r.kind == k) for k in kinds if any(r.kind == k for r in results)}


def targets(summaries: dict[str, dict[str, Any]], by_kind: dict[str, dict[str, dict[str, Any]]]) -> list[dict]:
    """The issue's targets, each with the figures it compares and pass/fail (None when an agent is missing).

    `summaries` and `by_kind` are keyed by agent: "plain", "msp", "wrapper"."""
    plain, msp, wrapper = (summaries.get(k) for k in ("plain", "msp", "wrapper"))
    rows: list[dict[str, Any]] = []
    if plain and wrapper:
        limit = 0.6 * plain["counts"]["wrong"]
        rows.append(
            {
                "target": "wrapper agent's wrong answers <= 60 % of the plain agent's",
                "value": wrapper["counts"]["wrong"],
                "bound": limit,
                "pass": wrapper["counts"]["wrong"] <= limit,
            }
        )
        rows.append(
            {
                "target": "wrapper agent's net >= plain agent's net + 0.10",
                "value": wrapper["net"],
                "bound": plain["net"] + 0.10,
                "pass": wrapper["net"] >= plain["net"] + 0.10 - 1e-12,
            }
        )
    if msp and wrapper:
        rows.append(
            {
                "target": "wrapper agent's net > max-softmax agent's net",
                "value": wrapper["net"],
                "bound": msp["net"],
                "pass": wrapper["net"] > msp["net"],
            }
        )
    for agent, kinds in by_kind.items():
        open_ended = kinds.get("open_ended")
        if open_ended:
            share = open_ended["shares"]["refused"]
            rows.append(
                {
                    "target": f"{agent} agent refuses <= 5 % of open-ended requests",
                    "value": share,
                    "bound": 0.05,
                    "pass": share <= 0.05,
                }
            )
    return rows
