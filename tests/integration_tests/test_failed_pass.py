"""A failure inside llama.cpp's evaluation callback must not leave uncomputed KV rows marked as cached:
the next request sharing the prefix must answer exactly as a cold run does."""

from __future__ import annotations

import numpy as np
import pytest

from metaspider.core.backbones.base import Injection, Priming, SamplingParams
from metaspider.core.backbones.llama_cpp import LlamaCppBackbone

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant who answers in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]
PARAMS = SamplingParams(max_tokens=12)


@pytest.fixture(scope="module")
def backbone() -> LlamaCppBackbone:
    return LlamaCppBackbone("smollm2-135m", n_threads=1)


def _cold(backbone: LlamaCppBackbone, ids: list[int]) -> str:
    backbone.reset()
    return backbone.complete(ids, PARAMS)[0]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_in_wrapper_during_pass_1(backbone: LlamaCppBackbone, error: type[BaseException]) -> None:
    ids = backbone.chat_ids(MESSAGES)
    expected = _cold(backbone, ids)
    read = backbone.n_layers // 2

    def broken_wrapper(_acts: np.ndarray) -> Injection | None:
        raise error("wrapper failed")

    backbone.reset()
    with pytest.raises(error, match="wrapper failed"):
        backbone.capture(ids, [read], priming=Priming((read + 2,), broken_wrapper))
    assert backbone.complete(ids, PARAMS)[0] == expected


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_error_in_ask_path_is_not_swallowed(backbone: LlamaCppBackbone, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = backbone.chat_ids(MESSAGES)
    expected = _cold(backbone, ids)

    def broken(_tensor: int) -> int:
        raise ValueError("bad tensor name")

    monkeypatch.setattr(backbone, "_layer_of", broken)
    with pytest.raises(ValueError, match="bad tensor name"):
        backbone.capture(ids, [3])
    monkeypatch.undo()
    assert backbone.complete(ids, PARAMS)[0] == expected
