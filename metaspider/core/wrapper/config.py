"""The wrapper's shape and modes, in one frozen record that the wrapper file stores as JSON.

Both implementations (torch for training, NumPy for deployment) are built from this record, and
`weight_shapes` is the single list of tensor names and shapes they agree on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, StrictInt, model_validator

from metaspider.core.names import INJECTION_MODES, POSITION_MODES, InjectionMode, PositionMode
from metaspider.core.schema import Schema
from metaspider.errors import MetaspiderError

__all__ = ["FITTED_GROUPS", "INJECTION_MODES", "POSITION_MODES", "WrapperConfig", "default_layers"]

FITTED_GROUPS = ("support", "fallback", "fallback_post", "post", "hybrid")
"""Tensor groups fitted after stage A, not trained by gradient: kept exact in a sidecar, computed by the shared
NumPy code on both runtimes, and refitted by `metaloom train --stage parts`."""


class WrapperConfig(Schema):
    """Dimensions, layers and modes of one wrapper.

    `damping_floor` and `damping_tau` shrink the injection over generated steps, offset scale at step s =
    floor + (1 - floor) * exp(-s / tau): high gains run away into degenerate text on long answers.
    floor = 1.0 means no damping.
    """

    _title = "wrapper config"

    d_model: StrictInt = Field(gt=0)
    read_layers: tuple[StrictInt, ...]
    inject_layers: tuple[StrictInt, ...]
    bottleneck: StrictInt = Field(128, gt=0)
    n_heads: StrictInt = Field(4, gt=0)
    injection: InjectionMode = "tokens"
    positions: PositionMode = "generated"
    gate_init: float = 0.3
    damping_floor: float = Field(1.0, ge=0.0, le=1.0)
    damping_tau: float = Field(32.0, gt=0.0)
    support: bool = False
    """The wrapper measures its support and blends u toward a fallback on first-token probabilities
    (`support.py`): tensors `support.*` and `fallback.*`."""
    hybrid: bool = False
    """u before the answer is stage A's u stacked with the first answer token's max-softmax probability and
    entropy by a logistic regression (`support.py`): tensor `hybrid.stack`. Applied before any support blend."""
    post_layers: tuple[StrictInt, ...] = ()
    """Blocks the post-answer head reads at the answer's last token (empty: no `u_post`): tensors `post.*`,
    and `fallback_post.*` when `support` is on."""

    @model_validator(mode="after")
    def _check(self) -> WrapperConfig:
        _check_layers("read_layers", self.read_layers)
        _check_layers("inject_layers", self.inject_layers)
        if self.post_layers:
            _check_layers("post_layers", self.post_layers)
        if self.bottleneck % self.n_heads:
            raise MetaspiderError(
                f"wrapper config: bottleneck {self.bottleneck} is not divisible by n_heads {self.n_heads}"
            )
        return self

    @property
    def reads_first_token(self) -> bool:
        """u before the answer needs the bare first answer token's distribution (for the support blend's
        fallback or the hybrid head), so pass 1 cannot inject the decision token."""
        return self.support or self.hybrid

    @property
    def head_dim(self) -> int:
        """Width of one meta-attention head."""
        return self.bottleneck // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the wrapper manifest stores (layers as lists). The optional parts are written only
        when present, so a wrapper without them keeps the file it always had."""
        data = self.model_dump(mode="json")
        if not self.support:
            del data["support"]
        if not self.hybrid:
            del data["hybrid"]
        if not self.post_layers:
            del data["post_layers"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WrapperConfig:
        """Validate the manifest's `config` object; unknown or missing fields are named in the error."""
        return cls.parse(data)

    def check_weights(self, weights: Mapping[str, Any], where: str) -> None:
        """Refuse tensors that do not fit this config (names, and shapes where given): a wrapper file whose weights
        and manifest disagree would load into the wrong layers. `where` starts the error message."""
        expected = self.weight_shapes()
        missing = sorted(set(expected) - set(weights))
        unexpected = sorted(set(weights) - set(expected))
        if missing or unexpected:
            more_missing = " ..." if len(missing) > 5 else ""
            more_unexpected = " ..." if len(unexpected) > 5 else ""
            raise MetaspiderError(
                f"{where}: the weights do not match the wrapper config: missing {missing[:5]}{more_missing}, "
                f"unexpected {unexpected[:5]}{more_unexpected}"
            )
        wrong = [
            f"{name} {tuple(shape)} != {expected[name]}"
            for name, value in weights.items()
            if (shape := getattr(value, "shape", None)) is not None and tuple(shape) != expected[name]
        ]
        if wrong:
            raise MetaspiderError(f"{where}: weights have the wrong shape: {'; '.join(wrong[:5])}")

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor of the wrapper by state-dict name; scalars are shape (1,) so every format holds them."""
        d, b = self.d_model, self.bottleneck
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in self.read_layers:
            shapes |= {
                f"readers.{layer}.norm.weight": (d,),
                f"readers.{layer}.norm.bias": (d,),
                f"readers.{layer}.proj.weight": (b, d),
                f"readers.{layer}.proj.bias": (b,),
                f"readers.{layer}.gate": (1,),
            }
        shapes |= {
            "shared_in.weight": (d, b),
            "shared_in.bias": (d,),
            "shared_out.weight": (d, d),
            "shared_out.bias": (d,),
            "shared_norm.weight": (d,),
            "shared_norm.bias": (d,),
            "confidence.query": (d,),
            "confidence.hidden.weight": (b, d),
            "confidence.hidden.bias": (b,),
            "confidence.out.weight": (1, b),
            "confidence.out.bias": (1,),
            "calib_a": (1,),
            "calib_b": (1,),
            "e_doubt": (d,),
            "e_sure": (d,),
        }
        for layer in self.inject_layers:
            shapes |= {
                f"heads.{layer}.norm.weight": (d,),
                f"heads.{layer}.norm.bias": (d,),
                f"heads.{layer}.down.weight": (b, d),
                f"heads.{layer}.down.bias": (b,),
                f"heads.{layer}.q.weight": (b, b),
                f"heads.{layer}.q.bias": (b,),
                f"heads.{layer}.k.weight": (b, d),
                f"heads.{layer}.k.bias": (b,),
                f"heads.{layer}.v.weight": (b, d),
                f"heads.{layer}.v.bias": (b,),
                f"heads.{layer}.up.weight": (d, b),
                f"heads.{layer}.up.bias": (d,),
                f"heads.{layer}.gate": (1,),
            }
        if self.support:
            shapes |= {
                "support.mean": (b,),
                "support.precision": (b, b),
                "support.step": (2,),
                "fallback.coef": (2,),
                "fallback.intercept": (1,),
            }
        if self.hybrid:
            shapes["hybrid.stack"] = (4,)
        if self.post_layers:
            n = len(self.post_layers)
            shapes |= {
                "post.mean": (n, d),
                "post.scale": (n, d),
                "post.coef": (n, d),
                "post.intercept": (n,),
                "post.stack": (4,),
            }
            if self.support:
                shapes |= {"fallback_post.coef": (2,), "fallback_post.intercept": (1,)}
        return shapes


def default_layers(n_layers: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(read, inject) block indices: read the late third, inject at three late blocks; never the last block,
    whose output llama.cpp prunes and transformers normalises."""
    if n_layers < 2:
        raise MetaspiderError(f"a wrapper needs a base model with at least 2 blocks, this one has {n_layers}")
    last = n_layers - 1
    read_start = max(0, min(n_layers - n_layers // 3, last - 1))
    read = tuple(range(read_start, last))
    inject = tuple(layer for layer in range(n_layers - 4, last) if layer >= 0)
    return read, inject


def _check_layers(name: str, layers: tuple[int, ...]) -> None:
    if not layers:
        raise MetaspiderError(f"wrapper config: {name} must be a non-empty tuple of block indices, got {layers!r}")
    if any(x < 0 for x in layers):
        raise MetaspiderError(f"wrapper config: {name} must hold block indices >= 0, got {layers!r}")
    if any(a >= b for a, b in zip(layers, layers[1:], strict=False)):
        raise MetaspiderError(f"wrapper config: {name} must be strictly increasing, got {layers!r}")
