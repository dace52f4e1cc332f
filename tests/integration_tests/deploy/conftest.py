"""Wrapper folders shaped for the default model (random weights, its real fingerprint) and the model itself
on llama.cpp, for the deploy tests that run it."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_wrappers import MODEL, make_wrapper

from metaspider.core.wrapper.config import WrapperConfig, default_layers


@pytest.fixture(scope="session")
def model_fingerprint() -> str:
    from metaspider.core.models.model_files import fingerprint
    from metaspider.core.models.registry import resolve

    return fingerprint(resolve(MODEL, quiet=True))


@pytest.fixture
def model_wrapper(tmp_path, model_fingerprint):
    """Factory: a wrapper folder shaped for the default model (30 blocks, d = 576)."""

    def make(injection: str, positions: str, up_std: float | None = None) -> Path:
        read, inject = default_layers(30)
        config = WrapperConfig(
            d_model=576,
            read_layers=read,
            inject_layers=inject,
            bottleneck=128,
            n_heads=4,
            injection=injection,
            positions=positions,
            damping_floor=0.5,
        )
        return make_wrapper(tmp_path / f"{injection}-{positions}", config, model_fingerprint, up_std)

    return make


@pytest.fixture(scope="session")
def llama():
    from metaspider.core.backbones.llama_cpp import LlamaCppBackbone

    return LlamaCppBackbone(MODEL, n_ctx=512, n_threads=1)
