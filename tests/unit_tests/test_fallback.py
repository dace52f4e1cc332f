"""Support, fallback and the post-answer head on synthetic data: the math both runtimes share, and its fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.numpy_math import NumpyWrapper
from metaspider.core.wrapper.support import blend, mahalanobis_sq, support_from_distance
from metaspider.core.wrapper.torch_module import MetaWrapper
from metaspider.loom.fallback import fit_logistic, fit_post_head, fit_support


def test_support_is_high_on_training_like_points_and_falls_with_distance():
    rng = np.random.default_rng(0)
    train, val = rng.normal(size=(400, 8)), rng.normal(size=(100, 8))
    support = fit_support(train, val)
    near = support(rng.normal(size=(200, 8)))
    far = support(rng.normal(size=(200, 8)) + 6.0)
    assert np.median(near) > 0.9 and np.median(far) < 0.05
    steps = support(np.outer(np.linspace(0, 10, 11), np.ones(8)))
    assert np.all(np.diff(steps) <= 0) and np.all((steps >= 0) & (steps <= 1))


def test_mahalanobis_of_the_mean_is_zero_and_scales_with_precision():
    mean = np.array([1.0, 2.0])
    assert mahalanobis_sq(mean, mean, np.eye(2)) == pytest.approx(0.0)
    assert mahalanobis_sq(np.array([2.0, 2.0]), mean, 4 * np.eye(2)) == pytest.approx(4.0)
    assert support_from_distance(3.0, center=3.0, width=1.0) == pytest.approx(0.5)


def test_blend_is_the_wrapper_at_full_support_and_the_fallback_at_none():
    assert blend(0.2, 0.9, 1.0) == pytest.approx(0.2)
    assert blend(0.2, 0.9, 0.0) == pytest.approx(0.9)
    assert blend(0.2, 0.9, 0.5) == pytest.approx(0.55)


def test_a_one_class_val_split_gives_a_constant_fallback():
    model = fit_logistic(np.random.default_rng(0).random((20, 2)), np.ones(20, dtype=bool))
    out = model(np.random.default_rng(1).random((5, 2)))
    assert np.allclose(out, out[0]) and out[0] > 0.99


def test_the_post_head_finds_the_signal_and_uses_the_token_probabilities():
    rng = np.random.default_rng(0)

    def data(n, activations_signal):
        wrong = rng.random(n) < 0.5
        acts = rng.normal(size=(n, 2, 6)) + activations_signal * wrong[:, None, None] * np.eye(6)[0]
        msp = np.where(wrong, 0.3, 0.8) + 0.05 * rng.random(n)
        return acts, wrong, msp, rng.random(n)

    train, val, test = data(300, 2.0), data(100, 2.0), data(200, 2.0)
    head = fit_post_head(train[0], train[1], val[0], val[1], val[2], val[3])
    assert roc_auc_score(test[1], head(test[0], test[2], test[3])) > 0.95
    # Activations that carry nothing: the stacked head still ranks by the token probabilities.
    train, val, test = data(300, 0.0), data(100, 0.0), data(200, 0.0)
    head = fit_post_head(train[0], train[1], val[0], val[1], val[2], val[3])
    assert roc_auc_score(test[1], head(test[0], test[2], test[3])) > 0.95


def test_torch_and_numpy_bottlenecks_agree():
    torch.manual_seed(0)
    module = MetaWrapper(WrapperConfig(d_model=32, read_layers=(1, 2), inject_layers=(2, 3), bottleneck=16)).eval()
    weights = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    numpy_wrapper = NumpyWrapper(weights, module.config)
    acts = (
        np.random.default_rng(0).normal(size=(len(module.config.read_layers), module.config.d_model)).astype(np.float32)
    )
    with torch.no_grad():
        expected = module.confidence.bottleneck(module.encode(torch.as_tensor(acts)[None]))[0].numpy()
    got = numpy_wrapper.bottleneck(numpy_wrapper.encode(acts))
    assert np.allclose(got, expected, atol=1e-4)


def test_baseline_platt_map_stays_strictly_monotone_on_a_separated_val_split():
    """A val split the baseline separates perfectly must not saturate the map into ties on test."""
    from metaspider.loom.evaluate import platt

    val_x = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    val_wrong = np.array([False, False, False, True, True, True])
    mapped = platt(val_x, val_wrong)(np.linspace(0.0, 1.0, 21))
    assert np.all(np.diff(mapped) > 0)
    assert 0.0 < mapped.min() and mapped.max() < 1.0


def test_record_fields_read_as_floats_with_nan_for_missing_values():
    from metaspider.loom.run_folder import Collected

    data = Collected([{"msp": 0.5}, {"msp": None}, {}], np.zeros((3, 1, 2)), None)
    values = data.field("msp")
    assert values[0] == 0.5 and np.isnan(values[1]) and np.isnan(values[2])


def test_a_new_eval_run_collects_the_post_answer_blocks_too(tmp_path):
    """eval on a fresh run folder must collect every block the wrapper reads, after the answer as well."""
    from metaspider.core.wrapper.config import WrapperConfig
    from metaspider.core.wrapper.folder import WrapperManifest
    from metaspider.loom.evaluate import _run_config
    from metaspider.loom.run_folder import RunFolder

    config = WrapperConfig(
        d_model=64, read_layers=(2, 3), inject_layers=(4, 5), bottleneck=32, n_heads=2, post_layers=(1, 3, 5)
    )
    manifest = WrapperManifest(base_fingerprint="sha256:0", base_model="m", config=config)
    assert _run_config(RunFolder(tmp_path / "new"), manifest).read_layers == (1, 2, 3, 5)
