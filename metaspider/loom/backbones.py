"""Backbones for `metaloom`, loaded once per process.

Loading the Torch backbone from a GGUF takes a minute (the file is parsed several times by
transformers); a session that trains and evaluates in one process, or a test suite driving the CLI
in-process, should pay that once. Both are serialised by their own lock."""

from __future__ import annotations

from functools import cache

from metaspider.core.backbones import load_backbone
from metaspider.core.backbones.base import Backbone


@cache
def llama_backbone(model: str, threads: int | None = None) -> Backbone:
    """The llama.cpp backbone collect and eval run on (the same one that serves)."""
    return load_backbone(model, "llama_cpp", n_threads=threads)


@cache
def torch_backbone(model: str, threads: int | None = None):
    """The Torch backbone (`TorchBackbone`); its `.model` and `.blocks` serve stage B."""
    return load_backbone(model, "torch", n_threads=threads)
