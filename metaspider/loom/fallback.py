"""Fit the wrapper's support, its fallbacks and the post-answer head (the math is in
`metaspider.core.wrapper.support`).

- support: mean and Ledoit–Wolf shrunk covariance of the training split's bottleneck vectors (a few
  hundred questions against 64–128 dimensions: the plain covariance would be singular); the logistic
  step's centre is the validation split's 99th percentile of squared distance, its width a tenth of the
  gap between that and the median, so validation-like questions keep support ≈ 1 and only outliers lean
  on the fallback. (Chosen on the held-out topics' val splits, `benchmarks/support_recipes.py`: a softer
  step, 95th percentile and a third, blended in-distribution questions too and cost ranking.)
- fallbacks: logistic regressions on (1 − max-softmax probability, entropy) of each moment, on val.
- post head: per read layer a standardised logistic regression on the answer's last token (L2 strength
  chosen on val by log-loss), probabilities averaged over the layers; then, on val, a logistic
  regression stacking the probe's logit with the answer's token probabilities (the hybrid head)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

from metaspider.core.wrapper import support as support_math
from metaspider.errors import MetaspiderError
from metaspider.loom.run_folder import Collected

SUPPORT_QUANTILE = 0.99
SUPPORT_WIDTH_DIVISOR = 10.0
PROBE_C = (0.01, 0.1, 1.0)


@dataclass(frozen=True)
class Support:
    """Where the training data lies in the bottleneck space, and the step that maps distance to support."""

    mean: np.ndarray
    precision: np.ndarray
    center: float
    width: float

    def __call__(self, h: np.ndarray) -> np.ndarray:
        """Support in [0, 1] of bottleneck vectors `h` [..., b]."""
        return support_math.support_from_distance(
            support_math.mahalanobis_sq(h, self.mean, self.precision), self.center, self.width
        )


@dataclass(frozen=True)
class Logistic:
    """P(wrong) = sigmoid(features · coef + intercept)."""

    coef: np.ndarray
    intercept: float

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """P(wrong) of `features` [..., k]."""
        return support_math.logistic(features, self.coef, self.intercept)


@dataclass(frozen=True)
class PostHead:
    """u after the answer: the per-layer probe on the answer's last token, stacked with its token probabilities."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    stack: Logistic

    def probe(self, acts_post: np.ndarray) -> np.ndarray:
        """The probe's P(wrong) averaged over layers, for `acts_post` [..., L, d]."""
        return support_math.post_probe(acts_post, self.mean, self.scale, self.coef, self.intercept)

    def __call__(self, acts_post: np.ndarray, msp: np.ndarray, entropy: np.ndarray) -> np.ndarray:
        """u_post before any fallback."""
        return self.stack(support_math.stacked_features(self.probe(acts_post), msp, entropy))


def fit_support(train_h: np.ndarray, val_h: np.ndarray) -> Support:
    """Support fitted on the training split's bottleneck vectors, its step on the validation split's."""
    if len(train_h) < 2 or not len(val_h):
        raise MetaspiderError("support needs at least two training and one validation question")
    estimate = LedoitWolf().fit(np.asarray(train_h, dtype=np.float64))
    mean, precision = estimate.location_, estimate.precision_
    d2 = support_math.mahalanobis_sq(val_h, mean, precision)
    center = float(np.quantile(d2, SUPPORT_QUANTILE))
    width = max((center - float(np.median(d2))) / SUPPORT_WIDTH_DIVISOR, 1e-6)
    return Support(mean, precision, center, width)


def fit_logistic(features: np.ndarray, wrong: np.ndarray, c: float = 1.0) -> Logistic:
    """A logistic regression of "wrong" on `features` [N, k]; a constant when val holds one class only."""
    wrong = np.asarray(wrong, dtype=bool)
    if wrong.all() or not wrong.any():
        rate = float(np.clip(wrong.mean(), 1e-3, 1 - 1e-3))
        return Logistic(np.zeros(features.shape[-1]), float(np.log(rate / (1 - rate))))
    model = LogisticRegression(C=c, max_iter=1000).fit(features, wrong)
    return Logistic(model.coef_[0].astype(np.float64), float(model.intercept_[0]))


def fit_post_head(
    train_post: np.ndarray,
    train_wrong: np.ndarray,
    val_post: np.ndarray,
    val_wrong: np.ndarray,
    val_msp: np.ndarray,
    val_entropy: np.ndarray,
) -> PostHead:
    """The per-layer probes on train (C by val log-loss), then the stacking regression on val."""
    layers = train_post.shape[1]
    d = train_post.shape[2]
    mean, scale = np.zeros((layers, d)), np.ones((layers, d))
    coef, intercept = np.zeros((layers, d)), np.zeros(layers)
    for layer in range(layers):
        scaler = StandardScaler().fit(train_post[:, layer].astype(np.float64))
        tx = scaler.transform(train_post[:, layer].astype(np.float64))
        vx = scaler.transform(val_post[:, layer].astype(np.float64))
        best = None
        for c in PROBE_C:
            model = LogisticRegression(C=c, max_iter=500).fit(tx, train_wrong)
            loss = log_loss(val_wrong, model.predict_proba(vx)[:, 1], labels=[False, True])
            if best is None or loss < best[0]:
                best = (loss, model)
        mean[layer], scale[layer] = scaler.mean_, np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
        coef[layer], intercept[layer] = best[1].coef_[0], best[1].intercept_[0]
    head = PostHead(mean, scale, coef, intercept, Logistic(np.zeros(3), 0.0))
    stack = fit_logistic(support_math.stacked_features(head.probe(val_post), val_msp, val_entropy), val_wrong)
    return PostHead(mean, scale, coef, intercept, stack)


