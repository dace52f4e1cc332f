"""Three LangChain agents on one model, side by side on 150 fixed tasks: does routing on u help?

    python benchmarks/agent_eval.py --model smollm2-135m --threads 1
    python benchmarks/agent_eval.py --model qwen2.5-coder-1.5b --agents plain,msp --threads 1
    python benchmarks/agent_eval.py --model smollm2-135m --limit 20      # a quick smoke run

Every agent is `langchain.agents.create_agent(MetaSpiderChatModel(model=M), tools=[calculator,
knowledge_base over agents/kb/], system_prompt=...)` with the shipped agent spec's system prompt, and:

- `plain`: no middleware: the model answers, and calls tools when it chooses to.
- `msp`: `UncertaintyMiddleware` on the bare chat model, whose u is the baseline 1 − the max softmax
  probability of the first answer token (`first_token_doubt`).
- `wrapper`: `UncertaintyMiddleware` on the chat model with the model's shipped wrapper (`wrapper="default"`,
  its own modifier in pass 2); skipped, and said so, for a model without one.

Both middleware agents route on the same bands, `agents/qa.yaml`'s `policy:` (answer below 0.5, a tool up
to 0.95, escalate at or above 0.95) with its `max_steps` (6); `--policy default` uses
`UncertaintyMiddleware()`'s own defaults instead. An escalation is the middleware's `interrupt()` (an in-memory checkpointer holds it); the run is not
resumed and the task counts as escalated. The tasks are interleaved (task 1 on every agent, then task 2 ...),
so machine load hits the agents alike. Grading: `agent_eval_scoring.py`; tasks: `agent_eval_tasks.py`.

Writes benchmarks/results/agent_eval_<model>.{json,md,png}; every finished task is appended to
agent_eval_<model>.partial.jsonl first, so an interrupted run is reported with `--report-only`, or
continued with `--resume` (the same arguments; pairs already in the file are skipped)."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
RESULTS = ROOT / "results"
SPEC = REPO / "agents" / "qa.yaml"
KB = REPO / "agents" / "kb"
sys.path.insert(0, str(ROOT))

from agent_eval_scoring import OUTCOMES, ROUTES, TaskResult, grade, summarise, summarise_by_kind, targets  # noqa: E402
from agent_eval_tasks import KINDS, Task, load_tasks  # noqa: E402

AGENTS = ("plain", "msp", "wrapper")
LABELS = {
    "plain": "create_agent, no middleware",
    "msp": "UncertaintyMiddleware on max-softmax u",
    "wrapper": "UncertaintyMiddleware on the wrapper's u",
}
RECURSION_LIMIT = 16
"""Seven tool rounds; a run that hits it is counted as an error (wrong)."""


def pick(tasks: list[Task], limit: int | None) -> list[Task]:
    """All tasks, or a fixed subset of about `limit` spread over the kinds, chosen by a hash of the task id."""
    if not limit or limit >= len(tasks):
        return tasks
    kinds = sorted({t.kind for t in tasks}, key=KINDS.index)
    per_kind = math.ceil(limit / len(kinds))
    chosen: set[str] = set()
    for kind in kinds:
        ids = sorted((t.id for t in tasks if t.kind == kind), key=lambda i: hashlib.sha256(i.encode()).hexdigest())
        chosen.update(ids[:per_kind])
    return [t for t in tasks if t.id in chosen]


def spec_policy() -> dict[str, Any]:
    """The thresholds of the shipped agent spec's `policy:`, and its `max_steps` (model calls per turn)."""
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    policy = spec["policy"]
    keys = ("answer_below", "tool_below", "escalate_above")
    return {k: float(policy[k]) for k in keys if policy.get(k) is not None} | {"max_steps": int(spec["max_steps"])}


def build_agents(model: str, names: list[str], threads: int, policy: str, max_tokens: int) -> dict[str, Any]:
    """The agents asked for, sharing one loaded model."""
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    from metaspider import MetaSpiderChatModel, UncertaintyMiddleware
    from metaspider.tools.calculator import calculator
    from metaspider.tools.knowledge_base import make_knowledge_base_tool

    system_prompt = yaml.safe_load(SPEC.read_text(encoding="utf-8"))["system_prompt"]
    tools = [calculator, make_knowledge_base_tool(KB, top_k=3)]
    thresholds = spec_policy() if policy == "spec" else {}
    agents: dict[str, Any] = {}
    for name in names:
        wrapper = "default" if name == "wrapper" else None
        llm = MetaSpiderChatModel(model=model, wrapper=wrapper, n_threads=threads, max_tokens=max_tokens)
        middleware = [] if name == "plain" else [UncertaintyMiddleware(**thresholds)]
        agents[name] = create_agent(
            llm, tools=tools, system_prompt=system_prompt, middleware=middleware, checkpointer=InMemorySaver()
        )
    return agents


