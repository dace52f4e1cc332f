"""`metaspider doctor`: do the two backbones agree on this model?

Parity is what lets us train on Torch and deploy on llama.cpp, so it is measured, not assumed: same
token ids, same layer outputs, same greedy first token, and the same effect of one constant offset
whether it goes in through a Torch hook, the llama.cpp callback or a llama.cpp control vector."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np

from metaspider.core.backbones.base import Backbone, Injection
from metaspider.core.numerics import cosine, row_cosines

NEAR_TIE = 0.1
PROMPTS = (
    "What is the capital of France?",
    "Write a haiku about autumn.",
    "How many legs does a spider have?",
    "Explain photosynthesis in one sentence.",
    "What is 17 times 3?",
    "Translate 'good morning' into Spanish.",
    "Name three primary colours.",
    "Who wrote Romeo and Juliet?",
    "What does a thermometer measure?",
    "Give me a synonym for 'happy'.",
)


@dataclass
class DoctorReport:
    """What `metaspider doctor` measures: whether both backbones tokenize alike, how close their layer outputs,
    next tokens and injections are, and how long each takes to load and run."""

    model: str
    n_layers: int
    d_model: int
    fingerprint: str
    tokens_equal: bool
    activation_layers: list[int]
    activation_cosine_min: float
    next_token_agreement: float
    next_token_agreement_clear: float | None
    """The same, over the prompts whose two best next tokens are at least `NEAR_TIE` logits apart on both
    backbones: Q4 kernels and float32 differ by about that much, so a near-tie may flip either way."""
    injection_layer: int
    injection_cosine_min: float
    load_seconds: dict[str, float]
    forward_seconds: dict[str, float]

    def as_dict(self) -> dict:
        """The JSON form `metaspider doctor --json` prints."""
        return asdict(self)


def run_doctor(model: str) -> DoctorReport:
    """Load `model` on both backbones and measure their parity: the check that a wrapper trained on Torch means the
    same on llama.cpp."""
    from metaspider.core.backbones.llama_cpp import LlamaCppBackbone
    from metaspider.core.backbones.torch import TorchBackbone

    llama, llama_load = _timed(lambda: LlamaCppBackbone(model))
    torch_, torch_load = _timed(lambda: TorchBackbone(model))
    messages = [[{"role": "user", "content": p}] for p in PROMPTS]
    ids_llama = [llama.chat_ids(m) for m in messages]
    ids_torch = [torch_.chat_ids(m) for m in messages]
    layers = spread_layers(llama.n_layers)
    acts_llama, llama_fwd = _timed(lambda: [llama.capture(ids, layers) for ids in ids_llama])
    acts_torch, torch_fwd = _timed(lambda: [torch_.capture(ids, layers) for ids in ids_llama])
    cosines = [row_cosines(a[:, 0], b[:, 0]).min() for a, b in zip(acts_llama, acts_torch, strict=False)]
    logits = [(llama.next_logits(ids), torch_.next_logits(ids)) for ids in ids_llama]
    agree = np.array([np.argmax(a) == np.argmax(b) for a, b in logits])
    clear = np.array([_margin(a) >= NEAR_TIE and _margin(b) >= NEAR_TIE for a, b in logits])
    inject_layer = layers[1]
    injection_min = min(
        _injection_cosine(llama, torch_, ids, inject_layer, acts_llama[i][1, 0]) for i, ids in enumerate(ids_llama)
    )
    return DoctorReport(
        model=model,
        n_layers=llama.n_layers,
        d_model=llama.d_model,
        fingerprint=llama.fingerprint,
        tokens_equal=ids_llama == ids_torch,
        activation_layers=layers,
        activation_cosine_min=float(min(cosines)),
        next_token_agreement=float(np.mean(agree)),
        next_token_agreement_clear=float(np.mean(agree[clear])) if clear.any() else None,
        injection_layer=inject_layer,
        injection_cosine_min=float(injection_min),
        load_seconds={"llama_cpp": llama_load, "torch": torch_load},
        forward_seconds={"llama_cpp": llama_fwd / len(PROMPTS), "torch": torch_fwd / len(PROMPTS)},
    )


def _margin(logits: np.ndarray) -> float:
    top2 = np.partition(logits, -2)[-2:]
    return float(top2[1] - top2[0])


def spread_layers(n_layers: int) -> list[int]:
    """Early, middle and late blocks; never the last one (llama.cpp prunes its output)."""
    return [n_layers // 4, n_layers // 2, n_layers - 2]


def constant_offset(reference: np.ndarray, seed: int = 0) -> np.ndarray:
    """A random direction as long as half the residual stream: big enough to change the logits."""
    direction = np.random.default_rng(seed).standard_normal(size=(reference.shape[-1],)).astype(np.float32)
    return direction / np.linalg.norm(direction) * 0.5 * float(np.linalg.norm(reference))


def _injection_cosine(llama: Backbone, torch_: Backbone, ids: list[int], layer: int, reference: np.ndarray) -> float:
    offset = constant_offset(reference)
    via_hook = torch_.next_logits(ids, Injection(control={layer: offset}))

    def everywhere(_layer: int, hidden: Any, _positions: np.ndarray) -> np.ndarray:
        return np.broadcast_to(offset, hidden.shape)

    via_callback = llama.next_logits(ids, Injection(injector=everywhere, layers=(layer,)))
    via_control = llama.next_logits(ids, Injection(control={layer: offset}))
    return min(cosine(a, b) for a, b in combinations((via_hook, via_callback, via_control), 2))


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - start, 3)
