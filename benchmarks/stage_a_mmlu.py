"""Does MMLU's train split help the default wrapper on countries? The one other source issue 3 allows.

    python benchmarks/read_depth.py collect --split train ...      # the countries splits, see read_depth.py
    python benchmarks/stage_a_mmlu.py collect --run runs/countries_depth
    python benchmarks/stage_a_mmlu.py cv --run runs/countries_depth

smollm2-135m is near chance on MMLU, so its right/wrong labels there may say little about what it knows.
This measures it instead of assuming it. The countries questions of train + val + calib are cut into the
5 country-hashed folds of `stage_a_recipes.py` (the test split is never loaded); each fold is scored by the
shipped recipe (late-third window scan, a seventh of the training side as val, Platt, u < 1/2) trained on
the other four folds, alone or together with MMLU train questions (a hash-picked sample; a seventh of
them joins val, as `train` would put MMLU's val split there), and by a recipe that sees MMLU alone.

Writes benchmarks/results/stage_a_mmlu.{json,md,png}."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from read_depth import collect, cv_command, shipped_windows, table
from stage_a_recipes import RESULTS, ROOT, Pool, evaluate

from metaspider.loom import metrics
from metaspider.loom.report import risk_coverage_plot
from metaspider.loom.run_folder import RunFolder
from metaspider.loom.stage_a import StageASettings

MMLU_QUESTIONS = 1500


def cv(run: Path, command: str) -> None:
    folder = RunFolder(run)
    pool = Pool(folder)
    countries = np.arange(len(pool.wrong))
    mmlu = folder.load("mmlu", "train")
    extra = pool.add(mmlu)
    windows = shipped_windows(pool)
    recipes = {
        "countries only (shipped)": lambda index: index,
        f"countries + {len(extra)} MMLU": lambda index: np.concatenate([index, extra]),
        f"{len(extra)} MMLU only": lambda index: extra,
    }
    rows, curves = {}, {}
    for name, training_side in recipes.items():

        def recipe(index: np.ndarray, settings: StageASettings, training_side=training_side):
            return pool.scan(training_side(index), settings, windows)

        u, rows[name] = evaluate(pool, recipe, StageASettings(), scored=countries)
        curves[name] = metrics.risk_coverage_curve(u, ~pool.wrong[countries])
        print(name, {k: round(v, 3) for k, v in rows[name].items() if k != "folds"}, flush=True)
    mmlu_accuracy = float(mmlu.labels("correct").mean())
    (RESULTS / "stage_a_mmlu.json").write_text(
        json.dumps({"command": command, "mmlu_train_accuracy": mmlu_accuracy, "recipes": rows}, indent=2) + "\n"
    )
    (RESULTS / "stage_a_mmlu.md").write_text(markdown(rows, command, len(extra), mmlu_accuracy))
    risk_coverage_plot(curves, RESULTS / "stage_a_mmlu.png")


def markdown(rows: dict[str, dict], command: str, n_mmlu: int, mmlu_accuracy: float) -> str:
    first = next(iter(rows.values()))
    lines = [
        "# Stage A with MMLU's train split, nested cross-validation on countries (smollm2-135m)",
        "",
        f"Produced by `{command}` (after its `collect` steps).",
        "",
        f"Scored: the {first['n']} countries questions of train + val + calib (base {first['base_accuracy']:.1%}), each by a",
        f"wrapper that never saw its country; the test split is never loaded. {n_mmlu} MMLU train questions,",
        f"{mmlu_accuracy:.1%} of them answered right by the model. Read-only u, answered when u < 1/2.",
        "",
        *table("training side", rows),
    ]
    return "\n".join([*lines, "", "![risk-coverage](stage_a_mmlu.png)", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("collect", "cv"))
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "countries_depth")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.step == "collect":
        collect(args.run, "train", args.threads, "mmlu", MMLU_QUESTIONS)
    else:
        cv(args.run, cv_command("stage_a_mmlu.py", args.run))


if __name__ == "__main__":
    main()
