"""Which blocks carry the "will I get this wrong?" signal? Stage A on windows at every depth.

    python benchmarks/read_depth.py collect --split train --run runs/countries_depth   # and val, calib
    python benchmarks/read_depth.py cv --run runs/countries_depth

`train` scans only the late third of the blocks (DESIGN.md's default read layers). Probing studies
often find what a model knows about a fact clearest in its middle blocks, and any block at or below the
lowest injected one can be read without losing llama.cpp's priming. `collect` stores every such block
at the decision point (no stage-B prefix) for the countries train, val and calib splits; `cv` runs the
nested, country-hashed cross-validation of `stage_a_recipes.py` (the test split is never loaded) with
the shipped recipe on fixed three-block windows from the bottom to the top, and on the shipped scan.

Writes benchmarks/results/read_depth.{json,md,png}."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from stage_a_recipes import RESULTS, ROOT, Pool, evaluate

from metaspider.core.wrapper.config import default_layers
from metaspider.loom import metrics
from metaspider.loom.report import risk_coverage_plot
from metaspider.loom.run_folder import RunConfig, RunFolder
from metaspider.loom.stage_a import StageASettings
from metaspider.loom.train import read_layer_candidates

MODEL = "smollm2-135m"
WIDTH = 3


def collect(run: Path, split: str, threads: int, dataset: str = "countries", limit: int | None = None) -> None:
    from metaspider.loom.backbones import llama_backbone
    from metaspider.loom.collect import collect as collect_split

    backbone = llama_backbone(MODEL, threads)
    _, inject = default_layers(backbone.n_layers)
    config = RunConfig(MODEL, backbone.fingerprint, tuple(range(min(inject) + 1)), inject, None)
    summary = collect_split(RunFolder(run), backbone, config, dataset, split, limit)
    print(f"{dataset}/{split}: {summary.n_items} questions, base accuracy {summary.accuracy:.1%}")


def windows(pool: Pool) -> list[tuple[int, ...]]:
    layers = pool.config.read_layers
    return [layers[end - WIDTH : end] for end in range(len(layers), WIDTH - 1, -WIDTH)][::-1]


def shipped_windows(pool: Pool) -> list[tuple[int, ...]]:
    """The windows `train` scans: those of the late third, as if only it had been collected."""
    n_layers = max(pool.config.inject_layers) + 2  # default_layers injects up to the block below the last
    return read_layer_candidates(default_layers(n_layers)[0], pool.config.inject_layers)


def cv(run: Path, command: str) -> None:
    pool = Pool(RunFolder(run))
    recipes = {f"blocks {w[0]}-{w[-1]}": pool.fixed(w) for w in windows(pool)}
    recipes["shipped scan (late third)"] = lambda index, settings: pool.scan(index, settings, shipped_windows(pool))
    rows, curves = {}, {}
    for name, recipe in recipes.items():
        u, rows[name] = evaluate(pool, recipe, StageASettings())
        curves[name] = metrics.risk_coverage_curve(u, ~pool.wrong)
        print(name, {k: round(v, 3) for k, v in rows[name].items() if k != "folds"}, flush=True)
    (RESULTS / "read_depth.json").write_text(json.dumps({"command": command, "recipes": rows}, indent=2) + "\n")
    (RESULTS / "read_depth.md").write_text(markdown(rows, command))
    shown = [*list(curves)[::2], "shipped scan (late third)"]  # every other depth keeps the plot readable
    risk_coverage_plot({name: curves[name] for name in dict.fromkeys(shown)}, RESULTS / "read_depth.png")


def table(first_column: str, rows: dict[str, dict]) -> list[str]:
    """The Markdown table the two scripts of this kind share: one row per recipe."""
    lines = [
        f"| {first_column} | AUROC | coverage (u < 1/2) | sel. acc there | vs base (pts) | sel. acc @40 % | @50 % | ECE | fold gains (pts) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        gains = ", ".join(_points(f) for f in r["folds"])
        lines.append(
            f"| {name} | {r['auroc']:.3f} | {r['coverage']:.1%} | {_percent(r['selective_accuracy'])} | {_points(r)} "
            f"| {r['selective_accuracy_at_0.4']:.1%} | {r['selective_accuracy_at_0.5']:.1%} | {r['ece']:.3f} | {gains} |"
        )
    return lines


def _percent(value: float) -> str:
    return "–" if np.isnan(value) else f"{value:.1%}"


def _points(figures: dict) -> str:
    gain = figures["selective_accuracy"] - figures["base_accuracy"]
    return "none answered" if np.isnan(gain) else f"{100 * gain:+.1f}"


def markdown(rows: dict[str, dict], command: str) -> str:
    lines = [
        "# Read depth: stage A on three-block windows, nested cross-validation (smollm2-135m, countries)",
        "",
        f"Produced by `{command}` (after its `collect` steps).",
        "",
        "Train + val + calib pooled, 5 country-hashed folds, each scored by a stage A trained on the other four",
        "(a seventh of them playing val); the test split is never loaded. Read-only u; the operating point is",
        "the shipped one, u < 1/2. Per-fold gains are in the JSON.",
        "",
        *table("read blocks", rows),
    ]
    first = next(iter(rows.values()))
    lines += [
        "",
        f"n = {first['n']}, base accuracy {first['base_accuracy']:.1%}.",
        "",
        "![risk-coverage](read_depth.png)",
        "",
    ]
    return "\n".join(lines)


def cv_command(script: str, run: Path) -> str:
    """The command line to record beside the results; Torch gets both cores for the many small fits."""
    import torch

    torch.set_num_threads(2)
    shown = run.relative_to(ROOT) if run.is_relative_to(ROOT) else run
    return f"python benchmarks/{script} cv --run {shown}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("collect", "cv"))
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "countries_depth")
    parser.add_argument("--split", choices=("train", "val", "calib"), default="train")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.step == "collect":
        collect(args.run, args.split, args.threads)
    else:
        cv(args.run, cv_command("read_depth.py", args.run))


if __name__ == "__main__":
    main()
