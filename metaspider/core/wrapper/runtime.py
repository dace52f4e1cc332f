"""The wrapper at inference time, in the backbone's own array type.

Torch runs the trained `MetaWrapper` (gradients off); llama.cpp runs `NumpyWrapper`, so serving a
wrapper on llama.cpp never imports torch. Both turn pass-1 activations into u and the cognitive tokens,
and those into the `Injection` pass 2 applies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from metaspider.core.backbones.base import Injection
from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.folder import WrapperManifest
from metaspider.core.wrapper.numpy_math import NumpyWrapper
from metaspider.core.wrapper.support import WrapperSignals

if TYPE_CHECKING:
    from metaspider.core.wrapper.torch_module import MetaWrapper


@dataclass(frozen=True)
class Reading:
    """Pass 1's result: u and the cognitive tokens the injection attends to; for a wrapper with a support
    model, u is already blended toward its fallback and `support` says how far."""

    u: float
    tokens: Any
    support: float | None = None


class WrapperRuntime(Protocol):
    """What the pipeline needs from a wrapper at inference time, whichever array library runs it."""

    config: WrapperConfig
    manifest: WrapperManifest

    def read(self, acts: np.ndarray, first_token: tuple[float, float] | None = None) -> Reading:
        """Pass 1's activations [R, d] at the decision point → u and the cognitive tokens. `first_token`: the
        bare first answer token's (max-softmax probability, entropy), which the fallback of a wrapper with a
        support model and a hybrid head read (`config.reads_first_token`; `first_token_stats` of the logits)."""

    def read_post(self, acts_post: np.ndarray, msp: float, entropy: float, support: float | None) -> float | None:
        """u_post from the `post_layers` outputs [L, d] at the answer's last token and the answer's mean token
        probability and entropy; None for a wrapper without a post head."""

    def injection(self, reading: Reading, u_mod: float, gain: float, decision_point: int) -> Injection:
        """What pass 2 adds, for u' (after the modifier) and the gain."""


def _blended(
    signals: WrapperSignals, u: float, bottleneck: np.ndarray, first_token: tuple[float, float] | None
) -> tuple[float, float | None]:
    """(u, support) for a wrapper with or without a support model or a hybrid head."""
    support = signals.support(bottleneck)
    if first_token is None or (support is None and not signals.hybrid):
        return u, support
    return signals.blend_before(u, support, *first_token), support


def inject_from(config: WrapperConfig, decision_point: int) -> int:
    """`generated` injects from the decision point on (the token that predicts the first answer token
    is re-evaluated with the injection, nothing before it); `all` injects the whole prompt."""
    return decision_point if config.positions == "generated" else 0


class NumpyRuntime:
    """The wrapper in NumPy from a wrapper folder, or from a GGUF sidecar (`metaspider deploy export`).

    Building one limits BLAS to one thread for the whole process: the wrapper's products are one row
    wide, and OpenBLAS's worker threads spin against llama.cpp's on the same cores (measured on 2 busy
    cores: 13 ms per 576×128 product instead of 0.1 ms; tokens-mode decode 5× slower)."""

    def __init__(self, source: str | Path, fingerprint: str):
        from metaspider.core.wrapper.handle import Wrapper

        wrapper = Wrapper.open(source)
        wrapper.check_fingerprint(fingerprint)
        self._build(wrapper.manifest, wrapper.weights)

    @classmethod
    def from_parts(cls, manifest: WrapperManifest, weights: dict[str, np.ndarray]) -> NumpyRuntime:
        """A runtime over weights already read (by `Wrapper.open`), without touching files again."""
        runtime = cls.__new__(cls)
        runtime._build(manifest, weights)
        return runtime

    def _build(self, manifest: WrapperManifest, weights: dict[str, np.ndarray]) -> None:
        threadpool_limits(1, user_api="blas")
        self.manifest = manifest
        self.config = manifest.config
        self.wrapper = NumpyWrapper(weights, self.config)
        self.signals = WrapperSignals(weights, self.config)

    def read(self, acts: np.ndarray, first_token: tuple[float, float] | None = None) -> Reading:
        """Pass 1's activations [R, d] at the decision point → u and the cognitive tokens."""
        u, tokens = self.wrapper.uncertainty(acts)
        if not self.config.reads_first_token:
            return Reading(float(u), tokens)
        u, support = _blended(self.signals, float(u), self.wrapper.bottleneck(tokens), first_token)
        return Reading(u, tokens, support)

    def read_post(self, acts_post: np.ndarray, msp: float, entropy: float, support: float | None) -> float | None:
        """u_post (see `WrapperRuntime.read_post`)."""
        return self.signals.after(acts_post, msp, entropy, support)

    def injection(self, reading: Reading, u_mod: float, gain: float, decision_point: int) -> Injection:
        """A control vector (pooled) or a per-position injector (tokens) for u' and the gain."""
        memory = self.wrapper.memory(reading.tokens, u_mod)
        start = inject_from(self.config, decision_point)
        if self.config.injection == "pooled":
            return Injection(control=self.wrapper.pooled_offsets(memory, gain), inject_from=start)

        def injector(layer: int, hidden: Any, positions: np.ndarray) -> np.ndarray:
            return self.wrapper.offsets(layer, hidden, memory, gain, steps=positions - decision_point)

        return Injection(injector=injector, layers=self.config.inject_layers, inject_from=start)


