"""How good is the shipped stage-A recipe in expectation, away from the luck of one split?

    python benchmarks/stage_a_recipes.py [--run runs/countries_rebuild]

The countries test split is 249 questions: at about 130 answered, one selective accuracy has a standard
error near 4 points. This script never loads the test split. It pools train, val and calib of a run
folder (965 questions), cuts them into 5 folds by a hash of the country (as the splits do), and for each
fold trains stage A on the other four with a recipe, then scores the held-out fold with the read-only u
(no pass 2). Every question is thus scored by a wrapper that never saw it.

Recipes:
- `shipped`: what `metaloom train` does. A country-hashed seventh of the pool plays val (early stopping,
  the read-layer window with the lowest val BCE, Platt scaling); answer when u < 1/2.
- `shipped, wd 0.1, lr 3e-4`: the same with stronger weight decay and a smaller step.
- `cross-fitted`: 5-fold cross-fitting inside the pool (window and epoch count by out-of-fold BCE, Platt
  on the out-of-fold logits, then one fit on the whole pool), as scikit-learn's CalibratedClassifierCV
  does with ensemble=False.
- `fixed window A-B`: the shipped recipe without the read-window scan, always reading blocks A to B. The
  scan picks by a val BCE whose differences between windows can be a thousandth: is it worth its variance?

Writes benchmarks/results/stage_a_recipes.{json,md,png}."""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from metaspider.core.wrapper.torch_module import MetaWrapper
from metaspider.loom import metrics
from metaspider.loom.report import risk_coverage_plot
from metaspider.loom.run_folder import Collected, RunConfig, RunFolder
from metaspider.loom.stage_a import StageASettings, confidence_logits, train_stage_a
from metaspider.loom.train import ANSWER_BELOW, new_wrapper, read_layer_candidates

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
POOLED_SPLITS = ("train", "val", "calib")
FOLDS = 5
VAL_SHARE = 7
"""One seventh of the pool plays val: 119 of 847 questions, as in the real splits."""
Predict = Callable[[np.ndarray], np.ndarray]


class Pool:
    """The pooled questions of a run folder, and recipes that train on a subset of them."""

    def __init__(self, run: RunFolder) -> None:
        self.config: RunConfig = run.config()
        parts = [run.load("countries", split) for split in POOLED_SPLITS]
        self.acts = np.concatenate([part.acts for part in parts])
        self.wrong = np.concatenate([~part.labels("correct") for part in parts])
        self.country = [_fold_key(record) for part in parts for record in part.records]

    def add(self, part: Collected) -> np.ndarray:
        """Append another collected split (to train on, not to score); the indices of its questions."""
        start = len(self.wrong)
        self.acts = np.concatenate([self.acts, part.acts])
        self.wrong = np.concatenate([self.wrong, ~part.labels("correct")])
        self.country += [_fold_key(record) for record in part.records]
        return np.arange(start, len(self.wrong))

    def folds(self, index: np.ndarray, k: int, salt: str) -> np.ndarray:
        """Fold of each question in `index`, by a hash of its country: no country on both sides."""
        return np.array([int(hashlib.sha256(f"{salt}{self.country[i]}".encode()).hexdigest(), 16) % k for i in index])

    def wrapper(self, layers: tuple[int, ...]) -> MetaWrapper:
        return new_wrapper(int(self.acts.shape[-1]), layers, self.config.inject_layers)

    def x(self, index: np.ndarray, layers: tuple[int, ...]) -> np.ndarray:
        return self.acts[index][:, [self.config.read_layers.index(layer) for layer in layers]]

    def windows(self) -> list[tuple[int, ...]]:
        return read_layer_candidates(self.config.read_layers, self.config.inject_layers)

    def shipped(self, index: np.ndarray, settings: StageASettings) -> Predict:
        return self.scan(index, settings, self.windows())

    def fixed(self, layers: tuple[int, ...]) -> Callable[[np.ndarray, StageASettings], Predict]:
        """The shipped recipe with no read-window scan: always `layers`."""
        return lambda index, settings: self.scan(index, settings, [layers])

    def scan(self, index: np.ndarray, settings: StageASettings, windows: list[tuple[int, ...]]) -> Predict:
        val_fold = self.folds(index, VAL_SHARE, "val") == 0
        val, train = index[val_fold], index[~val_fold]
        best = None
        for layers in windows:
            wrapper = self.wrapper(layers)
            result = train_stage_a(
                wrapper, self.x(train, layers), self.wrong[train], self.x(val, layers), self.wrong[val], settings
            )
            if best is None or result.val_loss < best[2]:
                best = (wrapper, layers, result.val_loss)
        wrapper, layers, _ = best
        wrapper.fit_calibration(
            confidence_logits(wrapper, self.x(val, layers)), torch.as_tensor(self.wrong[val], dtype=torch.float32)
        )
        return lambda held_out: wrapper.calibrate(confidence_logits(wrapper, self.x(held_out, layers))).numpy()

    def cross_fitted(self, index: np.ndarray, settings: StageASettings) -> Predict:
        fold = self.folds(index, FOLDS, "inner")
        best = None
        for layers in self.windows():
            logits, epochs = np.zeros(len(index), dtype=np.float32), []
            for k in range(FOLDS):
                held, train = index[fold == k], index[fold != k]
                wrapper = self.wrapper(layers)
                result = train_stage_a(
                    wrapper, self.x(train, layers), self.wrong[train], self.x(held, layers), self.wrong[held], settings
                )
                logits[fold == k] = confidence_logits(wrapper, self.x(held, layers)).numpy()
                epochs.append(result.best_epoch)
            loss = F.binary_cross_entropy_with_logits(
                torch.as_tensor(logits), torch.as_tensor(self.wrong[index], dtype=torch.float32)
            ).item()
            if best is None or loss < best[0]:
                best = (loss, layers, logits, round(float(np.mean(epochs))))
        _, layers, logits, n_epochs = best
        wrapper = self.wrapper(layers)
        whole = self.x(index, layers)
        train_stage_a(
            wrapper,
            whole,
            self.wrong[index],
            whole,
            self.wrong[index],
            replace(settings, max_epochs=n_epochs, patience=n_epochs),
        )
        wrapper.fit_calibration(torch.as_tensor(logits), torch.as_tensor(self.wrong[index], dtype=torch.float32))
        return lambda held_out: wrapper.calibrate(confidence_logits(wrapper, self.x(held_out, layers))).numpy()


