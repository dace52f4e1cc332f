"""A random wrapper shaped for the default model, so gain and injection can be tested before (and
independently of) the trained one. Its Up projections are enlarged so the gain visibly changes text."""

from __future__ import annotations

from pathlib import Path

import pytest
from random_wrappers import make_wrapper

from metaspider.core.models.model_files import fingerprint
from metaspider.core.models.registry import DEFAULT_MODEL, resolve
from metaspider.core.wrapper.config import WrapperConfig, default_layers


@pytest.fixture(scope="session")
def random_wrapper(tmp_path_factory) -> str:
    read, inject = default_layers(30)
    config = WrapperConfig(d_model=576, read_layers=read, inject_layers=inject, bottleneck=128, n_heads=4)
    folder: Path = tmp_path_factory.mktemp("wrapper") / "random"
    return str(make_wrapper(folder, config, fingerprint(resolve(DEFAULT_MODEL)), up_std=0.5))
