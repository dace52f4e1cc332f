"""Tiny wrapper folders for the deploy unit tests: no model file behind them."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_wrappers import FINGERPRINT
from deploy_wrappers import tiny_wrapper as make_tiny


@pytest.fixture
def tiny_wrapper(tmp_path: Path) -> Path:
    """A pooled wrapper with every sidecar field set."""
    return make_tiny(tmp_path / "tiny")


@pytest.fixture
def tiny_tokens_wrapper(tmp_path: Path) -> Path:
    """The same shape with tokens injection: it has no control vector."""
    return make_tiny(tmp_path / "tiny-tokens", injection="tokens")


@pytest.fixture
def tiny_fingerprint() -> str:
    return FINGERPRINT
