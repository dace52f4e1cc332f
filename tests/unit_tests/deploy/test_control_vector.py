"""The control-vector file format and the prompt-independent offsets, on a tiny wrapper (no model file)."""

import gguf
import numpy as np
import pytest

from metaspider.core.wrapper.numpy_math import NumpyWrapper
from metaspider.core.wrapper.sidecar import export_sidecar, read_sidecar
from metaspider.deploy.control_vector import (
    export_control_vector,
    model_hint,
    prompt_independent_offsets,
    read_control_vector,
    write_control_vector,
)
from metaspider.errors import MetaspiderError


def test_file_follows_llama_cpp_control_vector_convention(tiny_wrapper, tmp_path):
    sidecar = read_sidecar(export_sidecar(tiny_wrapper, tmp_path / "w.gguf", "f32"))
    wrapper = NumpyWrapper(sidecar.weights, sidecar.manifest.config)
    offsets = prompt_independent_offsets(wrapper, np.full(64, 0.5, dtype=np.float32), 1.0, 1.25)
    path = write_control_vector(tmp_path / "cv.gguf", offsets, model_hint(sidecar.manifest.base_model))
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.architecture"].contents() == "controlvector"
    assert reader.fields["controlvector.model_hint"].contents() == "llama"
    assert reader.fields["controlvector.layer_count"].contents() == 2
    assert sorted(t.name for t in reader.tensors) == ["direction.2", "direction.3"]
    for layer, vector in read_control_vector(path).items():
        np.testing.assert_array_equal(vector, offsets[layer])


def test_prompt_independent_part_fixes_the_tokens_and_the_doubt(tiny_wrapper, tmp_path):
    sidecar = read_sidecar(export_sidecar(tiny_wrapper, tmp_path / "w.gguf", "f32"))
    wrapper = NumpyWrapper(sidecar.weights, sidecar.manifest.config)
    mean = np.linspace(-1, 1, 64, dtype=np.float32)
    doubt = prompt_independent_offsets(wrapper, mean, 1.0, 1.0)
    sure = prompt_independent_offsets(wrapper, mean, 0.0, 1.0)
    by_hand = wrapper.pooled_offsets(wrapper.memory(np.stack([mean, mean]), 1.0), 1.0)
    for layer in (2, 3):
        np.testing.assert_allclose(doubt[layer], by_hand[layer], rtol=1e-6)
        assert not np.allclose(doubt[layer], sure[layer])
    with pytest.raises(MetaspiderError, match=r"u' must be in \[0, 1\]"):
        prompt_independent_offsets(wrapper, mean, 1.5, 1.0)


def test_tokens_wrappers_and_block_zero_have_no_control_vector(tiny_tokens_wrapper, tmp_path):
    sidecar = export_sidecar(tiny_tokens_wrapper, tmp_path / "t.gguf")
    with pytest.raises(MetaspiderError, match="only pooled wrappers"):
        export_control_vector(sidecar, tmp_path / "cv.gguf", [])
    with pytest.raises(MetaspiderError, match="start at block 1"):
        write_control_vector(tmp_path / "cv.gguf", {0: np.zeros(4, dtype=np.float32)}, "llama")
