"""Shared fixtures: the real default model on both backbones, loaded once per test session."""

from __future__ import annotations

import pytest

from metaspider.core.models.registry import DEFAULT_MODEL


@pytest.fixture(scope="session")
def llama_backbone():
    from metaspider.core.backbones.llama_cpp import LlamaCppBackbone

    return LlamaCppBackbone(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def torch_backbone():
    from metaspider.core.backbones.torch import TorchBackbone

    return TorchBackbone(DEFAULT_MODEL)


@pytest.fixture(params=["llama_cpp", "torch"])
def backbone(request, llama_backbone, torch_backbone):
    return llama_backbone if request.param == "llama_cpp" else torch_backbone
