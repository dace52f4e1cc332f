"""Random wrappers with a real file layout, for tests of the mechanism rather than of training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from metaspider.core.models.registry import DEFAULT_MODEL
from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.folder import WrapperManifest, save_wrapper
from metaspider.core.wrapper.modifiers import Modifier
from metaspider.core.wrapper.torch_module import MetaWrapper


def make_wrapper(
    folder: Path, config: WrapperConfig, fingerprint: str, up_std: float | None = None, **manifest: Any
) -> Path:
    """A random wrapper (seed 0). `up_std` enlarges the heads' Up projections so the injection visibly
    moves the logits (trained wrappers do; the 1e-3 initialisation barely does). `manifest` overrides the
    manifest's fields (default: modifier `none`, gain 1, answer below 0.5)."""
    torch.manual_seed(0)
    wrapper = MetaWrapper(config)
    if up_std is not None:
        with torch.no_grad():
            for head in wrapper.heads.values():
                head.up.weight.normal_(std=up_std)
    fields = {"base_model": DEFAULT_MODEL, "modifier": Modifier("none"), "gain": 1.0, "answer_below": 0.5} | manifest
    return save_wrapper(
        folder, wrapper.state_dict(), WrapperManifest(base_fingerprint=fingerprint, config=config, **fields)
    )
