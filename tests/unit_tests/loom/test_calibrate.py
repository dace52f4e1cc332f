import numpy as np
import pytest

from metaspider.errors import MetaspiderError
from metaspider.loom.calibrate import GRID, clopper_pearson_upper, ltt_threshold


def test_clopper_pearson_upper_matches_closed_forms():
    # No errors in n trials: the bound solves (1 - p)^n = alpha.
    assert clopper_pearson_upper(0, 10, 0.05) == pytest.approx(1 - 0.05 ** (1 / 10), rel=1e-9)
    # n - 1 errors in n trials: P(X <= n - 1) = 1 - p^n = alpha, so p = (1 - alpha)^(1/n).
    assert clopper_pearson_upper(4, 5, 0.05) == pytest.approx(0.95 ** (1 / 5), rel=1e-9)
    assert clopper_pearson_upper(3, 3, 0.05) == 1.0
    assert clopper_pearson_upper(0, 0, 0.05) == 1.0


def _draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """u ~ U(0, 1) and P(wrong | u) = u: the selective risk of "answer when u < t" is t / 2."""
    u = rng.uniform(size=n)
    return u, rng.uniform(size=n) >= u


def test_the_guarantee_holds_over_repeated_calibration_sets():
    rng = np.random.default_rng(0)
    max_risk, delta = 0.2, 0.1
    chosen = []
    for _ in range(60):
        result = ltt_threshold(*_draw(rng, 1500), max_risk=max_risk, delta=delta)
        assert result is not None
        assert result.risk <= result.risk_bound <= max_risk
        chosen.append(result.threshold)
    true_risk = np.array(chosen) / 2
    # Violations (true risk above alpha) must be rarer than delta; Bonferroni makes them rarer still.
    assert np.mean(true_risk > max_risk) <= delta
    # ... and the bound is not vacuous: it answers well over half of what an oracle would (t = 0.4).
    assert np.median(chosen) > 0.25


def test_no_threshold_when_the_model_is_always_wrong():
    u = np.linspace(0, 1, 500)
    assert ltt_threshold(u, np.zeros(500, dtype=bool), max_risk=0.1, delta=0.1) is None


def test_few_items_cannot_certify_a_small_risk():
    # 20 right answers give a bound of 1 - (0.1 / 100)^(1/20) ~ 0.29 > 0.1.
    assert ltt_threshold(np.full(20, 0.1), np.ones(20, dtype=bool), max_risk=0.1, delta=0.1) is None


def test_the_grid_is_data_independent_and_bad_levels_are_refused():
    assert GRID[0] > 0 and GRID[-1] == 1.0 and list(GRID) == sorted(GRID)
    with pytest.raises(MetaspiderError, match="max-risk"):
        ltt_threshold([0.1], [True], max_risk=0.0, delta=0.1)
    with pytest.raises(MetaspiderError, match="delta"):
        ltt_threshold([0.1], [True], max_risk=0.1, delta=1.0)
