import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.folder import WrapperManifest, save_wrapper
from metaspider.core.wrapper.numpy_math import NumpyWrapper, gelu
from metaspider.core.wrapper.torch_module import MetaWrapper
from metaspider.errors import MetaspiderError

D = 48
TOL = dict(rtol=1e-5, atol=1e-5)
REPO = Path(__file__).resolve().parents[3]


def trained_like_pair(injection: str) -> tuple[MetaWrapper, NumpyWrapper]:
    """Both implementations from the same weights, perturbed away from init so every term matters."""
    torch.manual_seed(3)
    config = WrapperConfig(
        d_model=D,
        read_layers=(2, 3, 4, 5),
        inject_layers=(3, 5),
        bottleneck=24,
        n_heads=3,
        injection=injection,
        damping_floor=0.3,
        damping_tau=4.0,
    )
    wrapper = MetaWrapper(config).eval()
    with torch.no_grad():
        for tensor in wrapper.state_dict().values():
            tensor.add_(torch.randn_like(tensor) * 0.2)
    state = {name: t.numpy().copy() for name, t in wrapper.state_dict().items()}
    return wrapper, NumpyWrapper(state, config)


def close(actual, expected) -> None:
    np.testing.assert_allclose(np.asarray(actual), expected.detach().numpy(), **TOL)


def test_gelu_is_the_exact_erf_gelu():
    x = torch.linspace(-12, 12, 10_001)
    np.testing.assert_allclose(gelu(x.numpy()), F.gelu(x).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("injection", ["tokens", "pooled"])
def test_numpy_wrapper_equals_torch_wrapper(injection):
    wrapper, numpy_wrapper = trained_like_pair(injection)
    acts = torch.randn(1, 4, D) * 4
    hidden = torch.randn(1, 6, D) * 3
    steps = torch.arange(6)
    with torch.no_grad():
        u, tokens = wrapper.uncertainty(acts)
        logit = wrapper.confidence_logit(tokens)
        memory = wrapper.memory(tokens, u * 0.5 + 0.4)
        offsets = {j: wrapper.offsets(j, hidden, memory, gain=1.3, steps=steps) for j in (3, 5)}

    np_u, np_tokens = numpy_wrapper.uncertainty(acts[0].numpy())
    close(np_tokens, tokens[0])
    close(numpy_wrapper.confidence_logit(np_tokens), logit[0])
    close(np_u, u[0])
    np_memory = numpy_wrapper.memory(np_tokens, float(u[0]) * 0.5 + 0.4)
    close(np_memory, memory[0])
    for j in (3, 5):
        np_offset = numpy_wrapper.offsets(j, hidden[0].numpy(), np_memory, gain=1.3, steps=steps.numpy())
        assert np_offset.dtype == np.float32
        close(np_offset, offsets[j][0])
        assert np.abs(np_offset).max() > 1e-3  # the comparison is not between two zero arrays


def test_numpy_pooled_offsets_equal_torch():
    wrapper, numpy_wrapper = trained_like_pair("pooled")
    acts = torch.randn(1, 4, D)
    with torch.no_grad():
        u, tokens = wrapper.uncertainty(acts)
        pooled = wrapper.pooled_offsets(wrapper.memory(tokens, u), gain=-0.7)
    np_u, np_tokens = numpy_wrapper.uncertainty(acts[0].numpy())
    np_pooled = numpy_wrapper.pooled_offsets(numpy_wrapper.memory(np_tokens, np_u), gain=-0.7)
    assert sorted(np_pooled) == [3, 5]
    for j in (3, 5):
        close(np_pooled[j], pooled[j][0])


def test_numpy_gain_zero_gives_zero_offsets():
    _, numpy_wrapper = trained_like_pair("tokens")
    u, tokens = numpy_wrapper.uncertainty(np.random.default_rng(0).normal(size=(4, D)).astype(np.float32))
    offset = numpy_wrapper.offsets(3, np.ones((2, D), np.float32), numpy_wrapper.memory(tokens, u), gain=0.0)
    assert not offset.any()


def test_numpy_wrapper_names_missing_weights():
    wrapper, _ = trained_like_pair("tokens")
    state = {name: t.numpy() for name, t in wrapper.state_dict().items() if name != "heads.5.up.weight"}
    with pytest.raises(MetaspiderError, match="heads.5.up.weight"):
        NumpyWrapper(state, wrapper.config)


def test_numpy_wrapper_names_wrong_shapes():
    wrapper, _ = trained_like_pair("tokens")
    state = {name: t.numpy() for name, t in wrapper.state_dict().items()}
    state["e_doubt"] = np.zeros(D + 1, np.float32)
    with pytest.raises(MetaspiderError, match="e_doubt"):
        NumpyWrapper(state, wrapper.config)


BLOCK_TORCH = """
import importlib.abc, sys

class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None

sys.meta_path.insert(0, BlockTorch())
"""


def test_deploy_modules_run_without_torch(tmp_path):
    wrapper, numpy_wrapper = trained_like_pair("tokens")
    manifest = WrapperManifest(base_fingerprint="sha256:abc", base_model="tiny", config=wrapper.config)
    save_wrapper(tmp_path / "w", wrapper.state_dict(), manifest)
    acts = np.random.default_rng(1).normal(size=(4, D)).astype(np.float32)
    np.save(tmp_path / "acts.npy", acts)
    script = BLOCK_TORCH + textwrap.dedent(f"""
        import json
        import numpy as np
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("the torch blocker does not work")
        from metaspider.core.wrapper.modifiers import Modifier
        from metaspider.core.wrapper.folder import check_fingerprint, load_manifest, load_weights_numpy
        from metaspider.core.wrapper.numpy_math import NumpyWrapper

        folder = {str(tmp_path / "w")!r}
        manifest = load_manifest(folder)
        check_fingerprint(manifest, "sha256:abc", folder)
        wrapper = NumpyWrapper(load_weights_numpy(folder), manifest.config)
        u, tokens = wrapper.uncertainty(np.load({str(tmp_path / "acts.npy")!r}))
        memory = wrapper.memory(tokens, Modifier("doubter").apply(u))
        offset = wrapper.offsets(5, np.ones((3, {D}), np.float32), memory, gain=1.0)
        assert not any(name == "torch" or name.startswith("torch.") for name in sys.modules)
        print(json.dumps({{"u": u, "offset_shape": list(offset.shape)}}))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["offset_shape"] == [3, D]
    assert report["u"] == pytest.approx(numpy_wrapper.uncertainty(acts)[0], abs=1e-6)
