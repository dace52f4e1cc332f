"""The wrapper at inference time, in the backbone's own array type.

Torch runs the trained `MetaWrapper` (gradients off); llama.cpp runs `NumpyWrapper`, so serving a
wrapper on llama.cpp never imports torch. Both turn pass-1 activations into u and the cognitive tokens,
and those into the `Injection` pass 2 applies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from threadpoolctl import threadpool_limits

from metaspider.core.backbones.base import Injection
from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.folder import WrapperManifest, check_fingerprint, load_manifest, load_weights_numpy
from metaspider.core.wrapper.sidecar import read_sidecar
from metaspider.core.wrapper.numpy_math import NumpyWrapper


@dataclass(frozen=True)
class Reading:
    """Pass 1's result: u and the cognitive tokens the injection attends to."""

    u: float
    tokens: Any


class WrapperRuntime(Protocol):
    config: WrapperConfig
    manifest: WrapperManifest

    def read(self, acts: np.ndarray) -> Reading: ...

    def injection(self, reading: Reading, u_mod: float, gain: float, decision_point: int) -> Injection: ...


def inject_from(config: WrapperConfig, decision_point: int) -> int:
    """`generated` injects from the decision point on (the token that predicts the first answer token
    is re-evaluated with the injection, nothing before it); `all` injects the whole prompt."""
    return decision_point if config.positions == "generated" else 0


class NumpyRuntime:
    """The wrapper in NumPy from a wrapper folder, or from a GGUF sidecar (`metaspider deploy export`).

    Building one limits BLAS to one thread for the whole process: the wrapper's products are one row
    wide, and OpenBLAS's worker threads spin against llama.cpp's on the same cores (measured on 2 busy
    cores: 13 ms per 576×128 product instead of 0.1 ms; tokens-mode decode 5× slower)."""

    def __init__(self, source: Path, fingerprint: str):
        threadpool_limits(1, user_api="blas")
        source = Path(source)
        if source.suffix == ".gguf":
            sidecar = read_sidecar(source)
            self.manifest, weights = sidecar.manifest, sidecar.weights
        else:
            self.manifest, weights = load_manifest(source), load_weights_numpy(source)
        check_fingerprint(self.manifest, fingerprint, source)
        self.config = self.manifest.config
        self.wrapper = NumpyWrapper(weights, self.config)

    def read(self, acts: np.ndarray) -> Reading:
        u, tokens = self.wrapper.uncertainty(acts)
        return Reading(float(u), tokens)

    def injection(self, reading: Reading, u_mod: float, gain: float, decision_point: int) -> Injection:
        memory = self.wrapper.memory(reading.tokens, u_mod)
        start = inject_from(self.config, decision_point)
        if self.config.injection == "pooled":
            return Injection(control=self.wrapper.pooled_offsets(memory, gain), inject_from=start)

        def injector(layer: int, hidden: np.ndarray, positions: np.ndarray) -> np.ndarray:
            return self.wrapper.offsets(layer, hidden, memory, gain, steps=positions - decision_point)

        return Injection(injector=injector, layers=self.config.inject_layers, inject_from=start)


class TorchRuntime:
    def __init__(self, folder: Path, fingerprint: str):
        import torch

        from metaspider.core.wrapper.folder import load_torch_wrapper

        self._torch = torch
        self.wrapper, self.manifest = load_torch_wrapper(folder, fingerprint)
        self.config = self.manifest.config

    def read(self, acts: np.ndarray) -> Reading:
        with self._torch.no_grad():
            u, tokens = self.wrapper.uncertainty(self._torch.as_tensor(acts)[None])
        return Reading(float(u[0]), tokens)

    def injection(self, reading: Reading, u_mod: float, gain: float, decision_point: int) -> Injection:
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
