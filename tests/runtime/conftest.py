"""A random wrapper shaped for the default model, so gain and injection can be tested before (and
independently of) the trained one. Its Up projections are enlarged so the gain visibly changes text."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metaspider.core.model_files import fingerprint
from metaspider.core.modifiers import Modifier
from metaspider.core.registry import DEFAULT_MODEL, resolve
from metaspider.core.wrapper import MetaWrapper
from metaspider.core.wrapper_config import WrapperConfig, default_layers
from metaspider.core.wrapper_file import WrapperManifest, save_wrapper


@pytest.fixture(scope="session")
def random_wrapper(tmp_path_factory) -> str:
    read, inject = default_layers(30)
    config = WrapperConfig(d_model=576, read_layers=read, inject_layers=inject, bottleneck=128, n_heads=4)
    torch.manual_seed(0)
    wrapper = MetaWrapper(config)
    with torch.no_grad():
        for head in wrapper.heads.values():
            head.up.weight.normal_(std=0.5)
    manifest = WrapperManifest(
        base_fingerprint=fingerprint(resolve(DEFAULT_MODEL)),
        base_model=DEFAULT_MODEL,
        config=config,
        modifier=Modifier("none"),
        gain=1.0,
        answer_below=0.5,
    )
    folder: Path = tmp_path_factory.mktemp("wrapper") / "random"
    return str(save_wrapper(folder, wrapper.state_dict(), manifest))
