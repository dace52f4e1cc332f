"""llama.cpp's grammar sampler on the default model's vocabulary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metaspider.core.models.registry import DEFAULT_MODEL, resolve
from metaspider.runtime.constrained import FORBIDDEN, GrammarConstraint, schema_grammar, vocab_for

JOKE = {
    "type": "object",
    "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}},
    "required": ["setup", "punchline"],
}


@pytest.fixture(scope="module")
def vocab():
    return vocab_for(resolve(DEFAULT_MODEL))


def test_only_grammatical_tokens_survive_the_mask(vocab):
    constraint = GrammarConstraint(vocab, schema_grammar(JOKE, 100))
    masked = constraint.mask(np.zeros(vocab.size, dtype=np.float32))
    allowed = np.flatnonzero(masked > FORBIDDEN)
    assert 0 < len(allowed) < 50  # "{" and its spaced variants, nothing else
    assert np.isfinite(masked).all()


def test_a_walk_of_least_likely_allowed_tokens_still_parses(vocab):
    """Even a model that picks the worst allowed token every step ends with parseable JSON."""
    import llama_cpp

    constraint = GrammarConstraint(vocab, schema_grammar(JOKE, 60))
    rng = np.random.default_rng(0)
    pieces: list[bytes] = []
    for _ in range(60):
        masked = constraint.mask(rng.normal(size=vocab.size).astype(np.float32))
        allowed = np.flatnonzero(masked > FORBIDDEN)
        token = int(allowed[np.argmin(masked[allowed])])
        if llama_cpp.llama_vocab_is_eog(vocab.pointer, token):
            break
        constraint.accept(token)
        buffer = bytes(64)
        n = llama_cpp.llama_token_to_piece(vocab.pointer, token, buffer, 64, 0, True)
        pieces.append(buffer[:n])
    value = json.loads(b"".join(pieces).decode("utf-8", errors="replace"))
    assert set(value) == {"setup", "punchline"}
