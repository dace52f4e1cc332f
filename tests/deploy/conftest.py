"""Wrapper folders for the deploy tests: tiny ones for file-format tests, and ones shaped for the default
model (random weights, its real fingerprint) for tests that run llama.cpp."""

from pathlib import Path

import pytest
from random_wrappers import make_wrapper as random_wrapper

from metaspider.core.wrapper.modifiers import Modifier
from metaspider.core.wrapper.config import WrapperConfig, default_layers
from metaspider.core.wrapper.folder import CalibratedThreshold

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


@pytest.fixture
def tiny_wrapper(tmp_path) -> Path:
    config = WrapperConfig(d_model=64, read_layers=(1, 2), inject_layers=(2, 3), bottleneck=32, n_heads=2,
                           injection="pooled", damping_floor=0.5)
    return make_wrapper(tmp_path / "tiny", config, FINGERPRINT)


@pytest.fixture(scope="session")
def model_fingerprint() -> str:
    from metaspider.core.models.model_files import fingerprint
    from metaspider.core.models.registry import resolve

    return fingerprint(resolve(MODEL, quiet=True))


@pytest.fixture
def tiny_fingerprint() -> str:
    return FINGERPRINT


@pytest.fixture
def model_wrapper(tmp_path, model_fingerprint):
    """Factory: a wrapper folder shaped for the default model (30 blocks, d = 576)."""

    def make(injection: str, positions: str, up_std: float | None = None) -> Path:
        read, inject = default_layers(30)
        config = WrapperConfig(d_model=576, read_layers=read, inject_layers=inject, bottleneck=128, n_heads=4,
                               injection=injection, positions=positions, damping_floor=0.5)
        return make_wrapper(tmp_path / f"{injection}-{positions}", config, model_fingerprint, up_std)

    return make


@pytest.fixture(scope="session")
def llama():
    from metaspider.core.backbones.llama_cpp import LlamaCppBackbone

    return LlamaCppBackbone(MODEL, n_ctx=512, n_threads=1)
