"""Score a wrapper on each topic's test split (the in-topic table), one `metaloom eval` per topic.

    python benchmarks/in_topic_eval.py --run /work/runs/smollm2-135m --out benchmarks/results/mixture_smollm2-135m \\
        --limit 40
    python benchmarks/in_topic_eval.py --model qwen2.5-coder-1.5b --wrapper default --run /work/runs/qwen-test \\
        --out benchmarks/results/in_topic_qwen2.5-coder-1.5b --limit 40

For every topic data set the run holds a test split of (`countries`, the open-question topics,
`open-ended`, `conversations`), `metaloom eval --json` with the run's wrapper: AUROC of `wrapper` (u
before the answer), `wrapper_post` (after it) and the baselines of both moments, the mean support, and
the Doubter's text refusals (coverage, selective accuracy, and max-softmax probability's selective
accuracy at the same coverage). Writes OUT/in_topic.{json,md}.

With `--model` (and `--wrapper`, `default` for the shipped one) the run folder may be new: every topic's
test split is collected into it first (the same hash-picked `--limit` questions a training run's
collect stores), so a shipped wrapper is scored without the run that trained it."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from metaspider.loom.topics.registry import CONVERSATIONS, OPEN_ENDED, QA_TOPICS

METALOOM = Path(sys.executable).with_name("metaloom")
TOPICS = ("countries", *QA_TOPICS, OPEN_ENDED, CONVERSATIONS)


def in_topic(
    run: Path,
    topics: list[str],
    log: Path,
    limit: int | None = None,
    model: str | None = None,
    wrapper: str | None = None,
    on_topic: Any = None,
) -> dict[str, Any]:
    """`metaloom eval --json` on each topic's test split (`limit`: the hash-picked sample `collect --limit`
    stored, so nothing new is collected on a training run): {topic: report}. `on_topic(reports)` runs after
    each topic (the tables are rewritten as they grow)."""
    reports: dict[str, Any] = {}
    for topic in topics:
        command = ["eval", "--run", str(run), "--dataset", topic, "--split", "test", "--threads", "1", "--json"]
        if limit is not None:
            command += ["--limit", str(limit)]
        if model is not None:
            command += ["--model", model]
        if wrapper is not None:
            command += ["--wrapper", wrapper]
        with log.open("a", encoding="utf-8") as err:
            done = subprocess.run([str(METALOOM), *command], check=True, stdout=subprocess.PIPE, stderr=err, text=True)
        reports[topic] = json.loads(done.stdout)
        print(f"eval {topic}: done", file=sys.stderr)
        if on_topic is not None:
            on_topic(reports)
    return reports


def table(model: str, reports: dict[str, Any], command: str) -> str:
    """The in-topic table as Markdown: AUROC per method, the Doubter's coverage and selective accuracy."""
    methods = ("wrapper", "wrapper_post", "msp_first", "entropy_first", "msp", "entropy", "p_true")
    lines = [
        f"# {model}: the run's wrapper on each topic's test split",
        "",
        f"Command: `{command}`",
        "",
        "AUROC of each method for detecting wrong answers (`wrapper`: u before the answer, blended toward its "
        "fallback where support is low; `wrapper_post`: u after the answer), mean support, and the Doubter's "
        "text refusals: coverage, selective accuracy, and max-softmax probability's (`msp`) selective accuracy "
        "at the same coverage.",
        "",
        "| topic | n | acc | support | " + " | ".join(methods) + " | Doubter coverage | sel. acc | msp at same cov. |",
        "|" + "---|" * (len(methods) + 7),
    ]
    for topic, report in reports.items():
        auroc = [_fmt((report["methods"].get(m) or {}).get("auroc")) for m in methods]
        doubter = report["methods"].get("doubter") or {}
        support = (report.get("support") or {}).get("mean")
        lines.append(
            f"| {topic} | {report['n']} | {report['base_accuracy']:.2f} | {_fmt(support)} | "
            + " | ".join(auroc)
            + f" | {_pct(doubter.get('coverage'))} | {_pct(doubter.get('selective_accuracy_at_own_coverage'))}"
            + f" | {_pct(doubter.get('msp_selective_accuracy_at_same_coverage'))} |"
        )
    return "\n".join([*lines, *summary_lines(reports)]) + "\n"


FLOOR = 0.02
"""The shipped wrapper may fall this far below its moment's max-softmax probability on a topic, no further."""


