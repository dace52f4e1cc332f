"""The wrapper's math in NumPy for the deploy path, which runs without torch.

Same names and formulas as `wrapper.py`, for one request at a time (no batch dimension). Keep the two in
step: tests compare them on random inputs. Never import torch here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.special import erf, expit

from metaspider.core.wrapper.config import WrapperConfig

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default


def gelu(x: np.ndarray) -> np.ndarray:
    """torch's exact (erf) GELU, not the tanh approximation."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """LayerNorm over the last axis with torch's epsilon, so NumPy and Torch wrappers agree."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * weight + bias


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class NumpyWrapper:
    """The wrapper's inference math in NumPy, weight for weight the same as `MetaWrapper`: it lets llama.cpp
    serve a wrapper without torch."""

    def __init__(self, weights: Mapping[str, np.ndarray], config: WrapperConfig) -> None:
        self.config = config
        self.w = _checked_weights(weights, config)

    def _linear(self, name: str, x: np.ndarray) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def _norm(self, name: str, x: np.ndarray) -> np.ndarray:
        return layer_norm(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def encode(self, acts: np.ndarray) -> np.ndarray:
        """Read-layer outputs at the decision point [R, d] (in read_layers order) → cognitive tokens [R, d]."""
        expected = (len(self.config.read_layers), self.config.d_model)
        if acts.shape != expected:
            raise ValueError(f"acts must be {list(expected)}, got {list(acts.shape)}")
        acts = acts.astype(np.float32)
        per_layer = []
        for i, layer in enumerate(self.config.read_layers):
            x = gelu(self._linear(f"readers.{layer}.proj", self._norm(f"readers.{layer}.norm", acts[i])))
            per_layer.append(np.tanh(self.w[f"readers.{layer}.gate"]) * x)
        x = np.stack(per_layer)  # [R, b]
        return self._norm("shared_norm", self._linear("shared_out", gelu(self._linear("shared_in", x))))

    def confidence_logit(self, tokens: np.ndarray) -> float:
        """The confidence head's logit from the cognitive tokens [R, d] (attention pooling, then an MLP)."""
        return float(self._linear("confidence.out", self.bottleneck(tokens))[0])

    def bottleneck(self, tokens: np.ndarray) -> np.ndarray:
        """The confidence head's hidden vector [b] from the cognitive tokens [R, d]: where support is measured."""
        scores = tokens @ self.w["confidence.query"] / math.sqrt(tokens.shape[-1])  # [R]
        pooled = softmax(scores) @ tokens  # [d]
        return gelu(self._linear("confidence.hidden", pooled))

    def uncertainty(self, acts: np.ndarray) -> tuple[float, np.ndarray]:
        """(u = calibrated P(the base answer is wrong), cognitive tokens [R, d])."""
        tokens = self.encode(acts)
        return self.calibrate(self.confidence_logit(tokens)), tokens

    def calibrate(self, logit: float) -> float:
        """u = sigmoid(a · logit + b) with the Platt parameters stored in the weights."""
        return float(expit(self.w["calib_a"][0] * logit + self.w["calib_b"][0]))

    def memory(self, tokens: np.ndarray, u_mod: float) -> np.ndarray:
        """Cognitive tokens [R, d] plus the doubt token → [R+1, d], or [1, d] (their mean) in pooled mode."""
        doubt = u_mod * self.w["e_doubt"] + (1.0 - u_mod) * self.w["e_sure"]
        memory = np.concatenate([tokens, doubt[None].astype(np.float32)])
        if self.config.injection == "pooled":
            return memory.mean(axis=0, keepdims=True)
        return memory

    def damping(self, steps: np.ndarray) -> np.ndarray:
        """The injection's scale at each generated step (1 when damping is off)."""
        floor, tau = self.config.damping_floor, self.config.damping_tau
        return (floor + (1 - floor) * np.exp(-np.asarray(steps, dtype=np.float64) / tau)).astype(np.float32)

    def offsets(
        self, layer: int, hidden: np.ndarray, memory: np.ndarray, gain: float, steps: np.ndarray | None = None
    ) -> np.ndarray:
        """What to add to block `layer`'s output hidden [T, d]; `steps` [T] as in the torch wrapper."""
        p = self._head_prefix(layer)
        T, M, H = hidden.shape[0], memory.shape[0], self.config.n_heads
        q = self._linear(f"{p}.q", self._linear(f"{p}.down", self._norm(f"{p}.norm", hidden.astype(np.float32))))
        k, v = self._linear(f"{p}.k", memory), self._linear(f"{p}.v", memory)  # [M, b]
        q = q.reshape(T, H, -1).transpose(1, 0, 2)  # [H, T, hb]
        k = k.reshape(M, H, -1).transpose(1, 0, 2)  # [H, M, hb]
        v = v.reshape(M, H, -1).transpose(1, 0, 2)
        att = softmax(q @ k.transpose(0, 2, 1) / math.sqrt(self.config.head_dim))  # [H, T, M]
        y = (att @ v).transpose(1, 0, 2).reshape(T, -1)  # [T, b]
        out = gain * np.tanh(self.w[f"{p}.gate"]) * self._linear(f"{p}.up", y)
        if steps is not None:
            out = out * self.damping(steps)[:, None]
        return out.astype(np.float32)

    def pooled_offsets(self, memory: np.ndarray, gain: float) -> dict[int, np.ndarray]:
        """Position-independent offsets {layer: [d]} for a one-token memory [1, d]: one control vector per layer."""
        if memory.shape[0] != 1:
            raise ValueError(f"pooled offsets need a one-token memory, got {memory.shape[0]} tokens")
        result = {}
        for layer in self.config.inject_layers:
            p = f"heads.{layer}"
            up = self._linear(f"{p}.up", self._linear(f"{p}.v", memory[0]))
            result[layer] = (gain * np.tanh(self.w[f"{p}.gate"]) * up).astype(np.float32)
        return result

    def _head_prefix(self, layer: int) -> str:
        if layer not in self.config.inject_layers:
            raise ValueError(f"block {layer} is not an injection layer; they are {self.config.inject_layers}")
        return f"heads.{layer}"


def _checked_weights(weights: Mapping[str, np.ndarray], config: WrapperConfig) -> dict[str, np.ndarray]:
    config.check_weights(weights, "wrapper weights")
    return {name: np.ascontiguousarray(weights[name], dtype=np.float32) for name in config.weight_shapes()}