@dataclass(frozen=True)
class Parts:
    """The support model and the fallbacks fitted beside one stage-A encoder; the post-answer parts are
    None when the collect has no post-answer activations."""

    support: Support
    fallback: Logistic
    post: PostHead | None = None
    fallback_post: Logistic | None = None


def fit_parts(
    train_h: np.ndarray,
    val_h: np.ndarray,
    train_wrong: np.ndarray,
    val_wrong: np.ndarray,
    val_first: tuple[np.ndarray, np.ndarray],
    post: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Parts | None:
    """Fit the support on bottleneck vectors `train_h`/`val_h`, the first-token fallback on val's
    (msp_first, entropy_first) `val_first`, and, given `post` = (train acts_post, val acts_post, val msp,
    val entropy), the post-answer head and its fallback. Val questions without the baseline values (NaN)
    are left out of the fits that need them; None when no val question has first-token values (older
    collects), so neither `metaloom train` nor `lotocv` can fit a fallback."""
    first = support_math.baseline_features(*val_first)
    has_first = np.isfinite(first).all(axis=1)
    if not has_first.any():
        return None
    parts = Parts(fit_support(train_h, val_h), fit_logistic(first[has_first], val_wrong[has_first]))
    if post is None:
        return parts
    train_post, val_post, val_msp, val_entropy = post
    answer = support_math.baseline_features(val_msp, val_entropy)
    usable = np.isfinite(answer).all(axis=1)
    if not usable.any():
        return parts
    head = fit_post_head(
        train_post, train_wrong, val_post[usable], val_wrong[usable], val_msp[usable], val_entropy[usable]
    )
    return Parts(parts.support, parts.fallback, head, fit_logistic(answer[usable], val_wrong[usable]))


def bottleneck_vectors(wrapper: Any, acts: np.ndarray) -> np.ndarray:
    """The confidence head's bottleneck vectors of read activations `acts` [N, R, d] (the space support
    is measured in)."""
    import torch

    with torch.no_grad():
        x = torch.as_tensor(np.asarray(acts, dtype=np.float32))
        return torch.cat([wrapper.confidence.bottleneck(wrapper.encode(c)) for c in x.split(256)]).numpy()


def with_support_and_post(
    wrapper: Any,
    columns: list[int],
    collected_layers: tuple[int, ...],
    train: Collected,
    val: Collected,
) -> tuple[Any, dict[str, Any]]:
    """A copy of the stage-A `wrapper` that also holds its support model, its fallbacks and the post-answer
    head (on every collected read block), fitted on `train` and `val` (whose activations hold
    `collected_layers`; `columns` picks the wrapper's read blocks among them). Returns it with a summary for
    the manifest. A collect without the first-token or post-answer values (older runs) gets neither part."""
    has_post = train.acts_post is not None and val.acts_post is not None
    parts = fit_parts(
        bottleneck_vectors(wrapper, train.acts[:, columns]),
        bottleneck_vectors(wrapper, val.acts[:, columns]),
        ~train.labels("correct"),
        ~val.labels("correct"),
        (val.field("msp_first"), val.field("entropy_first")),
        (train.acts_post, val.acts_post, val.field("msp"), val.field("entropy")) if has_post else None,
    )
    if parts is None:
        return wrapper, {"support": "not fitted: the collect has no first-token values"}
    support, fallback = parts.support, parts.fallback
    update: dict[str, Any] = {"support": True}
    tensors = {
        "support.mean": support.mean,
        "support.precision": support.precision,
        "support.step": np.array([support.center, support.width]),
        "fallback.coef": fallback.coef,
        "fallback.intercept": np.array([fallback.intercept]),
    }
    summary: dict[str, Any] = {
        "support": {"center": support.center, "width": support.width, "quantile": SUPPORT_QUANTILE}
    }
    if parts.post is not None and parts.fallback_post is not None:
        head = parts.post
        update["post_layers"] = tuple(collected_layers)
        tensors |= {
            "post.mean": head.mean,
            "post.scale": head.scale,
            "post.coef": head.coef,
            "post.intercept": head.intercept,
            "post.stack": np.append(head.stack.coef, head.stack.intercept),
            "fallback_post.coef": parts.fallback_post.coef,
            "fallback_post.intercept": np.array([parts.fallback_post.intercept]),
        }
        summary["post_layers"] = list(collected_layers)
    return extended_wrapper(wrapper, update, tensors), summary


def extended_wrapper(wrapper: Any, update: dict[str, Any], tensors: dict[str, np.ndarray]) -> Any:
    """A copy of `wrapper` whose config is changed by `update` and that also holds `tensors`."""
    import torch

    from metaspider.core.wrapper.config import WrapperConfig
    from metaspider.core.wrapper.torch_module import MetaWrapper

    extended = MetaWrapper(WrapperConfig.from_dict(wrapper.config.to_dict() | update))
    state = wrapper.state_dict() | {
        name: torch.as_tensor(np.asarray(v, dtype=np.float32)) for name, v in tensors.items()
    }
    extended.load_state_dict(state, strict=True)
    return extended.eval()


def without_fitted_parts(wrapper: Any) -> Any:
    """A copy of `wrapper` without its support, fallbacks, hybrid stack and post head (encoder, calibration and
    meta-attention heads kept), to fit them again."""
    from metaspider.core.wrapper.config import FITTED_GROUPS, WrapperConfig
    from metaspider.core.wrapper.torch_module import MetaWrapper

    config = wrapper.config.to_dict() | {"support": False, "hybrid": False, "post_layers": []}
    bare = MetaWrapper(WrapperConfig.from_dict(config))
    state = {k: v for k, v in wrapper.state_dict().items() if k.split(".", 1)[0] not in FITTED_GROUPS}
    bare.load_state_dict(state, strict=True)
    return bare.eval()
