"""`calibrate`: an answer threshold with a finite-sample guarantee on its selective risk.

Learn-then-Test: each threshold λ on a fixed grid (fixed before seeing data: u is a probability) is a
hypothesis "selective risk at λ > α". It is rejected when the Clopper–Pearson upper bound on the error
rate among the calibration items answered at λ is ≤ α, each test at level δ / |grid| (Bonferroni, so
all the grid's tests hold together with probability ≥ 1 − δ). The largest rejected λ answers the most
questions while keeping risk ≤ α with probability ≥ 1 − δ over the draw of the calibration set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import beta

from metaspider.core.wrapper.folder import CalibratedThreshold, load_manifest, load_weights_numpy, save_wrapper
from metaspider.errors import MetaspiderError
from metaspider.loom.run_folder import RunFolder
from metaspider.loom.wrapper_scores import wrapper_scores

GRID = tuple(round(x, 2) for x in np.linspace(0.01, 1.0, 100))
"""Candidate thresholds: answer when u < λ."""


@dataclass(frozen=True)
class Calibration:
    """A certified threshold: answering when u < threshold keeps the selective risk <= max_risk with probability
    >= 1 - delta; with the coverage and risk measured on the calib split."""

    threshold: float
    coverage: float
    risk: float
    """Empirical selective risk on the calibration items at the threshold."""
    risk_bound: float
    """Clopper–Pearson upper bound at level δ / |grid|."""
    n: int
    n_answered: int


def clopper_pearson_upper(errors: int, n: int, alpha: float) -> float:
    """One-sided (1 − alpha) upper confidence bound on a binomial rate after `errors` in `n` trials."""
    if n == 0:
        return 1.0
    if errors >= n:
        return 1.0
    return float(beta.ppf(1 - alpha, errors + 1, n - errors))


def ltt_threshold(
    u: ArrayLike, correct: ArrayLike, max_risk: float, delta: float, grid: tuple[float, ...] = GRID
) -> Calibration | None:
    """The largest λ on `grid` whose selective risk is certified ≤ `max_risk` w.p. ≥ 1 − `delta`; None
    when no λ can be certified (too few calibration items, or the model is wrong too often)."""
    if not 0 < max_risk < 1:
        raise MetaspiderError(f"--max-risk must lie strictly between 0 and 1, got {max_risk}")
    if not 0 < delta < 1:
        raise MetaspiderError(f"--delta must lie strictly between 0 and 1, got {delta}")
    scores, right = np.asarray(u, dtype=float), np.asarray(correct, dtype=bool)
    level = delta / len(grid)
    best = None
    for threshold in grid:
        answered = scores < threshold
        n_answered = int(answered.sum())
        errors = int((~right[answered]).sum())
        bound = clopper_pearson_upper(errors, n_answered, level)
        if n_answered and bound <= max_risk:
            best = Calibration(
                threshold=float(threshold),
                coverage=n_answered / len(scores),
                risk=errors / n_answered,
                risk_bound=bound,
                n=len(scores),
                n_answered=n_answered,
            )
    return best


def calibrate(run: RunFolder, max_risk: float, delta: float, dataset: str | None = None) -> Calibration:
    """Certify a threshold on the run's calib split and store it in the run's wrapper."""
    folder = run.wrapper_dir
    manifest = load_manifest(folder)
    datasets = dataset and [dataset] or list(manifest.training_data.get("datasets", {}))
    if not datasets:
        raise MetaspiderError(f"{folder} names no training data set: pass --dataset")
    collected = run.config().read_layers
    data = [run.load(name, "calib") for name in datasets]
    u = np.concatenate([wrapper_scores(folder, manifest.base_fingerprint, d, collected).u for d in data])
    correct = np.concatenate([d.labels("correct") for d in data])
    result = ltt_threshold(u, correct, max_risk, delta)
    if result is None:
        raise MetaspiderError(
            f"no threshold keeps selective risk <= {max_risk} with probability >= {1 - delta} on the {len(u)} "
            f"calibration items of {', '.join(datasets)}: allow more risk, a larger delta, or collect more calib items"
        )
    kept = [c for c in manifest.calibrated if (c.max_risk, c.delta) != (max_risk, delta)]
    entry = CalibratedThreshold(max_risk=max_risk, delta=delta, threshold=result.threshold)
    updated = manifest.replace(calibrated=tuple(sorted([*kept, entry], key=lambda c: (c.max_risk, c.delta))))
    save_wrapper(folder, load_weights_numpy(folder), updated)
    return result
