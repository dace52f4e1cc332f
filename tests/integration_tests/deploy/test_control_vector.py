"""Control vectors on the default model: the exported vector is the mean pooled offset, and stock
llama.cpp applying it reproduces the sidecar runtime's logits."""

import ctypes

import gguf
import llama_cpp
import numpy as np

from metaspider.core.wrapper.runtime import NumpyRuntime
from metaspider.core.wrapper.sidecar import export_sidecar
from metaspider.deploy.control_vector import export_control_vector, read_control_vector, write_control_vector
from metaspider.loom.datasets import load_items, split_items, to_messages

QUESTION = [{"role": "user", "content": "What is the capital of Australia?\nAnswer in a few words."}]


def test_exported_vector_is_the_mean_pooled_offset_over_calibration_prompts(llama, model_wrapper, tmp_path):
    """V and Up are affine, so the vector at the mean cognitive token is the mean of the per-prompt offsets."""
    sidecar = export_sidecar(model_wrapper("pooled", "generated", up_std=0.05), tmp_path / "p.gguf", "f32")
    prompts = [to_messages(item) for item in split_items(load_items("countries"), "calib")]
    path = export_control_vector(sidecar, tmp_path / "cv.gguf", prompts, u_mod=1.0, n_prompts=3, n_threads=1)
    runtime = NumpyRuntime(sidecar, llama.fingerprint)
    per_prompt = []
    for item in split_items(load_items("countries"), "calib")[:3]:
        ids = llama.chat_ids(to_messages(item))
        reading = runtime.read(llama.capture(ids, runtime.config.read_layers)[:, 0, :])
        per_prompt.append(runtime.injection(reading, 1.0, runtime.manifest.gain, len(ids) - 1).control)
    vector = read_control_vector(path)
    assert sorted(vector) == list(runtime.config.inject_layers)
    for layer, direction in vector.items():
        np.testing.assert_allclose(direction, np.mean([p[layer] for p in per_prompt], axis=0), rtol=1e-3, atol=1e-5)


def test_control_vector_file_on_stock_llama_cpp_reproduces_the_pooled_injection(llama, model_wrapper, tmp_path):
    """The sidecar's pooled offsets for one prompt, written as a control vector, read back with GGUFReader and
    applied with llama_set_adapter_cvec on a plain `llama_cpp.Llama`, give the logits the sidecar runtime gives."""
    sidecar = export_sidecar(model_wrapper("pooled", "all", up_std=1.0), tmp_path / "p.gguf")
    runtime = NumpyRuntime(sidecar, llama.fingerprint)
    ids = llama.chat_ids(QUESTION)
    reading = runtime.read(llama.capture(ids, runtime.config.read_layers)[:, 0, :])
    injection = runtime.injection(reading, u_mod=0.9, gain=1.0, decision_point=len(ids) - 1)
    ours = llama.next_logits(ids, injection)
    bare = llama.next_logits(ids, None)

    path = write_control_vector(tmp_path / "cv.gguf", injection.control, "llama")
    directions = {int(t.name.split(".")[1]): np.asarray(t.data, np.float32) for t in gguf.GGUFReader(path).tensors}
    # flash attention on: what llama.cpp's "auto" (the backbone's setting) picks on a CPU
    plain = llama_cpp.Llama(str(llama.path), n_ctx=512, n_threads=1, logits_all=True, flash_attn=True, verbose=False)
    n_embd, n_layer = plain.n_embd(), llama_cpp.llama_model_n_layer(plain.model)
    data = np.zeros((n_layer - 1, n_embd), dtype=np.float32)  # llama.cpp's layout: row i is block i + 1
    for layer, vector in directions.items():
        data[layer - 1] = vector
    status = llama_cpp.llama_set_adapter_cvec(
        plain.ctx, data.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), data.size, n_embd, 1, n_layer - 1
    )
    assert status == 0
    plain.eval(ids)
    theirs = np.asarray(plain.scores[len(ids) - 1], dtype=np.float32)

    def cosine(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cosine(ours, theirs) >= 0.999
    assert cosine(ours, bare) < cosine(ours, theirs)
    assert np.abs(ours - bare).max() > 10 * np.abs(ours - theirs).max()
