"""Support and fallback: how far a question's activations lie from what the wrapper was trained on, and
the signal u leans on where they lie far.

A wrapper trained on some topics can be confidently wrong on a topic it never saw, while the model's own
token probabilities mean the same thing everywhere. So the wrapper measures its support: the squared
Mahalanobis distance of the confidence head's bottleneck vector from the training questions' (mean and
shrunk covariance fitted on the training split), mapped to [0, 1] by a logistic step whose centre and
width come from the validation split's distances (support ≈ 1 for typical training-like questions, 1/2 at
the centre, → 0 far away). u is then blended toward a fallback, a logistic regression on the baseline
signals of the same moment (1 − max-softmax probability and entropy), fitted on the validation split:

    u = support · u_wrapper + (1 − support) · u_fallback

A hybrid wrapper's u_wrapper before the answer is itself a logistic regression on stage A's u and the
first token's probabilities (`hybrid.stack`, fitted as `metaspider.loom.hybrid` says).

This module is the inference math, in NumPy so both backbones give the same numbers; fitting lives in
`metaspider.loom.fallback`."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.special import expit

from metaspider.core.wrapper.config import FITTED_GROUPS, WrapperConfig


def first_token_stats(logits: np.ndarray) -> tuple[float, float]:
    """(max-softmax probability, entropy in nats) of the next-token distribution given by `logits`."""
    x = np.asarray(logits, dtype=np.float64)
    shifted = x - x.max()
    p = np.exp(shifted)
    total = p.sum()
    p /= total
    logp = shifted - math.log(total)
    return float(p.max()), float(-np.sum(p * logp))


def mahalanobis_sq(h: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each row of `h` [..., b] from `mean` [b] under `precision` [b, b]."""
    diff = np.asarray(h, dtype=np.float64) - mean
    return np.einsum("...i,ij,...j->...", diff, precision.astype(np.float64), diff)


def support_from_distance(d2: np.ndarray | float, center: float, width: float) -> np.ndarray:
    """Support in [0, 1]: a logistic step down in the squared distance, 1/2 at `center`."""
    return expit((center - np.asarray(d2, dtype=np.float64)) / max(float(width), 1e-12))


def baseline_features(msp: np.ndarray | float, entropy: np.ndarray | float) -> np.ndarray:
    """The fallback's inputs [..., 2]: 1 − max-softmax probability and entropy (nats), both doubt-like."""
    return np.stack([1.0 - np.asarray(msp, dtype=np.float64), np.asarray(entropy, dtype=np.float64)], axis=-1)


def logistic(features: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    """P(wrong) = sigmoid(features · coef + intercept)."""
    return expit(np.asarray(features, dtype=np.float64) @ np.asarray(coef, dtype=np.float64) + float(intercept))


def blend(u: np.ndarray | float, fallback: np.ndarray | float, support: np.ndarray | float) -> np.ndarray:
    """u leaned toward the fallback as support falls: support · u + (1 − support) · fallback."""
    s = np.asarray(support, dtype=np.float64)
    return s * np.asarray(u, dtype=np.float64) + (1.0 - s) * np.asarray(fallback, dtype=np.float64)


def post_probe(
    acts_post: np.ndarray, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray
) -> np.ndarray:
    """The post-answer probe: per read layer a standardised logistic regression on the activations at the
    answer's last token, probabilities averaged over the layers. `acts_post` [..., L, d]; `mean`, `scale`,
    `coef` [L, d]; `intercept` [L]."""
    z = (np.asarray(acts_post, dtype=np.float64) - mean) / scale
    return expit(np.einsum("...ld,ld->...l", z, coef.astype(np.float64)) + intercept).mean(axis=-1)


def stacked_features(probe: np.ndarray | float, msp: np.ndarray | float, entropy: np.ndarray | float) -> np.ndarray:
    """A hybrid head's inputs [..., 3]: the learned P(wrong)'s logit, 1 − max-softmax probability and entropy
    of the same moment (the first answer token before the answer, the answer's tokens after it). With the
    token probabilities among its inputs the head cannot do worse than them on its training topics."""
    p = np.clip(np.asarray(probe, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.concatenate([np.log(p / (1 - p))[..., None], baseline_features(msp, entropy)], axis=-1)


class WrapperSignals:
    """Support, the blended u and u_post from a wrapper's weights, for the parts its config enables. One
    NumPy implementation serves both runtimes, so a wrapper gives the same numbers on either backbone."""

    def __init__(self, weights: Mapping[str, np.ndarray], config: WrapperConfig) -> None:
        self.has_support = config.support
        self.hybrid = config.hybrid
        self.post_layers = tuple(config.post_layers)
        self.w = {
            name: np.asarray(weights[name], dtype=np.float64)
            for name in config.weight_shapes()
            if name.split(".", 1)[0] in FITTED_GROUPS
        }

    def support(self, bottleneck: np.ndarray) -> float | None:
        """Support in [0, 1] of one question's bottleneck vector [b]; None without a support model."""
        if not self.has_support:
            return None
        d2 = mahalanobis_sq(bottleneck, self.w["support.mean"], self.w["support.precision"])
        center, width = self.w["support.step"]
        return float(support_from_distance(d2, center, width))

    def blend_before(self, u: float, support: float | None, msp_first: float, entropy_first: float) -> float:
        """u before the answer: through the hybrid head (when the wrapper has one), then leaned toward the
        first-token fallback as support falls."""
        if self.hybrid:
            stack = self.w["hybrid.stack"]
            u = float(logistic(stacked_features(u, msp_first, entropy_first), stack[:3], stack[3]))
        if support is None:
            return u
        fallback = logistic(
            baseline_features(msp_first, entropy_first), self.w["fallback.coef"], self.w["fallback.intercept"][0]
        )
        return float(blend(u, fallback, support))

    def after(self, acts_post: np.ndarray, msp: float, entropy: float, support: float | None) -> float | None:
        """u_post from the read blocks' outputs at the answer's last token [L, d] and the answer's mean token
        probability and entropy; None without a post head."""
        if not self.post_layers:
            return None
        probe = post_probe(
            acts_post, self.w["post.mean"], self.w["post.scale"], self.w["post.coef"], self.w["post.intercept"]
        )
        stack = self.w["post.stack"]
        u_post = float(logistic(stacked_features(probe, msp, entropy), stack[:3], stack[3]))
        if support is None or "fallback_post.coef" not in self.w:
            return u_post
        fallback = logistic(
            baseline_features(msp, entropy), self.w["fallback_post.coef"], self.w["fallback_post.intercept"][0]
        )
        return float(blend(u_post, fallback, support))
