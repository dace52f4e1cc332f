import json
import math

import numpy as np
import pytest
import torch

from metaspider.core.wrapper.config import WrapperConfig, default_layers
from metaspider.core.wrapper.modifiers import Modifier
from metaspider.core.wrapper.torch_module import MetaWrapper
from metaspider.errors import MetaspiderError

D = 32


def make_config(**overrides) -> WrapperConfig:
    values = dict(d_model=D, read_layers=(4, 5, 6), inject_layers=(5, 6, 7), bottleneck=16, n_heads=4)
    return WrapperConfig(**(values | overrides))


def make_wrapper(**overrides) -> MetaWrapper:
    torch.manual_seed(0)
    return MetaWrapper(make_config(**overrides))


def run_memory(wrapper: MetaWrapper, batch: int = 2) -> torch.Tensor:
    acts = torch.randn(batch, len(wrapper.config.read_layers), D) * 3
    u, tokens = wrapper.uncertainty(acts)
    return wrapper.memory(tokens, u)


# --- config ---------------------------------------------------------------------------------------


def test_default_layers_read_the_late_third_and_never_the_last_block():
    read, inject = default_layers(30)
    assert read == tuple(range(20, 29))
    assert inject == (26, 27, 28)
    for n in (2, 3, 4, 12, 24, 28, 32):
        read, inject = default_layers(n)
        assert read and inject
        assert n - 1 not in read and n - 1 not in inject
        assert min(read + inject) >= 0


def test_default_layers_refuse_a_one_block_model():
    with pytest.raises(MetaspiderError, match="at least 2 blocks"):
        default_layers(1)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(bottleneck=18, n_heads=4), "not divisible"),
        (dict(read_layers=()), "read_layers"),
        (dict(inject_layers=(7, 5)), "strictly increasing"),
        (dict(injection="vector"), "injection"),
        (dict(positions="prompt"), "positions"),
        (dict(damping_floor=1.5), "damping_floor"),
        (dict(damping_tau=0.0), "damping_tau"),
        (dict(d_model=0), "d_model"),
    ],
)
def test_config_validation_names_the_field(overrides, message):
    with pytest.raises(MetaspiderError, match=message):
        make_config(**overrides)


def test_config_json_round_trip():
    config = make_config(injection="pooled", positions="all", damping_floor=0.4)
    assert WrapperConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_config_from_dict_rejects_unknown_fields():
    with pytest.raises(MetaspiderError, match="dropout"):
        WrapperConfig.from_dict(make_config().to_dict() | {"dropout": 0.1})


def test_state_dict_matches_the_config_weight_shapes():
    wrapper = make_wrapper()
    shapes = {name: tuple(t.shape) for name, t in wrapper.state_dict().items()}
    assert shapes == wrapper.config.weight_shapes()


# --- wrapper --------------------------------------------------------------------------------------


def test_shapes_in_tokens_mode():
    wrapper = make_wrapper()
    acts = torch.randn(2, 3, D)
    tokens = wrapper.encode(acts)
    assert tokens.shape == (2, 3, D)
    assert wrapper.confidence_logit(tokens).shape == (2,)
    u, _ = wrapper.uncertainty(acts)
    assert u.shape == (2,) and bool(((u > 0) & (u < 1)).all())
    memory = wrapper.memory(tokens, u)
    assert memory.shape == (2, 4, D)
    assert wrapper.offsets(6, torch.randn(2, 5, D), memory, gain=1.0).shape == (2, 5, D)


def test_shapes_in_pooled_mode():
    wrapper = make_wrapper(injection="pooled")
    memory = run_memory(wrapper)
    assert memory.shape == (2, 1, D)
    pooled = wrapper.pooled_offsets(memory, gain=1.0)
    assert sorted(pooled) == [5, 6, 7]
    assert all(v.shape == (2, D) for v in pooled.values())


def test_encode_rejects_acts_of_the_wrong_shape():
    with pytest.raises(ValueError, match="acts must be"):
        make_wrapper().encode(torch.randn(2, 4, D))


def test_offsets_refuse_a_layer_without_a_head():
    wrapper = make_wrapper()
    with pytest.raises(ValueError, match="not an injection layer"):
        wrapper.offsets(4, torch.randn(1, 2, D), run_memory(wrapper, 1), gain=1.0)


@pytest.mark.parametrize("injection", ["tokens", "pooled"])
def test_gain_zero_gives_exactly_zero_offsets(injection):
    wrapper = make_wrapper(injection=injection)
    memory = run_memory(wrapper)
    for layer in wrapper.config.inject_layers:
        offset = wrapper.offsets(layer, torch.randn(2, 7, D), memory, gain=0.0, steps=torch.arange(7))
        assert torch.count_nonzero(offset) == 0
    if injection == "pooled":
        assert all(torch.count_nonzero(v) == 0 for v in wrapper.pooled_offsets(memory, gain=0.0).values())


def test_pooled_offsets_are_the_same_at_every_position():
    wrapper = make_wrapper(injection="pooled")
    memory = run_memory(wrapper)
    pooled = wrapper.pooled_offsets(memory, gain=1.7)
    for layer in wrapper.config.inject_layers:
        offset = wrapper.offsets(layer, torch.randn(2, 9, D) * 5, memory, gain=1.7)
        torch.testing.assert_close(offset, pooled[layer].unsqueeze(1).expand(-1, 9, -1), rtol=1e-5, atol=1e-7)


