"""Small numeric helpers shared by the backends' parity checks and the deploy checks."""

from __future__ import annotations

import numpy as np


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows (the last axis) of `a` and `b`: how parity between two backends'
    activations or logits is measured. A zero row gives 0, not NaN."""
    a, b = np.asarray(a), np.asarray(b)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(axis=-1) / np.maximum(norms, 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    return float(row_cosines(np.ravel(a), np.ravel(b)))


def fit_platt(x: np.ndarray, wrong: np.ndarray, max_iter: int = 100) -> tuple[float, float]:
    """Platt scaling: the maximum-likelihood a, b of P(wrong) = sigmoid(a·x + b), by Newton's method (two
    parameters: a few exact steps, no optimiser to tune). Used for the wrapper's own calibration and for
    putting the baselines on the same probability scale."""
    from scipy.special import expit

    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(wrong, dtype=np.float64).ravel()
    if x.size != y.size:
        raise ValueError(f"{x.size} scores but {y.size} labels")
    a, b = 1.0, 0.0
    for _ in range(max_iter):
        p = expit(a * x + b)
        w = p * (1 - p) + 1e-9
        gradient = np.array([np.sum((p - y) * x), np.sum(p - y)])
        hessian = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)
