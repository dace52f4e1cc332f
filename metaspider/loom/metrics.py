"""Selective-prediction metrics.

Conventions everywhere: `u` is a doubt score, u = P(wrong) (higher means more doubt); `correct` says
whether the base answer was right. An item is answered when u < threshold. Ties in u are broken at
random in expectation: among items tied at a cut, each counts with the tied group's mean, so no
method gains from the order of the data."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

ECE_BINS = 15


def _scores_and_wrong(u: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(u, dtype=float)
    wrong = ~np.asarray(correct, dtype=bool)
    if scores.ndim != 1 or scores.shape != wrong.shape or scores.size == 0:
        raise ValueError(
            f"u and correct must be equal-length non-empty 1-D arrays, got {scores.shape} and {wrong.shape}"
        )
    return scores, wrong


def _expected_errors(scores: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    """Expected number of errors among the k lowest-u items, for k = 1..n.

    Between the ends of tie groups the cumulative error count grows linearly: that is the
    expectation under a random order within each group."""
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_wrong = scores[order], wrong[order]
    group_ends = np.flatnonzero(np.append(np.diff(sorted_scores) != 0, True)) + 1
    cumulative = np.cumsum(sorted_wrong)[group_ends - 1]
    k = np.arange(1, scores.size + 1)
    return np.interp(k, np.append(0, group_ends), np.append(0, cumulative))


def _cut(coverage_target: float, n: int) -> int:
    if not 0.0 <= coverage_target <= 1.0:
        raise ValueError(f"coverage must lie in [0, 1], got {coverage_target}")
    return math.ceil(coverage_target * n - 1e-9)


def coverage(u: ArrayLike, threshold: float) -> float:
    """Fraction of items answered (u < threshold)."""
    return float(np.mean(np.asarray(u, dtype=float) < threshold))


def threshold_for_coverage(u: ArrayLike, target: float) -> float:
    """A threshold that answers the ceil(target·n) lowest-u items.

    It sits midway between the last answered and the first refused score, so it transfers to new
    data without favouring either side. When scores tie at the cut the whole tied group is refused
    and coverage falls short of the target."""
    ordered = np.sort(np.asarray(u, dtype=float))
    if ordered.size == 0:
        raise ValueError("no scores to pick a threshold from")
    k = _cut(target, ordered.size)
    if k == 0:
        return float(ordered[0])
    if k == ordered.size:
        return float(np.nextafter(ordered[-1], np.inf))
    return float((ordered[k - 1] + ordered[k]) / 2)


def selective_accuracy_at_coverage(u: ArrayLike, correct: ArrayLike, target: float) -> float:
    """Accuracy on the ceil(target·n) lowest-u items; NaN at zero coverage, where nothing is answered."""
    scores, wrong = _scores_and_wrong(u, correct)
    k = _cut(target, scores.size)
    if k == 0:
        return float("nan")
    return float(1.0 - _expected_errors(scores, wrong)[k - 1] / k)


def selective_accuracy(answered: ArrayLike, correct: ArrayLike) -> float:
    """Accuracy on the answered items (for refusals read from text); NaN when nothing is answered."""
    answered, correct = np.asarray(answered, dtype=bool), np.asarray(correct, dtype=bool)
    return float(np.mean(correct[answered])) if answered.any() else float("nan")


def risk_coverage_curve(u: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, selective risk) when answering the k lowest-u items, for k = 1..n."""
    scores, wrong = _scores_and_wrong(u, correct)
    k = np.arange(1, scores.size + 1)
    return k / scores.size, _expected_errors(scores, wrong) / k


def aurc(u: ArrayLike, correct: ArrayLike) -> float:
    """Area under the risk-coverage curve: mean selective risk over k = 1..n (lower is better)."""
    return float(np.mean(risk_coverage_curve(u, correct)[1]))


def e_aurc(u: ArrayLike, correct: ArrayLike) -> float:
    """AURC minus the AURC of a perfect ranking (all correct answers first): the part due to ranking,
    not to the base model's error rate."""
    scores, wrong = _scores_and_wrong(u, correct)
    n, n_correct = scores.size, int(np.sum(~wrong))
    k = np.arange(1, n + 1)
    optimal = np.mean(np.maximum(0, k - n_correct) / k)
    return aurc(scores, ~wrong) - float(optimal)


def auroc(u: ArrayLike, correct: ArrayLike) -> float:
    """Probability that a wrong answer has a higher u than a right one (ties count half), scikit-learn's
    ROC AUC with "wrong" as the positive class; NaN when all answers are right or all wrong."""
    from sklearn.metrics import roc_auc_score

    scores, wrong = _scores_and_wrong(u, correct)
    if wrong.all() or not wrong.any():
        return float("nan")
    return float(roc_auc_score(wrong, scores))


def ece(u: ArrayLike, correct: ArrayLike, bins: int = ECE_BINS) -> float:
    """Expected calibration error of u as P(wrong): equal-width bins on [0, 1], |error rate − mean u|
    weighted by the bin's share of items."""
    scores, wrong = _scores_and_wrong(u, correct)
    index = np.clip((scores * bins).astype(int), 0, bins - 1)
    total = 0.0
    for b in np.unique(index):
        members = index == b
        total += members.mean() * abs(wrong[members].mean() - scores[members].mean())
    return float(total)


def brier(u: ArrayLike, correct: ArrayLike) -> float:
    """Mean squared error of u as a probability of being wrong (scikit-learn's Brier score)."""
    from sklearn.metrics import brier_score_loss

    scores, wrong = _scores_and_wrong(u, correct)
    return float(brier_score_loss(wrong.astype(int), scores, pos_label=1))


def refusal_precision(refused: ArrayLike, correct: ArrayLike) -> float:
    """Fraction of refusals that avoided a wrong answer; NaN when nothing was refused."""
    refused, correct = np.asarray(refused, dtype=bool), np.asarray(correct, dtype=bool)
    return float(np.mean(~correct[refused])) if refused.any() else float("nan")


def over_refusal(refused: ArrayLike, correct: ArrayLike) -> float:
    """Fraction of the right answers that were refused anyway; NaN when no answer was right."""
    refused, correct = np.asarray(refused, dtype=bool), np.asarray(correct, dtype=bool)
    return float(np.mean(refused[correct])) if correct.any() else float("nan")


def mcnemar_p(correct_a: ArrayLike, correct_b: ArrayLike) -> float:
    """Exact two-sided McNemar test: a binomial(n, 1/2) test on the items where exactly one of the two
    systems is right. Exact because the discordant counts are often small."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b differ in shape: {a.shape} vs {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(only_a, n, 0.5, alternative="two-sided").pvalue)