def run_task(agent: Any, name: str, task: Task) -> TaskResult:
    """One agent on one task: its final reply graded, its tool calls and routes recorded."""
    from langchain_core.messages import AIMessage, HumanMessage

    config = {"configurable": {"thread_id": f"{name}-{task.id}"}, "recursion_limit": RECURSION_LIMIT}
    started = time.monotonic()
    error = None
    try:
        state = agent.invoke({"messages": [HumanMessage(task.question)]}, config)
    except Exception as exc:  # a run that raises (recursion limit, context overflow) is a failed task
        error = f"{type(exc).__name__}: {exc}"[:300]
        state = dict(agent.get_state(config).values)  # the last checkpoint: the steps made before it raised
    seconds = time.monotonic() - started
    messages = state.get("messages", [])
    ais = [m for m in messages if isinstance(m, AIMessage)]
    calls = [c["name"] for m in ais for c in m.tool_calls]
    log = state.get("routing_log") or []
    routes = [step["route"] for step in log]
    first_u = log[0]["u"] if log else None
    if error is not None:
        answer = ais[-1].text if ais else ""
        outcome = grade(task.kind, answer, task.accepted, error=True)
        return TaskResult(task.id, task.kind, outcome, answer, calls, task.tool, seconds, routes, first_u, error)
    escalated = bool(state.get("__interrupt__"))
    final = ais[-1] if ais else None
    if escalated:
        pending = state["__interrupt__"][0].value
        answer = str(pending.get("draft", ""))
        routes.append("escalate")
        first_u = first_u if first_u is not None else pending.get("u")
    else:
        answer = final.text if final is not None else ""
    refusal_flag = bool(final is not None and not escalated and final.response_metadata.get("refusal"))
    outcome = grade(task.kind, answer, task.accepted, refusal_flag=refusal_flag, escalated=escalated)
    return TaskResult(task.id, task.kind, outcome, answer, calls, task.tool, seconds, routes, first_u)


def regrade(record: dict[str, Any], task: Task) -> dict[str, Any]:
    """A stored record graded again by `grade` from what it keeps (the reply, the routes, the error), so a
    report written from a partial file follows the grading of the code that writes it."""
    routes = record["routes"]
    outcome = grade(
        task.kind,
        record["answer"],
        task.accepted,
        refusal_flag=routes[-1:] == ["refuse"],
        escalated="escalate" in routes,
        error=record["error"] is not None,
    )
    return {**record, "outcome": outcome}