class TorchRuntime:
    """The wrapper at inference time on a Torch backbone: the trained `MetaWrapper` with gradients off."""

    def __init__(self, folder: str | Path, fingerprint: str):
        from metaspider.core.wrapper.handle import Wrapper

        wrapper = Wrapper.open(folder)
        wrapper.check_fingerprint(fingerprint)
        self._build(wrapper.manifest, wrapper.torch_module())

    @classmethod
    def from_parts(cls, manifest: WrapperManifest, module: MetaWrapper) -> TorchRuntime:
        """A runtime over a module already built (by `Wrapper.torch_module`)."""
        runtime = cls.__new__(cls)
        runtime._build(manifest, module)
        return runtime

    def _build(self, manifest: WrapperManifest, module: MetaWrapper) -> None:
        import torch

        self._torch = torch
        self.wrapper, self.manifest = module, manifest
        self.config = manifest.config
        weights = {name: value.detach().numpy() for name, value in module.state_dict().items()}
        self.signals = WrapperSignals(weights, self.config)

    def read(self, acts: np.ndarray, first_token: tuple[float, float] | None = None) -> Reading:
        """Pass 1's activations [R, d] at the decision point → u and the cognitive tokens."""
        with self._torch.no_grad():
            u, tokens = self.wrapper.uncertainty(self._torch.as_tensor(acts)[None])
            if not self.config.reads_first_token:
                return Reading(float(u[0]), tokens)
            bottleneck = self.wrapper.confidence.bottleneck(tokens)[0].numpy()
        blended, support = _blended(self.signals, float(u[0]), bottleneck, first_token)
        return Reading(blended, tokens, support)

    def read_post(self, acts_post: np.ndarray, msp: float, entropy: float, support: float | None) -> float | None:
        """u_post (see `WrapperRuntime.read_post`)."""
        return self.signals.after(acts_post, msp, entropy, support)

    def injection(self, reading: Reading, u_mod: float, gain: float, decision_point: int) -> Injection:
        """A control vector (pooled) or a per-position injector (tokens) for u' and the gain."""
        torch = self._torch
        with torch.no_grad():
            memory = self.wrapper.memory(reading.tokens, torch.tensor([u_mod], dtype=torch.float32))
            start = inject_from(self.config, decision_point)
            if self.config.injection == "pooled":
                control = {k: v[0].numpy() for k, v in self.wrapper.pooled_offsets(memory, gain).items()}
                return Injection(control=control, inject_from=start)

        def injector(layer: int, hidden, positions: np.ndarray):
            steps = torch.as_tensor(positions - decision_point, dtype=torch.float32)
            with torch.no_grad():
                return self.wrapper.offsets(layer, hidden[None], memory, gain, steps=steps)[0]

        return Injection(injector=injector, layers=self.config.inject_layers, inject_from=start)
