"""Wrapper folders for the deploy tests: tiny ones for file-format tests (unit), and ones shaped for the
default model (random weights, its real fingerprint) for tests that run llama.cpp (integration)."""

from __future__ import annotations

from pathlib import Path

from random_wrappers import make_wrapper as random_wrapper

from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.folder import CalibratedThreshold
from metaspider.core.wrapper.modifiers import Modifier

MODEL = "smollm2-135m"
FINGERPRINT = "sha256:1111aaaa"


def make_wrapper(folder: Path, config: WrapperConfig, fingerprint: str, up_std: float | None = None) -> Path:
    """A random wrapper with every manifest field the sidecar stores set to a non-default value."""
    return random_wrapper(
        folder,
        config,
        fingerprint,
        up_std,
        base_model=MODEL,
        modifier=Modifier("doubter", 2.0),
        gain=1.25,
        answer_below=0.42,
        calibrated=(CalibratedThreshold(max_risk=0.1, delta=0.05, threshold=0.31),),
        training_data={"datasets": {"countries": {"splits": ["train", "val"]}}},
        metrics={"auroc": 0.5},
    )


def tiny_wrapper(folder: Path, injection: str = "pooled") -> Path:
    """A wrapper for a 64-wide model of four blocks: file formats and maths, no model needed."""
    config = WrapperConfig(
        d_model=64,
        read_layers=(1, 2),
        inject_layers=(2, 3),
        bottleneck=32,
        n_heads=2,
        injection=injection,
        damping_floor=0.5,
    )
    return make_wrapper(folder, config, FINGERPRINT)
