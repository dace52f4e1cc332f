"""Does u drift with the length of the conversation? The shipped wrapper on a question alone and after
eight earlier turns.

    python benchmarks/history_drift.py --model qwen2.5-coder-1.5b --threads 1
    python benchmarks/history_drift.py --model smollm2-135m --threads 1

Questions: the conversations with eight earlier turns in the `conversations` data set's calib and test
splits (no wrapper trains on either; 27 of them), the first `--limit` in the data set's order. Each
earlier turn is a question of another topic with its reference answer, as the data set builds them. For each, `MetaSpiderChatModel.assess` (pass 1
alone: the very u an answer would carry) on the final question alone and on the whole history, with the
model's shipped wrapper and without one (u is then the first-token baseline). Reported: the median and
the 90th percentile of |u(alone) - u(after 8 turns)|, the mean signed change, and the wrapper's mean
support in both settings. The agent's `UncertaintyMiddleware` assesses the current question with this
turn's tool results only, so there the difference is zero by construction; this measures the chat model
itself, for callers who send it whole histories.

Writes benchmarks/results/history_drift_<model>.{json,md}."""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
PROMPT_STYLES = {
    "dataset": 'as `metaloom collect` renders them (with "Answer in a few words.")',
    "plain": "as bare question text",
}
TARGET = 0.05
"""Median |u(alone) - u(after 8 turns)| at most this."""


def conversations(limit: int) -> list[Any]:
    """The first `limit` calib and test conversations with eight earlier turns."""
    from metaspider.loom.datasets import load_items, split_items

    pool = load_items("conversations")
    items = [item for split in ("calib", "test") for item in split_items(pool, split) if len(item.history) == 8]
    return items[:limit]


def prompts(item: Any, style: str) -> tuple[list[Any], list[Any]]:
    """(the final question alone, after its history) as LangChain messages. `style` "dataset": as
    `metaloom collect` renders the item (the question with the data set's "Answer in a few words."
    instruction: what the wrapper was trained on); "plain": the bare question text, as a user types it."""
    from langchain_core.messages import AIMessage, HumanMessage

    from metaspider.loom.datasets import to_messages

    question = to_messages(item)[-1]["content"] if style == "dataset" else item.question
    history = [message for q, a in item.history for message in (HumanMessage(q), AIMessage(a))]
    return [HumanMessage(question)], [*history, HumanMessage(question)]


def measure(model: str, wrapper: str | None, items: list[Any], threads: int, style: str) -> dict[str, Any]:
    """u alone and after the history for every item, on one chat model."""
    from metaspider import MetaSpiderChatModel

    llm = MetaSpiderChatModel(model=model, wrapper=wrapper, n_threads=threads, max_tokens=1)
    rows = []
    started = time.monotonic()
    for item in items:
        alone_messages, after_messages = prompts(item, style)
        alone, after = llm.assess(alone_messages), llm.assess(after_messages)
        rows.append(
            {
                "id": item.id,
                "u_alone": alone.score,
                "u_after": after.score,
                "support_alone": alone.support,
                "support_after": after.support,
            }
        )
        print(f"{wrapper or 'bare':8s} {item.id}: {alone.score:.3f} -> {after.score:.3f}", file=sys.stderr, flush=True)
    diff = np.array([r["u_after"] - r["u_alone"] for r in rows])
    supports = {
        key: float(np.mean(values))
        for key in ("support_alone", "support_after")
        if (values := [r[key] for r in rows if r[key] is not None])
    }
    return {
        "n": len(rows),
        "median_abs_diff": float(statistics.median(np.abs(diff))),
        "p90_abs_diff": float(np.quantile(np.abs(diff), 0.9)),
        "mean_signed_diff": float(diff.mean()),
        "met": bool(statistics.median(np.abs(diff)) <= TARGET),
        "seconds": round(time.monotonic() - started, 1),
        **supports,
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# History drift: {result['model']}",
        "",
        f"Command: `{result['command']}`",
        "",
        f"{result['n']} calib and test conversations of the `conversations` data set with eight earlier turns; u from "
        "`MetaSpiderChatModel.assess` on the final question alone and after the whole history "
        f"(target: median |difference| <= {TARGET}). Questions written {PROMPT_STYLES[result['prompt']]}.",
        "",
        "| chat model | median abs diff | p90 abs diff | mean signed diff | support alone | support after | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["settings"].items():
        support = [f"{r[k]:.3f}" if k in r else "–" for k in ("support_alone", "support_after")]
        lines.append(
            f"| {name} | {r['median_abs_diff']:.3f} | {r['p90_abs_diff']:.3f} | {r['mean_signed_diff']:+.3f} | "
            f"{support[0]} | {support[1]} | {'met' if r['met'] else 'missed'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--prompt", choices=("dataset", "plain"), default="dataset", help="see prompts()")
    parser.add_argument(
        "--wrapper", default="default", help="a wrapper folder or sidecar, or default (the shipped one)"
    )
    parser.add_argument("--label", default=None, help="the result file's suffix for a --wrapper folder")
    args = parser.parse_args(argv)
    from metaspider.core.wrapper.handle import SHIPPED_WRAPPERS

    items = conversations(args.limit)
    shipped = args.wrapper != "default" or args.model in SHIPPED_WRAPPERS
    settings = {f"wrapper ({args.wrapper})": args.wrapper} if shipped else {}
    settings["bare model (first-token baseline)"] = None
    result = {
        "model": args.model,
        "command": "python benchmarks/history_drift.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "n": len(items),
        "target": TARGET,
        "prompt": args.prompt,
        "settings": {
            name: measure(args.model, wrapper, items, args.threads, args.prompt) for name, wrapper in settings.items()
        },
    }
    RESULTS.mkdir(exist_ok=True)
    # Not Path.with_suffix: model names hold dots. A wrapper other than the shipped one gets its own file.
    label = "" if args.wrapper == "default" else f"_{args.label or Path(args.wrapper).name}"
    stem = f"history_drift_{args.model}{label}" + ("" if args.prompt == "dataset" else f"_{args.prompt}")
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (RESULTS / f"{stem}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