def _fold_key(record: dict) -> str:
    """What a question's fold is hashed from: the id after "dataset:", a country for countries' ids."""
    return record["id"].split(":", 1)[1]


def figures(u: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    answered = u < ANSWER_BELOW
    return {
        "n": len(u),
        "base_accuracy": float(correct.mean()),
        "auroc": metrics.auroc(u, correct),
        "coverage": float(answered.mean()),
        "selective_accuracy": metrics.selective_accuracy(answered, correct),
        "selective_accuracy_at_0.4": metrics.selective_accuracy_at_coverage(u, correct, 0.4),
        "selective_accuracy_at_0.5": metrics.selective_accuracy_at_coverage(u, correct, 0.5),
        "ece": metrics.ece(u, correct),
    }


def evaluate(
    pool: Pool,
    recipe: Callable[[np.ndarray, StageASettings], Predict],
    settings: StageASettings,
    scored: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """u of each `scored` question (default: the whole pool) from a recipe trained on the other outer folds."""
    scored = np.arange(len(pool.wrong)) if scored is None else scored
    outer = pool.folds(scored, FOLDS, "outer")
    u = np.zeros(len(scored))
    per_fold = []
    for k in range(FOLDS):
        held = scored[outer == k]
        u[outer == k] = recipe(scored[outer != k], settings)(held)
        per_fold.append(figures(u[outer == k], ~pool.wrong[held]))
    return u, {**figures(u, ~pool.wrong[scored]), "folds": per_fold}


def markdown(rows: dict[str, dict], command: str) -> str:
    lines = [
        "# Stage-A recipes, nested cross-validation on countries train + val + calib (smollm2-135m)",
        "",
        f"Produced by `{command}`.",
        "",
        "The test split is never loaded. Each question is scored by a wrapper trained on the other four folds",
        "(country-hashed); read-only u, no pass 2; coverage and its selective accuracy at the shipped operating",
        "point, u < 1/2.",
        "",
        "| recipe | n | base | AUROC | coverage (u < 1/2) | sel. acc there | vs base | sel. acc @40 % | @50 % | ECE |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['n']} | {r['base_accuracy']:.1%} | {r['auroc']:.3f} | {r['coverage']:.1%} | {r['selective_accuracy']:.1%} "
            f"| {100 * (r['selective_accuracy'] - r['base_accuracy']):+.1f} pts | {r['selective_accuracy_at_0.4']:.1%} "
            f"| {r['selective_accuracy_at_0.5']:.1%} | {r['ece']:.3f} |"
        )
    lines += ["", "Per fold, shipped recipe (n, base, coverage, selective accuracy, gain over base):", ""]
    for f in rows["shipped"]["folds"]:
        lines.append(
            f"- n {f['n']}: base {f['base_accuracy']:.1%}, coverage {f['coverage']:.1%}, "
            f"{f['selective_accuracy']:.1%} ({100 * (f['selective_accuracy'] - f['base_accuracy']):+.1f} pts)"
        )
    return "\n".join([*lines, "", "![risk-coverage](stage_a_recipes.png)", ""])


def pool_from_command_line(script: str, description: str) -> tuple[Pool, str]:
    """The pool of the run folder named by --run, and the command line to record beside the results."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "countries_rebuild")
    run = parser.parse_args().run
    torch.set_num_threads(2)
    shown = run.relative_to(ROOT) if run.is_relative_to(ROOT) else run
    return Pool(RunFolder(run)), f"python benchmarks/{script} --run {shown}"


def main() -> None:
    pool, command = pool_from_command_line("stage_a_recipes.py", __doc__.split("\n\n")[0])
    recipes = {
        "shipped": (pool.shipped, StageASettings()),
        "shipped, wd 0.1, lr 3e-4": (pool.shipped, StageASettings(weight_decay=0.1, lr=3e-4)),
        "cross-fitted": (pool.cross_fitted, StageASettings()),
        **{f"fixed window {w[0]}-{w[-1]}": (pool.fixed(w), StageASettings()) for w in pool.windows()},
    }
    rows, curves = {}, {}
    for name, (recipe, settings) in recipes.items():
        u, rows[name] = evaluate(pool, recipe, settings)
        curves[name] = metrics.risk_coverage_curve(u, ~pool.wrong)
        print(name, {k: round(v, 3) for k, v in rows[name].items() if k != "folds"}, flush=True)
    (RESULTS / "stage_a_recipes.json").write_text(json.dumps({"command": command, "recipes": rows}, indent=2) + "\n")
    (RESULTS / "stage_a_recipes.md").write_text(markdown(rows, command))
    risk_coverage_plot(curves, RESULTS / "stage_a_recipes.png")


if __name__ == "__main__":
    main()
