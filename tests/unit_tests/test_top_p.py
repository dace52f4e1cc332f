"""Nucleus sampling in the shared generation loop: `top_p` keeps only the most likely tokens whose
probability reaches it, and leaves greedy decoding alone."""

from __future__ import annotations

import numpy as np

from metaspider.core.backbones.base import _sample


def test_top_p_draws_only_from_the_nucleus():
    logits = np.log(np.array([0.6, 0.3, 0.05, 0.05], dtype=np.float32))
    rng = np.random.default_rng(0)
    nucleus = {_sample(logits, 1.0, rng, top_p=0.8)[0] for _ in range(300)}
    assert nucleus == {0, 1}
    only_best = {_sample(logits, 1.0, rng, top_p=0.5)[0] for _ in range(100)}
    assert only_best == {0}
    everything = {_sample(logits, 1.0, rng, top_p=1.0)[0] for _ in range(2000)}
    assert everything == {0, 1, 2, 3}


def test_top_p_reports_the_untempered_logprobs_and_keeps_greedy():
    logits = np.log(np.array([0.2, 0.7, 0.1], dtype=np.float32))
    token, logprobs, _ = _sample(logits, 0.0, np.random.default_rng(0), top_p=0.1)
    assert token == 1
    assert np.allclose(np.exp(logprobs), [0.2, 0.7, 0.1], atol=1e-5)
