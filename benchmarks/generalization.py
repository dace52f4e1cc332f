"""Does u travel? Leave-one-topic-out for each model, against the baselines of both moments.

    benchmarks/collect_topics.sh MODEL /work/runs/MODEL countries elements ...   # resumable collects
    python benchmarks/generalization.py --run smollm2-135m=/work/runs/smollm2-135m \\
        --pending qwen2.5-coder-1.5b=/work/runs/qwen2.5-coder-1.5b

For every topic of a run, `metaloom lotocv`'s code trains stage A and the linear probes on the other
topics' train splits (validation on theirs too) and scores that topic's test split; the baselines read
off the collect are scored on the same questions. A model given with `--pending` is listed as pending,
with how far its collect has come, instead of being scored.

Writes benchmarks/results/generalization.{json,md,png}."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from metaspider.loom.lotocv import AFTER, BEFORE, METHODS, load_pool, lotocv_by_split
from metaspider.loom.report import json_safe
from metaspider.loom.run_folder import RunFolder

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
KEYS = (
    ("auroc", "AUROC (higher is better)"),
    ("aurc", "AURC (lower is better)"),
    ("selective_accuracy_50", "selective accuracy at 50 % coverage"),
)


def collect_state(run: RunFolder) -> dict[str, Any]:
    """Questions stored per data set and split, and the collect wall times recorded in the run."""
    stored: dict[str, dict[str, int]] = {}
    root = run.path / "collect"
    for folder in sorted(root.glob("*")) if root.is_dir() else []:
        for split in sorted(p.name for p in folder.iterdir() if p.is_dir()):
            stored.setdefault(folder.name, {})[split] = len(run.stored_ids(folder.name, split))
    times_file = run.path / "collect_times.json"
    times = json.loads(times_file.read_text(encoding="utf-8")) if times_file.is_file() else {}
    return {
        "stored": stored,
        "wall_seconds": times,
        "total_wall_seconds": round(sum(t["seconds"] for t in times.values()), 1),
    }


def score_model(run: RunFolder, by: str, splits: tuple[str, ...] = ("test",)) -> dict[str, dict[str, Any]]:
    """{split: lotocv result} for each scored split, from one training per held-out topic."""
    started = time.monotonic()
    results = lotocv_by_split(
        load_pool([run], by), splits, on_topic=lambda name: print(f"  holding out {name}", file=sys.stderr)
    )
    extra = {"collect": collect_state(run), "lotocv_seconds": round(time.monotonic() - started, 1)}
    return {split: result | extra for split, result in results.items()}


def markdown(results: dict[str, Any], pending: dict[str, Any], command: str) -> str:
    split = next((r.get("scored_split", "test") for r in results.values()), "test")
    lines = [
        "# Leave-one-topic-out: does u travel?",
        "",
        f"Command: `{command}`",
        "",
        "For each topic, stage A (`wrapper`) and the linear probes are trained on every *other* topic's train split "
        "(early stopping, the read-layer window and the probes' C chosen on the other topics' val split) and scored on "
        f"the held-out topic's {split} split. Methods before the answer (decision point): "
        + ", ".join(f"`{m}`" for m in BEFORE)
        + "; after the answer: "
        + ", ".join(f"`{m}`" for m in AFTER)
        + ". `linear_probe`/`probe_post`: one standardised logistic regression per read layer (scikit-learn), "
        "probabilities averaged over the layers, at the decision point / at the answer's last token. `msp_first`/"
        "`entropy_first`: the first answer token's distribution; `msp`/`entropy`: averaged over the answer's tokens; "
        "`p_true`: P(True) of the model asked, as a follow-up turn, whether its answer is true (normalised over "
        "True/False); `consistency`: share of 5 samples at T = 0.7 matching the greedy answer (exact match after the "
        "data set's normaliser), only on a hash-picked subset of each test split. The wrapper's own signals with "
        "support and fallback (`metaspider/loom/fallback.py`): `wrapper_fallback` is stage A's u, Platt-scaled on val, "
        "blended toward a logistic regression on the first token's max-softmax probability and entropy as the "
        "question's support falls (`support`: 1 near the training questions in the wrapper's bottleneck space, "
        "toward 0 far from them); `wrapper_hybrid` is the hybrid head before the answer (stage A's u stacked with the "
        "first token's max-softmax probability and entropy by a regression fitted on out-of-topic logits of the other "
        "topics' val split, `metaspider/loom/hybrid.py`), blended the same way; `wrapper_post` is the hybrid post-answer head (`probe_post` stacked, on val, with "
        "the answer's max-softmax probability and entropy); `wrapper_post_fallback` is it blended the same way. "
        "Means are unweighted over topics.",
        "",
    ]
    for model, result in results.items():
        methods = [m for m in METHODS if m in result["mean_auroc"]]
        topics = result["topics"]
        lines += [f"## {model}", ""]
        lines += [
            f"AUROC per held-out topic (n = {result.get('scored_split', 'test')} questions, acc = base accuracy, "
            "support = mean support; `consistency` on n_cons of them):",
            "",
        ]
        lines += [
            "| topic | n | acc | support | " + " | ".join(methods) + " | n_cons |",
            "|" + "---|" * (len(methods) + 5),
        ]
        for name, r in topics.items():
            cells = " | ".join(_fmt(r["auroc"].get(m)) for m in methods)
            support = _fmt(r.get("support"))
            lines.append(
                f"| {name} | {r['n']} | {r['base_accuracy']:.2f} | {support} | {cells} | {r['n_consistency']} |"
            )
        thin = [name for name, r in topics.items() if min(r["base_accuracy"], 1 - r["base_accuracy"]) * r["n"] < 5]
        if thin:
            lines += [
                "",
                (
                    f"Fewer than 5 right (or 5 wrong) answers on the {split} questions of {', '.join(thin)}: their AUROCs "
                    "rest on a handful of questions and are little more than noise ('–': all right or all wrong, no "
                    "AUROC); the means count them all the same."
                ),
            ]
        lines += [
            "",
            "Means over topics:",
            "",
            "| metric | " + " | ".join(methods) + " |",
            "|" + "---|" * (len(methods) + 1),
        ]
        for key, label in KEYS:
            lines.append(f"| {label} | " + " | ".join(_fmt(result[f"mean_{key}"].get(m)) for m in methods) + " |")
        state = result["collect"]
        lines += [
            "",
            (
                f"`consistency` was run on: {', '.join(result['consistency_topics']) or 'no topic'} "
                "(the other topics have no `consistency` value)."
            ),
            "",
            f"Collect: {state['total_wall_seconds'] / 60:.1f} min of wall time in all, questions stored per split:",
            "",
            "| data set | test | val | train | calib | wall time (s) |",
            "|---|---|---|---|---|---|",
        ]
        for dataset, splits in state["stored"].items():
            wall = sum(t["seconds"] for key, t in state["wall_seconds"].items() if key.split("/")[0] == dataset)
            lines.append(
                f"| {dataset} | "
                + " | ".join(str(splits.get(s, 0)) for s in ("test", "val", "train", "calib"))
                + f" | {wall:.0f} |"
            )
        lines += ["", f"lotocv itself took {result['lotocv_seconds'] / 60:.1f} min.", ""]
    for model, state in pending.items():
        n = sum(sum(splits.values()) for splits in state["stored"].values())
        lines += [
            f"## {model}: pending",
            "",
            (
                f"The collect is still running or was interrupted (resumable): {n} questions stored so far, "
                f"{state['total_wall_seconds'] / 3600:.1f} h of collect wall time. Not scored yet."
            ),
            "",
        ]
    lines += ["![per-topic AUROC by method](generalization.png)", ""]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def plot(results: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(14, 4.2 * max(1, len(results))), dpi=110)
    axes_list = figure.subplots(max(1, len(results)), 1, squeeze=False)[:, 0]
    from matplotlib import colormaps

    palette = colormaps["tab20"]
    colors = {method: palette(index) for index, method in enumerate(METHODS)}
    for axes, (model, result) in zip(axes_list, results.items(), strict=False):
        topics = list(result["topics"])
        methods = [m for m in METHODS if m in result["mean_auroc"]]
        width = 0.8 / len(methods)
        for index, method in enumerate(methods):
            values = [result["topics"][t]["auroc"].get(method, np.nan) for t in topics]
            x = np.arange(len(topics)) + (index - (len(methods) - 1) / 2) * width
            label = f"{method} ({'before' if method in BEFORE else 'after'}; mean {result['mean_auroc'][method]:.2f})"
            axes.bar(
                x,
                np.nan_to_num(np.asarray(values, dtype=float) - 0.5),
                width,
                bottom=0.5,
                color=colors[method],
                label=label,
            )
        axes.axhline(0.5, color="black", linewidth=0.8)
        axes.set_xticks(np.arange(len(topics)), topics, rotation=30, ha="right")
        axes.set(ylabel="AUROC on the held-out topic", ylim=(0.0, 1.0), title=f"{model}: leave-one-topic-out")
        axes.grid(axis="y", alpha=0.3)
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, format="png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", default=[], help="MODEL=RUN_DIR of a model to score (repeatable)")
    parser.add_argument(
        "--pending", action="append", default=[], help="MODEL=RUN_DIR of a model whose collect is not done"
    )
    parser.add_argument("--by", default="auto", help="topic = dataset, subject or auto (see metaloom lotocv --by)")
    parser.add_argument("--out", type=Path, default=RESULTS / "generalization")
    parser.add_argument(
        "--score-split",
        default="test",
        help="test (the report), val (to compare recipes without reading test), or val,test (both from one "
        "training per topic; the val tables go to OUT_val.*)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="Torch threads (1 beside a running collect: threads spin)"
    )
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    command = "python benchmarks/generalization.py " + shlex.join(sys.argv[1:])
    splits = tuple(args.score_split.split(","))
    by_split: dict[str, dict[str, Any]] = {split: {} for split in splits}
    pending = {}
    for spec in args.run:
        model, run = spec.split("=", 1)
        print(f"{model}: leave-one-topic-out on {run}", file=sys.stderr)
        for split, result in score_model(RunFolder(run), args.by, splits).items():
            by_split[split][model] = result
    for spec in args.pending:
        model, run = spec.split("=", 1)
        pending[model] = collect_state(RunFolder(run))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for split, results in by_split.items():
        out = args.out if split == "test" or len(splits) == 1 else args.out.with_name(f"{args.out.name}_{split}")
        payload = {"command": command, "scored_split": split, "models": results, "pending": pending}
        # appended, not with_suffix: a name such as "..._qwen2.5-coder-1.5b" has a dot of its own
        file = {ext: out.with_name(f"{out.name}.{ext}") for ext in ("json", "md", "png")}
        file["json"].write_text(json.dumps(json_safe(payload), indent=2) + "\n", encoding="utf-8")
        file["md"].write_text(markdown(results, pending, command), encoding="utf-8")
        plot(results, file["png"])
        print(f"wrote {out}.{{json,md,png}}", file=sys.stderr)


if __name__ == "__main__":
    main()
