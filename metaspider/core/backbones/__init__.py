"""Backbones: one interface (`Backbone`) over a frozen model, on Torch or on stock llama-cpp-python.

The implementations import torch or llama_cpp, so they load only when `load_backbone` asks for them."""

from __future__ import annotations

from metaspider.core.backbones.base import Backbone, GenerationEnd, Injection, Priming, SamplingParams, TokenOut
from metaspider.errors import MetaspiderError

__all__ = ["Backbone", "GenerationEnd", "Injection", "Priming", "SamplingParams", "TokenOut", "load_backbone"]


def load_backbone(model: str, backend: str, n_ctx: int = 2048, n_threads: int | None = None) -> Backbone:
    if backend == "llama_cpp":
        from metaspider.core.backbones.llama_cpp import LlamaCppBackbone

        return LlamaCppBackbone(model, n_ctx=n_ctx, n_threads=n_threads)
    if backend == "torch":
        from metaspider.core.backbones.torch import TorchBackbone

        return TorchBackbone(model, n_threads=n_threads)
    raise MetaspiderError(f"unknown backend {backend!r}: use 'llama_cpp' or 'torch'")