def test_tokens_offsets_depend_on_the_position():
    wrapper = make_wrapper()
    offset = wrapper.offsets(6, torch.randn(1, 4, D) * 5, run_memory(wrapper, 1), gain=1.0)
    assert not torch.allclose(offset[0, 0], offset[0, 1])


def test_untrained_offsets_barely_move_the_hidden_states():
    wrapper = make_wrapper()
    memory = run_memory(wrapper)
    hidden = torch.randn(2, 6, D)
    for layer in wrapper.config.inject_layers:
        offset = wrapper.offsets(layer, hidden, memory, gain=1.0)
        ratio = offset.norm(dim=-1) / hidden.norm(dim=-1)
        assert 0 < ratio.max() < 0.01


def test_doubt_token_moves_with_u():
    wrapper = make_wrapper()
    tokens = wrapper.encode(torch.randn(1, 3, D))
    sure = wrapper.memory(tokens, torch.zeros(1))
    doubt = wrapper.memory(tokens, torch.ones(1))
    torch.testing.assert_close(sure[0, -1], wrapper.e_sure)
    torch.testing.assert_close(doubt[0, -1], wrapper.e_doubt)
    torch.testing.assert_close(sure[:, :-1], tokens)


def test_damping_scales_offsets_by_generated_step():
    wrapper = make_wrapper(damping_floor=0.5, damping_tau=2.0)
    memory = run_memory(wrapper, 1)
    hidden = torch.randn(1, 3, D)
    plain = wrapper.offsets(5, hidden, memory, gain=1.0)
    damped = wrapper.offsets(5, hidden, memory, gain=1.0, steps=torch.tensor([0, 2, 10_000]))
    scale = torch.tensor([1.0, 0.5 + 0.5 * math.exp(-1.0), 0.5]).view(1, 3, 1)
    torch.testing.assert_close(damped, plain * scale)


def test_gradients_reach_heads_gates_encoder_and_confidence():
    wrapper = make_wrapper()
    acts = torch.randn(2, 3, D)
    u, tokens = wrapper.uncertainty(acts)
    memory = wrapper.memory(tokens, Modifier("doubter").apply(u))
    hidden = torch.randn(2, 5, D)
    loss = sum((wrapper.offsets(j, hidden, memory, gain=1.0) * torch.randn(2, 5, D)).sum() for j in (5, 6, 7))
    loss.backward()
    no_grad = [n for n, p in wrapper.named_parameters() if p.grad is None or torch.count_nonzero(p.grad) == 0]
    assert no_grad == []


def test_train_and_eval_modes_compute_the_same_thing():
    wrapper = make_wrapper()
    acts, hidden = torch.randn(2, 3, D), torch.randn(2, 4, D)

    def outputs():
        u, tokens = wrapper.uncertainty(acts)
        return u, wrapper.offsets(7, hidden, wrapper.memory(tokens, u), gain=1.0)

    wrapper.train()
    trained = outputs()
    wrapper.eval()
    evaluated = outputs()
    for a, b in zip(trained, evaluated, strict=False):
        assert torch.equal(a, b)


def test_offsets_come_back_in_the_hidden_dtype():
    wrapper = make_wrapper()
    hidden = torch.randn(1, 2, D, dtype=torch.bfloat16)
    assert wrapper.offsets(5, hidden, run_memory(wrapper, 1), gain=1.0).dtype == torch.bfloat16


def test_fit_calibration_recovers_platt_parameters():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(20_000, generator=gen) * 2
    wrong = (torch.rand(20_000, generator=gen) < torch.sigmoid(2.0 * logits - 1.0)).float()
    wrapper = make_wrapper()
    a, b = wrapper.fit_calibration(logits, wrong)
    assert a == pytest.approx(2.0, abs=0.1) and b == pytest.approx(-1.0, abs=0.1)
    assert wrapper.calib_a.item() == pytest.approx(a) and wrapper.calib_b.item() == pytest.approx(b)
    torch.testing.assert_close(wrapper.calibrate(torch.tensor([0.5])), torch.sigmoid(torch.tensor([a * 0.5 + b])))


def test_fit_calibration_needs_both_classes():
    with pytest.raises(MetaspiderError, match="only correct"):
        make_wrapper().fit_calibration(torch.randn(10), torch.zeros(10))


# --- modifiers ------------------------------------------------------------------------------------


def test_watchdog_injects_nothing_and_none_injects_u_as_is():
    u = torch.tensor([0.2, 0.9])
    assert Modifier("watchdog").apply(u) is None
    assert Modifier("none").apply(u) is u


def test_doubter_adds_bias_in_logit_space():
    u = torch.tensor([0.01, 0.2, 0.5, 0.9])
    expected = torch.sigmoid(torch.logit(u) + 1.5)
    torch.testing.assert_close(Modifier("doubter", 1.5).apply(u), expected)
    assert bool((Modifier("doubter", 1.5).apply(u) > u).all())
    np.testing.assert_allclose(
        Modifier("doubter", -2.0).apply(u.numpy()), torch.sigmoid(torch.logit(u) - 2.0).numpy(), rtol=1e-6
    )


def test_doubter_keeps_certain_values_finite():
    assert Modifier("doubter", 3.0).apply(0.0) == 0.0
    assert Modifier("doubter", 3.0).apply(1.0) == 1.0


def test_modifier_validation():
    with pytest.raises(MetaspiderError, match="skeptic"):
        Modifier("skeptic")
    with pytest.raises(MetaspiderError, match="bias"):
        Modifier("doubter", float("nan"))
    assert Modifier.from_dict(Modifier("none", 0.5).to_dict()) == Modifier("none", 0.5)
