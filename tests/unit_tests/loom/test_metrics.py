import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from metaspider.loom import metrics
from metaspider.loom.report import risk_coverage_plot

# Hand-computed case: four items, the third one wrong.
U = [0.1, 0.2, 0.3, 0.4]
CORRECT = [True, True, False, True]


def test_coverage_and_threshold_for_coverage():
    assert metrics.coverage(U, 0.25) == 0.5
    assert metrics.threshold_for_coverage(U, 0.5) == pytest.approx(0.25)
    assert metrics.coverage(U, metrics.threshold_for_coverage(U, 0.6)) == 0.75  # ceil(0.6 * 4) = 3 items
    assert metrics.coverage(U, metrics.threshold_for_coverage(U, 1.0)) == 1.0
    assert metrics.coverage(U, metrics.threshold_for_coverage(U, 0.0)) == 0.0


def test_selective_accuracy_at_coverage():
    assert metrics.selective_accuracy_at_coverage(U, CORRECT, 0.5) == 1.0
    assert metrics.selective_accuracy_at_coverage(U, CORRECT, 0.6) == pytest.approx(2 / 3)
    assert metrics.selective_accuracy_at_coverage(U, CORRECT, 1.0) == 0.75
    assert math.isnan(metrics.selective_accuracy_at_coverage(U, CORRECT, 0.0))


def test_ties_count_at_the_group_mean_whatever_the_order():
    u = [0.5, 0.5, 0.5, 0.5, 0.1]
    correct = [True, True, False, False, True]
    # The sure item, then 2 of the 4 tied items (half of them right): expected 2 right of 3.
    assert metrics.selective_accuracy_at_coverage(u, correct, 0.6) == pytest.approx(2 / 3)
    reordered = metrics.selective_accuracy_at_coverage(u[::-1], correct[::-1], 0.6)
    assert reordered == pytest.approx(2 / 3)


def test_risk_coverage_curve_aurc_and_e_aurc():
    coverage, risk = metrics.risk_coverage_curve(U, CORRECT)
    np.testing.assert_allclose(coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(risk, [0, 0, 1 / 3, 1 / 4])
    assert metrics.aurc(U, CORRECT) == pytest.approx(7 / 48)
    # A perfect ranking would put the error last: risks 0, 0, 0, 1/4.
    assert metrics.e_aurc(U, CORRECT) == pytest.approx(7 / 48 - 1 / 16)
    assert metrics.e_aurc([0.1, 0.2, 0.4, 0.3], CORRECT) == pytest.approx(0.0)


def test_auroc_brier_ece_by_hand():
    assert metrics.auroc(U, CORRECT) == pytest.approx(2 / 3)
    assert metrics.brier(U, CORRECT) == pytest.approx((0.01 + 0.04 + 0.49 + 0.16) / 4)
    # One item per bin: mean of |wrong - u|.
    assert metrics.ece(U, CORRECT) == pytest.approx((0.1 + 0.2 + 0.7 + 0.4) / 4)
    assert metrics.ece([0.2, 0.2, 0.2, 0.2, 0.2], [True, True, True, True, False]) == pytest.approx(0.0)
    assert math.isnan(metrics.auroc(U, [True] * 4))


def test_auroc_and_brier_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    u = rng.integers(0, 20, size=500) / 20  # many ties
    wrong = rng.random(500) < 0.3 + 0.5 * u
    assert metrics.auroc(u, ~wrong) == pytest.approx(roc_auc_score(wrong, u))
    assert metrics.brier(u, ~wrong) == pytest.approx(brier_score_loss(wrong, u))


def test_aurc_matches_a_direct_computation_on_distinct_scores():
    rng = np.random.default_rng(1)
    u = rng.random(200)
    correct = rng.random(200) < 0.6
    ordered = correct[np.argsort(u)]
    direct = np.mean([np.mean(~ordered[:k]) for k in range(1, 201)])
    assert metrics.aurc(u, correct) == pytest.approx(direct)


def test_refusal_precision_and_over_refusal():
    refused = [True, True, False, False]
    correct = [False, True, True, False]
    assert metrics.refusal_precision(refused, correct) == 0.5
    assert metrics.over_refusal(refused, correct) == 0.5
    assert math.isnan(metrics.refusal_precision([False] * 4, correct))


def test_mcnemar_exact():
    a = [True] * 5 + [True] * 10
    b = [False] * 5 + [True] * 10
    assert metrics.mcnemar_p(a, b) == pytest.approx(2 / 32)
    assert metrics.mcnemar_p([True, False], [False, True]) == 1.0
    assert metrics.mcnemar_p(a, a) == 1.0


def test_mcnemar_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    a = [True] * 13 + [False] * 4 + [True] * 30
    b = [False] * 13 + [True] * 4 + [True] * 30
    assert metrics.mcnemar_p(a, b) == pytest.approx(stats.binomtest(4, 17, 0.5).pvalue)


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="equal-length"):
        metrics.aurc([0.1, 0.2], [True])


def test_risk_coverage_plot_writes_a_png(tmp_path):
    curves = {"msp": metrics.risk_coverage_curve(U, CORRECT), "wrapper": ([0.5, 1.0], [0.1, 0.2])}
    path = risk_coverage_plot(curves, tmp_path / "plots" / "rc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
