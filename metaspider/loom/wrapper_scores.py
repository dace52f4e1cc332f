"""u for stored activations, computed by the deploy-side NumPy wrapper: the same numbers pass 1 gives
on llama.cpp, so thresholds chosen here hold at inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metaspider.core.wrapper.runtime import NumpyRuntime


def wrapper_u(folder: Path, fingerprint: str, acts: np.ndarray) -> np.ndarray:
    """u = P(wrong) for each of `acts` [N, R, d]."""
    runtime = NumpyRuntime(folder, fingerprint)
    return np.array([runtime.read(np.asarray(a, dtype=np.float32)).u for a in acts])