def summary(reports: dict[str, Any]) -> dict[str, Any]:
    """Figures over all topics: mean AUROC per method (over the topics with one), the topics where u falls
    more than FLOOR below `msp_first` (before the answer) or u_post below `msp` (after it), the Doubter's
    text refusals pooled over every question (and max-softmax probability's selective accuracy with each
    topic answered at the Doubter's coverage there), and the open-ended requests refused."""
    methods = ("wrapper", "wrapper_post", "msp_first", "entropy_first", "msp", "entropy", "p_true")

    def auroc(report: dict[str, Any], method: str) -> float | None:
        value = (report["methods"].get(method) or {}).get("auroc")
        return None if value is None or value != value else float(value)

    means = {}
    for method in methods:
        values = [v for r in reports.values() if (v := auroc(r, method)) is not None]
        means[method] = sum(values) / len(values) if values else None
    below = {
        moment: [
            {"topic": t, own: auroc(r, own), base: auroc(r, base)}
            for t, r in reports.items()
            if auroc(r, own) is not None and auroc(r, base) is not None and auroc(r, own) < auroc(r, base) - FLOOR
        ]
        for moment, own, base in (("before", "wrapper", "msp_first"), ("after", "wrapper_post", "msp"))
    }
    n = answered = right = msp_right = base_right = 0.0
    for report in reports.values():
        doubter = report["methods"].get("doubter") or {}
        if doubter.get("coverage") is None:
            continue
        k = report["n"] * doubter["coverage"]
        n += report["n"]
        answered += k
        base_right += report["n"] * report["base_accuracy"]
        if k:
            right += k * doubter["selective_accuracy_at_own_coverage"]
            msp_right += k * doubter["msp_selective_accuracy_at_same_coverage"]
    open_ended = (reports.get(OPEN_ENDED) or {}).get("methods", {}).get("doubter") or {}
    return {
        "mean_auroc": means,
        "n_topics_with_auroc": sum(auroc(r, "wrapper") is not None for r in reports.values()),
        "below_msp_minus_floor": below,
        "doubter": {
            "n": int(n),
            "coverage": answered / n if n else None,
            "selective_accuracy": right / answered if answered else None,
            "base_accuracy": base_right / n if n else None,
            "msp_selective_accuracy_at_same_coverage": msp_right / answered if answered else None,
        },
        "open_ended_refused": None if open_ended.get("coverage") is None else 1 - open_ended["coverage"],
    }


def summary_lines(reports: dict[str, Any]) -> list[str]:
    """`summary` as Markdown."""
    s = summary(reports)
    d = s["doubter"]
    lines = [
        "",
        f"Mean AUROC over the {s['n_topics_with_auroc']} topics with right and wrong answers:",
        "",
        "| " + " | ".join(s["mean_auroc"]) + " |",
        "|" + "---|" * len(s["mean_auroc"]),
        "| " + " | ".join(_fmt(v) for v in s["mean_auroc"].values()) + " |",
        "",
    ]
    for moment, own, base in (("before", "wrapper", "msp_first"), ("after", "wrapper_post", "msp")):
        rows = s["below_msp_minus_floor"][moment]
        listed = ", ".join(f"{r['topic']} ({r[own]:.3f} vs {r[base]:.3f})" for r in rows) or "none"
        lines.append(f"Topics where `{own}` is more than {FLOOR} below `{base}`: {listed}.")
    if d["coverage"] is not None:
        gain = 100 * (d["selective_accuracy"] - d["base_accuracy"])
        lines += [
            "",
            f"The Doubter's text refusals over all {d['n']} questions: {_pct(d['coverage'])} answered, "
            f"{_pct(d['selective_accuracy'])} of them right, against a base accuracy of {_pct(d['base_accuracy'])} "
            f"({gain:+.1f} points); max-softmax probability answering the same number of questions in each topic: "
            f"{_pct(d['msp_selective_accuracy_at_same_coverage'])} right.",
        ]
    if s["open_ended_refused"] is not None:
        lines += ["", f"Open-ended requests refused: {_pct(s['open_ended_refused'])}."]
    return lines


def _fmt(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="A run folder with a trained wrapper")
    parser.add_argument("--out", type=Path, required=True, help="Folder for in_topic.{json,md}")
    parser.add_argument("--limit", type=int, default=None, help="Questions per test split (as collected)")
    parser.add_argument("--model", default=None, help="Base model; the run folder may be new (every topic collected)")
    parser.add_argument("--wrapper", default=None, help="A wrapper folder or 'default' (default: the run's)")
    parser.add_argument(
        "--report-only", action="store_true", help="Rewrite OUT/in_topic.{json,md} from OUT/in_topic.json"
    )
    args = parser.parse_args()
    if args.report_only:
        payload = json.loads((args.out / "in_topic.json").read_text(encoding="utf-8"))
        payload["summary"] = summary(payload["topics"])
        (args.out / "in_topic.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        markdown = table(payload["model"], payload["topics"], payload["command"])
        (args.out / "in_topic.md").write_text(markdown, encoding="utf-8")
        return
    command = "python benchmarks/in_topic_eval.py " + shlex.join(sys.argv[1:])
    if args.model is not None:
        topics, model = list(TOPICS), args.model
    else:
        topics = [t for t in TOPICS if (args.run / "collect" / t / "test").is_dir()]
        model = json.loads((args.run / "run.json").read_text(encoding="utf-8"))["model"]
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def write(reports: dict[str, Any]) -> None:
        payload = {
            "command": command,
            "model": model,
            "eval_seconds": round(time.perf_counter() - start, 1),
            "topics_done": f"{len(reports)} of {len(topics)}",
            "topics": reports,
            "summary": summary(reports),
        }
        (args.out / "in_topic.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        (args.out / "in_topic.md").write_text(table(model, reports, command), encoding="utf-8")

    in_topic(args.run, topics, args.out / "eval.log", args.limit, args.model, args.wrapper, on_topic=write)
    print(f"wrote {args.out}/in_topic.{{json,md}}", file=sys.stderr)


if __name__ == "__main__":
    main()
