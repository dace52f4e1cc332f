"""Would more training questions help the default wrapper? The shipped stage-A recipe's learning curve.

    python benchmarks/stage_a_learning_curve.py [--run runs/countries_rebuild]

The country set is used up: all of its questions are in some split. Before writing new question
templates (which would lengthen the 20-minute rebuild), this measures how the read-only u improves with
the number of training questions. Same nested cross-validation as `stage_a_recipes.py` (train + val +
calib pooled, 5 country-hashed folds, the test split never loaded), but each outer fold's training side
is cut to a fraction of its countries, drawn by a hash with three different salts below the full size.

Writes benchmarks/results/stage_a_learning_curve.{json,md,png}."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from stage_a_recipes import RESULTS, Pool, evaluate, pool_from_command_line

from metaspider.loom.stage_a import StageASettings

FRACTIONS = (0.25, 0.5, 0.75, 1.0)
SALTS = ("a", "b", "c")


def learning_curve(pool: Pool) -> list[dict]:
    rows = []
    for fraction in FRACTIONS:
        draws = []
        for salt in SALTS if fraction < 1 else SALTS[:1]:

            def recipe(index: np.ndarray, settings: StageASettings, salt: str = salt, fraction: float = fraction):
                kept = pool.folds(index, 100, f"subsample-{salt}") < round(100 * fraction)
                return pool.shipped(index[kept], settings)

            _, figures = evaluate(pool, recipe, StageASettings())
            draws.append({k: v for k, v in figures.items() if k != "folds"})
        rows.append({"fraction": fraction, "draws": draws, "mean": _mean(draws)})
        print(fraction, {k: round(v, 3) for k, v in rows[-1]["mean"].items()}, flush=True)
    return rows


def _mean(draws: list[dict]) -> dict[str, float]:
    return {key: float(np.mean([d[key] for d in draws])) for key in draws[0]}


def markdown(rows: list[dict], n_train: int, command: str) -> str:
    lines = [
        "# Stage-A learning curve, nested cross-validation on countries train + val + calib (smollm2-135m)",
        "",
        f"Produced by `{command}`.",
        "",
        "The test split is never loaded. Each outer fold (country-hashed, 5 in all) is scored by the shipped",
        "recipe trained on a fraction of the other four folds' countries (a seventh of those plays val);",
        "below the full size, the mean of three hash draws. Read-only u, no pass 2; the gain is the",
        "selective accuracy at u < 1/2 minus the base accuracy of the 965 questions.",
        "",
        "| fraction | questions trained on (approx.) | AUROC | coverage (u < 1/2) | gain there | sel. acc @40 % | @50 % | ECE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        m = row["mean"]
        lines.append(
            f"| {row['fraction']:.2f} | {round(row['fraction'] * n_train)} | {m['auroc']:.3f} | {m['coverage']:.1%} "
            f"| {100 * (m['selective_accuracy'] - m['base_accuracy']):+.1f} pts | {m['selective_accuracy_at_0.4']:.1%} "
            f"| {m['selective_accuracy_at_0.5']:.1%} | {m['ece']:.3f} |"
        )
    return "\n".join([*lines, "", "![learning curve](stage_a_learning_curve.png)", ""])


def plot(rows: list[dict], n_train: int, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=120)
    auroc_axes = figure.subplots()
    sizes = [row["fraction"] * n_train for row in rows]
    for row, size in zip(rows, sizes, strict=False):
        auroc_axes.scatter([size] * len(row["draws"]), [d["auroc"] for d in row["draws"]], color="C0", alpha=0.4, s=12)
    auroc_axes.plot(sizes, [row["mean"]["auroc"] for row in rows], color="C0", marker="o", label="AUROC")
    auroc_axes.set(xlabel="training questions (train side of each outer fold)", ylabel="AUROC")
    accuracy_axes = auroc_axes.twinx()
    accuracy_axes.plot(
        sizes,
        [100 * row["mean"]["selective_accuracy_at_0.4"] for row in rows],
        color="C1",
        marker="s",
        label="sel. acc @40 %",
    )
    accuracy_axes.set(ylabel="selective accuracy at 40 % coverage (%)")
    handles, labels = auroc_axes.get_legend_handles_labels()
    more_handles, more_labels = accuracy_axes.get_legend_handles_labels()
    accuracy_axes.legend(handles + more_handles, labels + more_labels, loc="lower right")
    auroc_axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")


def main() -> None:
    pool, command = pool_from_command_line("stage_a_learning_curve.py", __doc__.split("\n\n")[0])
    n_train = round(len(pool.wrong) * 4 / 5)
    rows = learning_curve(pool)
    (RESULTS / "stage_a_learning_curve.json").write_text(
        json.dumps({"command": command, "rows": rows}, indent=2) + "\n"
    )
    (RESULTS / "stage_a_learning_curve.md").write_text(markdown(rows, n_train, command))
    plot(rows, n_train, RESULTS / "stage_a_learning_curve.png")


if __name__ == "__main__":
    main()
