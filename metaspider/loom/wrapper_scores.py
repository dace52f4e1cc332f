"""u for stored activations, computed by the deploy-side NumPy wrapper: the same numbers pass 1 gives
on llama.cpp, so thresholds chosen here hold at inference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metaspider.core.wrapper.runtime import NumpyRuntime
from metaspider.loom.run_folder import Collected


@dataclass(frozen=True)
class WrapperScores:
    """Per question: u (blended where the wrapper has a support model), its support and u_post (NaN where
    the wrapper has no support model or no post head)."""

    u: np.ndarray
    support: np.ndarray
    u_post: np.ndarray


def wrapper_scores(folder: Path, fingerprint: str, data: Collected, read_layers: tuple[int, ...]) -> WrapperScores:
    """u, support and u_post for each collected question, from the activations and baseline values `collect`
    stored (the same inputs pass 1 and `Pipeline.after_answer` read at inference). `read_layers`: the
    blocks `data`'s activations hold, in order."""
    runtime = NumpyRuntime(folder, fingerprint)
    config = runtime.config
    pre = [read_layers.index(layer) for layer in config.read_layers]
    post = [read_layers.index(layer) for layer in config.post_layers]
    u, support, u_post = [], [], []
    for i, record in enumerate(data.records):
        first = _pair(record, "msp_first", "entropy_first")
        reading = runtime.read(np.asarray(data.acts[i, pre], dtype=np.float32), first)
        u.append(reading.u)
        support.append(np.nan if reading.support is None else reading.support)
        after = None
        answer = _pair(record, "msp", "entropy")
        if post and data.acts_post is not None and answer is not None and record.get("n_answer", 1):
            after = runtime.read_post(np.asarray(data.acts_post[i, post], dtype=np.float32), *answer, reading.support)
        u_post.append(np.nan if after is None else after)
    return WrapperScores(np.array(u), np.array(support), np.array(u_post))


def _pair(record: dict, first: str, second: str) -> tuple[float, float] | None:
    a, b = record.get(first), record.get(second)
    return None if a is None or b is None else (float(a), float(b))
