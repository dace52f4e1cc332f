"""Both backbones on the real default model: reading, writing, generating."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metaspider.core.backbones.base import GenerationEnd, Injection, SamplingParams, TokenOut
from metaspider.core.backbones.doctor import constant_offset

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
OTHER = [{"role": "user", "content": "Name three primary colours."}]
LAYERS = [3, 15, 28]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_chat_ids_are_identical_on_both_backbones(llama_backbone, torch_backbone):
    for messages in (QUESTION, OTHER, [{"role": "system", "content": "Be brief."}, *QUESTION]):
        assert llama_backbone.chat_ids(messages) == torch_backbone.chat_ids(messages)


def test_torch_layer_output_is_hidden_states_of_next_index(torch_backbone):
    ids = torch_backbone.chat_ids(QUESTION)
    captured = torch_backbone.capture(ids, LAYERS, positions=(0, -1))
    with torch.no_grad():
        out = torch_backbone.model(torch.tensor([ids]), output_hidden_states=True)
    for i, layer in enumerate(LAYERS):
        expected = out.hidden_states[layer + 1][0, [0, len(ids) - 1]].numpy()
        np.testing.assert_allclose(captured[i], expected, rtol=1e-4, atol=1e-4)


def test_llama_layer_output_matches_transformers(llama_backbone, torch_backbone):
    ids = llama_backbone.chat_ids(QUESTION)
    with torch.no_grad():
        out = torch_backbone.model(torch.tensor([ids]), output_hidden_states=True)
    captured = llama_backbone.capture(ids, LAYERS, positions=(-1, -5))
    for i, layer in enumerate(LAYERS):
        expected = out.hidden_states[layer + 1][0, [len(ids) - 1, len(ids) - 5]].numpy()
        assert _cosine(captured[i], expected).min() >= 0.99


def test_capture_after_another_prompt_equals_a_fresh_capture(backbone):
    """The cache is reused across requests: a shared prefix must not leak the previous prompt."""
    ids = backbone.chat_ids(QUESTION)
    first = backbone.capture(ids, LAYERS)
    backbone.capture(backbone.chat_ids(OTHER), LAYERS)
    np.testing.assert_allclose(backbone.capture(ids, LAYERS), first, rtol=1e-4, atol=1e-3)


def _offset(backbone, ids, layer=15, scale=1.0):
    return constant_offset(backbone.capture(ids, [layer])[0, 0]) * scale


@pytest.mark.parametrize("route", ["injector", "control"])
def test_zero_offset_changes_nothing_and_a_large_one_changes_the_output(backbone, route):
    ids = backbone.chat_ids(QUESTION)
    bare = backbone.next_logits(ids)
    params = SamplingParams(max_tokens=12)
    bare_text, _ = backbone.complete(ids, params)

    def injection(offset: np.ndarray) -> Injection:
        if route == "control":
            return Injection(control={15: offset})
        return Injection(
            injector=lambda _l, h, _p: (
                torch.as_tensor(offset).expand_as(h) if torch.is_tensor(h) else np.broadcast_to(offset, h.shape)
            ),
            layers=(15,),
        )

    zero = np.zeros(backbone.d_model, dtype=np.float32)
    np.testing.assert_allclose(backbone.next_logits(ids, injection(zero)), bare, atol=1e-3)
    large = _offset(backbone, ids, scale=8.0)
    assert backbone.complete(ids, params, injection(large))[0] != bare_text
    np.testing.assert_allclose(backbone.next_logits(ids), bare, atol=1e-3)  # the injection did not stick


def test_injection_from_a_position_leaves_earlier_positions_alone(backbone):
    ids = backbone.chat_ids(QUESTION)
    before = backbone.capture(ids, [20], positions=(-2,))
    offset = _offset(backbone, ids, scale=4.0)
    seen: list[np.ndarray] = []

    def spy(layer, hidden, positions):
        seen.append(np.asarray(positions))
        return (
            np.broadcast_to(offset, hidden.shape)
            if isinstance(hidden, np.ndarray)
            else torch.as_tensor(offset).expand_as(hidden)
        )

    backbone.next_logits(ids, Injection(injector=spy, layers=(15,), inject_from=len(ids) - 1))
    assert all(p.min() >= len(ids) - 1 for p in seen) and seen
    np.testing.assert_allclose(backbone.capture(ids, [20], positions=(-2,)), before, atol=1e-3)


def test_stop_strings_end_generation_and_are_not_emitted(backbone):
    ids = backbone.chat_ids([{"role": "user", "content": "Count from 1 to 10, separated by commas."}])
    full, _ = backbone.complete(ids, SamplingParams(max_tokens=40))
    assert "4" in full, full
    text, end = backbone.complete(ids, SamplingParams(max_tokens=40, stop=("4",)))
    assert end.finish_reason == "stop"
    assert "4" not in text and full.startswith(text)


def test_streamed_text_equals_non_streamed_text(backbone):
    ids = backbone.chat_ids(OTHER)
    params = SamplingParams(max_tokens=30, stop=("\n\n",))
    items = list(backbone.generate(ids, params))
    assert isinstance(items[-1], GenerationEnd)
    pieces = [item.text for item in items if isinstance(item, TokenOut)]
    assert len([p for p in pieces if p]) > 3
    assert "".join(pieces) == backbone.complete(ids, params)[0]


def test_backbones_generate_the_same_greedy_start(llama_backbone, torch_backbone):
    ids = llama_backbone.chat_ids(OTHER)
    params = SamplingParams(max_tokens=4)
    assert llama_backbone.complete(ids, params)[0] == torch_backbone.complete(ids, params)[0]


def test_sampling_is_reproducible_with_a_seed(llama_backbone):
    ids = llama_backbone.chat_ids(OTHER)
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=7)
    assert llama_backbone.complete(ids, params)[0] == llama_backbone.complete(ids, params)[0]


def test_layers_that_cannot_be_read_are_refused(llama_backbone):
    from metaspider.errors import MetaspiderError

    with pytest.raises(MetaspiderError, match="last block"):
        llama_backbone.capture(llama_backbone.chat_ids(QUESTION), [llama_backbone.n_layers - 1])