def report(model: str, command: str, records: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON report: per agent overall and per kind, and the targets."""
    by_id = {t.id: t for t in load_tasks()}
    stored = records
    records = [regrade(r, by_id[r["task_id"]]) for r in stored]
    agents = [a for a in AGENTS if any(r["agent"] == a for r in records)]
    regraded = [
        {"agent": r["agent"], "task_id": r["task_id"], "stored": old["outcome"], "now": r["outcome"]}
        for old, r in zip(stored, records, strict=True)
        if old["outcome"] != r["outcome"]
    ]
    as_stored = {a: {o: sum(r["agent"] == a and r["outcome"] == o for r in stored) for o in OUTCOMES} for a in agents}
    by_agent = {
        a: [TaskResult(**{k: v for k, v in r.items() if k != "agent"}) for r in records if r["agent"] == a]
        for a in agents
    }
    summaries = {a: summarise(rs) for a, rs in by_agent.items()}
    by_kind = {a: summarise_by_kind(rs, KINDS) for a, rs in by_agent.items()}
    return {
        "command": command,
        "model": model,
        **meta,
        "agents": {a: {"label": LABELS[a], "overall": summaries[a], "by_kind": by_kind[a]} for a in agents},
        "targets": targets(summaries, by_kind),
        "regraded": regraded,
        "as_stored": as_stored if regraded else {},
        "tasks": records,
    }


def _fmt(value: Any, share: bool = False) -> str:
    if value is None:
        return "–"
    if share:
        return f"{100 * value:.0f} %"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _table(rows: dict[str, dict[str, Any]], first: str) -> list[str]:
    head = f"| {first} | tasks | right | wrong | refused | escalated | net | tool calls | tool precision | tool recall | s/task |"
    lines = [head, "|" + "---|" * 11]
    for name, s in rows.items():
        c, sh = s["counts"], s["shares"]
        cells = [f"{c[o]} ({_fmt(sh[o], True)})" for o in OUTCOMES]
        lines.append(
            f"| {name} | {s['tasks']} | "
            + " | ".join(cells)
            + f" | {s['net']:+.2f} | {s['tool_calls']} | {_fmt(s['tool_call_precision'])} | "
            f"{_fmt(s['tool_recall'])} | {s['seconds_per_task']:.1f} |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The Markdown report."""
    lines = [
        f"# Agent evaluation on `{result['model']}`",
        "",
        "```",
        result["command"],
        "```",
        "",
        f"{result['n_tasks']} tasks ({result['subset']}), {result['policy_note']}. Started {result['started']}, "
        f"{result['wall_seconds'] / 60:.0f} min wall time; seconds per task are noisy (a shared machine), "
        "compare agents, not runs.",
        "",
    ]
    lines += [f"- {note}" for note in result.get("notes", [])]
    lines += ["", "## Per agent", ""]
    lines += _table({f"{a} ({v['label']})": v["overall"] for a, v in result["agents"].items()}, "agent")
    lines += ["", "## Targets", "", "| target | value | bound | result |", "|---|---|---|---|"]
    for t in result["targets"]:
        share = "open-ended" in t["target"]
        lines.append(
            f"| {t['target']} | {_fmt(t['value'], share)} | {_fmt(t['bound'], share)} | "
            f"{'pass' if t['pass'] else '**fail**'} |"
        )
    if not result["targets"]:
        lines.append("| (no pair of agents to compare) | | | |")
    lines += ["", "## Routes of the first step (the question alone)", ""]
    lines += ["| agent | kind | mean u | " + " | ".join(ROUTES) + " |", "|" + "---|" * (3 + len(ROUTES))]
    for agent, v in result["agents"].items():
        if agent == "plain":
            continue
        for kind, s in [*v["by_kind"].items(), ("all", v["overall"])]:
            routes = " | ".join(str(s["first_routes"][r]) for r in ROUTES)
            lines.append(f"| {agent} | {kind} | {_fmt(s['mean_first_u'])} | {routes} |")
    for agent, v in result["agents"].items():
        lines += ["", f"## {agent}: per kind", ""]
        lines += _table(v["by_kind"], "kind")
    if result.get("regraded"):
        lines += ["", "## Graded otherwise than when they ran", ""]
        lines += [
            "The grading of `agent_eval_scoring.py` applied to the stored replies differs for these records; the "
            "tables above use it. With the outcomes as stored:",
            "",
        ]
        lines += ["| agent | " + " | ".join(OUTCOMES) + " |", "|" + "---|" * (1 + len(OUTCOMES))]
        for agent, counts in result["as_stored"].items():
            lines.append(f"| {agent} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
        answers = {(t["agent"], t["task_id"]): t["answer"] for t in result["tasks"]}
        lines += ["", "| agent | task | stored | now | reply |", "|---|---|---|---|---|"]
        for r in result["regraded"]:
            reply = answers[(r["agent"], r["task_id"])][:100].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {r['agent']} | {r['task_id']} | {r['stored']} | {r['now']} | {reply} |")
    lines += ["", "Grading: see `benchmarks/agent_eval_scoring.py`; tasks: `benchmarks/agent_eval_tasks.py`.", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Outcome shares per agent, and net score per kind per agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    agents = list(result["agents"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(len(agents), 1)
    x = np.arange(len(OUTCOMES))
    for i, a in enumerate(agents):
        shares = [result["agents"][a]["overall"]["shares"][o] for o in OUTCOMES]
        left.bar(x + i * width, shares, width, label=a)
    left.set_xticks(x + width * (len(agents) - 1) / 2, OUTCOMES)
    left.set_ylabel("share of tasks")
    left.set_title("outcomes")
    left.legend()
    kinds = [k for k in KINDS if any(k in result["agents"][a]["by_kind"] for a in agents)]
    x = np.arange(len(kinds) + 1)
    for i, a in enumerate(agents):
        nets = [result["agents"][a]["by_kind"].get(k, {}).get("net", 0.0) for k in kinds]
        right.bar(x + i * width, nets + [result["agents"][a]["overall"]["net"]], width, label=a)
    right.axhline(0, color="black", linewidth=0.8)
    right.set_xticks(x + width * (len(agents) - 1) / 2, [*kinds, "all"], rotation=15)
    right.set_ylabel("net = (right − wrong) / tasks")
    right.set_title("net score")
    fig.suptitle(f"agent_eval on {result['model']} ({result['n_tasks']} tasks)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _with(stem: Path, suffix: str) -> Path:
    """`stem` + `suffix`: model names hold dots ("qwen2.5-coder-1.5b"), which `Path.with_suffix` would cut."""
    return stem.parent / f"{stem.name}{suffix}"


def write(result: dict[str, Any], stem: Path) -> None:
    """The JSON, Markdown and PNG results."""
    _with(stem, ".json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    _with(stem, ".md").write_text(markdown(result), encoding="utf-8")
    plot(result, _with(stem, ".png"))


def _run_arguments(argv: list[str]) -> list[str]:
    """The arguments of the run itself: without `--report-only`, `--resume` and `--note` (a report names the run)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--note":
            skip = True
        elif arg not in ("--report-only", "--resume") and not arg.startswith("--note="):
            kept.append(arg)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument("--limit", type=int, default=None, help="a fixed, hash-picked subset of about this many")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {','.join(KINDS)}")
    parser.add_argument("--agents", default=",".join(AGENTS), help=f"comma-separated, of {','.join(AGENTS)}")
    parser.add_argument("--policy", choices=("spec", "default"), default="spec")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--report-only", action="store_true", help="write the report from the partial file")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the partial file and run only the (task, agent) pairs it lacks: a long run over several sessions",
    )
    parser.add_argument("--note", action="append", default=[], help="a line for the report's notes (repeatable)")
    args = parser.parse_args(argv)
    command = "python benchmarks/agent_eval.py " + shlex.join(_run_arguments(sys.argv[1:] if argv is None else argv))

    from metaspider.core.wrapper.handle import SHIPPED_WRAPPERS

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    names = [a.strip() for a in args.agents.split(",") if a.strip()]
    if unknown := (set(kinds) - set(KINDS)) | (set(names) - set(AGENTS)):
        parser.error(f"unknown kind or agent: {sorted(unknown)}")
    notes: list[str] = list(args.note)
    if "wrapper" in names and args.model not in SHIPPED_WRAPPERS:
        names.remove("wrapper")
        notes.append(f"no wrapper is shipped for {args.model}: the wrapper agent is skipped")
    tasks = pick([t for t in load_tasks() if t.kind in kinds], args.limit)
    subset = (
        "all tasks"
        if len(tasks) == len([t for t in load_tasks() if t.kind in kinds])
        else (f"a fixed subset picked by a hash of the task id (--limit {args.limit})")
    )
    if args.policy == "spec":
        policy_note = f"middleware bands from agents/qa.yaml: {spec_policy()}"
    else:
        policy_note = "middleware bands: UncertaintyMiddleware() defaults"
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"agent_eval_{args.model}"
    partial = _with(stem, ".partial.jsonl")
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    wall = time.monotonic()
    records: list[dict[str, Any]] = []
    previous: dict[str, Any] = {}
    same_run = False
    if args.report_only:
        records = [json.loads(line) for line in partial.read_text(encoding="utf-8").splitlines() if line.strip()]
        names = [a for a in names if any(r["agent"] == a for r in records)]
        finished = {
            t.id for t in tasks if all(any(r["task_id"] == t.id and r["agent"] == a for r in records) for a in names)
        }
        records = [r for r in records if r["task_id"] in finished]
        previous = (
            json.loads(_with(stem, ".json").read_text(encoding="utf-8")) if _with(stem, ".json").is_file() else {}
        )
        same_run = previous.get("command") == command
        started_at = previous["started"] if same_run else "(reported from the partial file)"
        if len(finished) < len(tasks):
            subset = f"{len(finished)} of {len(tasks)} tasks in file order: the run was stopped"
            notes.append(
                f"the run was stopped after {len(finished)} of {len(tasks)} tasks: only the tasks every agent finished "
                "are reported"
            )
    else:
        agents = build_agents(args.model, names, args.threads, args.policy, args.max_tokens)
        if args.resume and partial.is_file():
            records = [json.loads(line) for line in partial.read_text(encoding="utf-8").splitlines() if line.strip()]
            records = [r for r in records if r["agent"] in names and r["task_id"] in {t.id for t in tasks}]
            notes.append("resumed: the tasks ran in more than one process, so wall_seconds sums the task times")
        else:
            partial.write_text("", encoding="utf-8")
        done = {(r["task_id"], r["agent"]) for r in records}
        for i, task in enumerate(tasks, 1):
            for name, agent in agents.items():
                if (task.id, name) in done:
                    continue
                result = run_task(agent, name, task)
                record = {"agent": name, **result.as_dict()}
                records.append(record)
                with partial.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                print(
                    f"[{i}/{len(tasks)}] {name:8s} {task.id:16s} {result.outcome:9s} {result.seconds:5.1f}s "
                    f"{result.routes} {result.tool_calls} {result.answer[:60]!r}",
                    file=sys.stderr,
                    flush=True,
                )
    meta = {
        "started": started_at,
        "wall_seconds": (
            (previous["wall_seconds"] if same_run else sum(r["seconds"] for r in records))
            if args.report_only
            else sum(r["seconds"] for r in records)
            if args.resume
            else time.monotonic() - wall
        ),
        "n_tasks": len({r["task_id"] for r in records}),
        "subset": subset,
        "policy": args.policy,
        "policy_note": policy_note,
        "threads": args.threads,
        "max_tokens": args.max_tokens,
        "notes": notes,
    }
    result = report(args.model, command, records, meta)
    write(result, stem)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
