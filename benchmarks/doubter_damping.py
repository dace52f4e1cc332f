"""Does damping the injection over generated steps cut what pass 2 costs the Doubter's answers?

    python benchmarks/doubter_damping.py [--run runs/countries_rebuild] [--threads N]

The Doubter decides to refuse at its first generated token, but its heads keep writing into every later
step, and on the countries test split that changed the correctness of 18 answered replies. Damping
(offset scale floor + (1 - floor)·exp(-step / tau), a field of the wrapper config) weakens the later
steps. This script evaluates the run's trained wrapper as it is and with two damping settings, on the
val and calib splits only (never test), through `metaloom eval`'s own code. Each setting gets a copy of
the run folder, so the run itself is left as it was.

Writes benchmarks/results/doubter_damping.{json,md,png}."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
from pathlib import Path

from metaspider.loom.evaluate import evaluate
from metaspider.loom.run_folder import RunFolder

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SPLITS = ("val", "calib")
SETTINGS = {"none (as shipped)": (1.0, 32.0), "floor 0.5, tau 8": (0.5, 8.0), "floor 0.25, tau 4": (0.25, 4.0)}
"""(damping_floor, damping_tau)."""


def damped_copy(run: Path, into: Path, floor: float, tau: float) -> RunFolder:
    """The run's config, val and calib collects and wrapper, with the wrapper's damping set."""
    shutil.copy(run / "run.json", into / "run.json")
    for split in SPLITS:
        shutil.copytree(run / "collect" / "countries" / split, into / "collect" / "countries" / split)
    shutil.copytree(run / "wrapper", into / "wrapper")
    manifest_path = into / "wrapper" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["config"] |= {"damping_floor": floor, "damping_tau": tau}
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return RunFolder(into)


def row(report: dict) -> dict:
    doubter = report["methods"]["doubter"]
    return {
        "n": report["n"],
        "base_accuracy": report["base_accuracy"],
        "coverage": doubter["coverage"],
        "selective_accuracy": doubter["selective_accuracy_at_own_coverage"],
        "wrapper_selective_accuracy_at_same_coverage": doubter["wrapper_selective_accuracy_at_same_coverage"],
        "answers_changed": doubter["answers_changed"],
        "refusal_precision": None if math.isnan(doubter["refusal_precision"]) else doubter["refusal_precision"],
    }


def markdown(rows: dict[str, dict[str, dict]], command: str) -> str:
    lines = [
        "# Doubter with damped injection (smollm2-135m, countries val and calib)",
        "",
        f"Produced by `{command}`.",
        "",
        "The test split is not used. Val also chose stage A's and stage B's stopping epochs and Platt-scaled u,",
        "so calib is the cleaner of the two.",
        "",
        "| damping | split | n | base | coverage | sel. acc | u's sel. acc at that coverage | answers changed by pass 2 | refusal precision |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, splits in rows.items():
        for split, r in splits.items():
            lines.append(
                f"| {name} | {split} | {r['n']} | {r['base_accuracy']:.1%} | {r['coverage']:.1%} | {r['selective_accuracy']:.1%} "
                f"| {r['wrapper_selective_accuracy_at_same_coverage']:.1%} | {r['answers_changed']} | {_percent(r['refusal_precision'])} |"
            )
    return "\n".join([*lines, "", "![coverage and selective accuracy](doubter_damping.png)", ""])


def _percent(value: float | None) -> str:
    return "– (no refusals)" if value is None else f"{value:.1%}"


def plot(rows: dict[str, dict[str, dict]], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.5), dpi=120)
    axes = figure.subplots()
    for (name, splits), marker in zip(rows.items(), "osD", strict=False):
        for split, color in zip(SPLITS, ("tab:blue", "tab:orange"), strict=False):
            r = splits[split]
            axes.scatter(r["coverage"], r["selective_accuracy"], marker=marker, color=color, label=f"{name}, {split}")
    axes.set(xlabel="coverage", ylabel="selective accuracy", xlim=(0, 1.05), ylim=(0, 1))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, format="png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "countries_rebuild")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    rows: dict[str, dict[str, dict]] = {}
    for name, (floor, tau) in SETTINGS.items():
        with tempfile.TemporaryDirectory() as folder:
            run = damped_copy(args.run, Path(folder), floor, tau)
            rows[name] = {
                split: row(evaluate(run, run.wrapper_dir, "countries", split, threads=args.threads)) for split in SPLITS
            }
        print(name, rows[name], flush=True)
    run_name = args.run.relative_to(ROOT) if args.run.is_relative_to(ROOT) else args.run
    command = f"python benchmarks/doubter_damping.py --run {run_name}"
    (RESULTS / "doubter_damping.json").write_text(
        json.dumps({"command": command, "settings": SETTINGS, "results": rows}, indent=2) + "\n"
    )
    (RESULTS / "doubter_damping.md").write_text(markdown(rows, command))
    plot(rows, RESULTS / "doubter_damping.png")


if __name__ == "__main__":
    main()
