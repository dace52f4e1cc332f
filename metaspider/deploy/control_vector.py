"""A `pooled` wrapper as a standard llama.cpp control vector, for `llama-cli --control-vector` and
`llama-server`, which run no Python at all.

A pooled injection adds at block j the same vector at every position:
    offset_j = g · tanh(gate_j) · Up_j(V_j(m)),   m = mean(C_1 .. C_R, doubt(u'))
It depends on the prompt twice: through the cognitive tokens C (pass 1's activations) and through u'
(pass 1's uncertainty). Stock llama.cpp has no pass 1, so the exported vector fixes both:
- u' is fixed (default 1: the doubt token is e_doubt, "full doubt");
- the tokens' mean is the mean over calibration prompts (the calib split of the wrapper's data set,
  run through the base model once at export). V and Up are affine, so this vector is exactly the
  average of the per-prompt pooled offsets at that u'.
Kept: the learned doubt direction, the offset common to all prompts, the per-layer gates and the gain.
Lost: what is specific to each prompt (the deviation of its cognitive tokens from the mean) and u
itself: the vector pushes every prompt, confident or not, toward doubt, and no uncertainty is
reported. `benchmarks/control_vector_fidelity.py` measures what is lost. `llama-cli
--control-vector-scaled FILE S` scales the vector like the runtime gain."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gguf
import numpy as np

from metaspider.core.backbones.base import Backbone
from metaspider.core.backbones.chat_template import Message
from metaspider.core.files import atomic_path
from metaspider.core.models.registry import MODELS
from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.folder import WrapperManifest
from metaspider.core.wrapper.numpy_math import NumpyWrapper
from metaspider.core.wrapper.runtime import NumpyRuntime
from metaspider.core.wrapper.sidecar import write_gguf
from metaspider.errors import MetaspiderError

ARCHITECTURE = "controlvector"
CALIBRATION_PROMPTS = 100


def mean_cognitive_token(backbone: Backbone, runtime: NumpyRuntime, prompts: Sequence[list[Message]]) -> np.ndarray:
    """[d] the cognitive tokens averaged over read layers and prompts: all a pooled memory needs of them."""
    if not prompts:
        raise MetaspiderError("the control vector needs at least one calibration prompt")
    total = np.zeros(runtime.config.d_model, dtype=np.float64)
    for messages in prompts:
        with backbone.lock:
            ids = backbone.chat_ids(messages)
            acts = backbone.capture(ids, runtime.config.read_layers)[:, 0, :]
        total += runtime.read(acts).tokens.mean(axis=0)
    return (total / len(prompts)).astype(np.float32)


def prompt_independent_offsets(
    wrapper: NumpyWrapper, mean_token: np.ndarray, u_mod: float, gain: float
) -> dict[int, np.ndarray]:
    """{block: [d]} the pooled offsets with every cognitive token at `mean_token` and u' fixed."""
    check_pooled(wrapper.config)
    if not 0.0 <= u_mod <= 1.0:
        raise MetaspiderError(f"the control vector's u' must be in [0, 1], got {u_mod}")
    tokens = np.tile(mean_token, (len(wrapper.config.read_layers), 1))
    return wrapper.pooled_offsets(wrapper.memory(tokens, u_mod), gain)


def check_pooled(config: WrapperConfig) -> None:
    """Refuse a control vector for a `tokens` wrapper: its offsets depend on each position, which one vector
    cannot hold."""
    if config.injection != "pooled":
        raise MetaspiderError(
            "only pooled wrappers have a control vector: this one injects 'tokens', whose offsets depend on "
            "each position's hidden state"
        )


def export_control_vector(
    sidecar: str | Path,
    out: str | Path,
    prompts: Sequence[list[Message]],
    model: str | None = None,
    u_mod: float = 1.0,
    n_prompts: int = CALIBRATION_PROMPTS,
    n_threads: int | None = None,
) -> Path:
    """The llama.cpp control vector of a pooled sidecar: the pooled offsets at the cognitive token averaged over
    up to `n_prompts` calibration `prompts` (the CLI takes them from a data set's calib split), with u' fixed.
    Runs the base model `model` (default: the one the wrapper was trained for)."""
    from metaspider.core.backbones.llama_cpp import LlamaCppBackbone
    from metaspider.core.wrapper.handle import Wrapper

    wrapper = Wrapper.open(sidecar)
    manifest = wrapper.manifest
    check_pooled(manifest.config)
    backbone = LlamaCppBackbone(model or manifest.base_model, n_threads=n_threads)
    runtime = wrapper.runtime(backbone, "llama_cpp")
    assert isinstance(runtime, NumpyRuntime)
    mean = mean_cognitive_token(backbone, runtime, list(prompts)[:n_prompts])
    offsets = prompt_independent_offsets(runtime.wrapper, mean, u_mod, manifest.gain)
    return write_control_vector(out, offsets, model_hint(manifest.base_model))


def training_set(manifest: WrapperManifest) -> str:
    """The first data set the manifest's training_data names (`datasets` mapping or `dataset`): where the
    calibration prompts come from unless the user names another."""
    data = manifest.training_data
    names = [data["dataset"]] if "dataset" in data else list(data.get("datasets") or {})
    if not names:
        raise MetaspiderError("the wrapper's manifest names no training data set: pass one with --calibration")
    return str(names[0])


def model_hint(base_model: str) -> str:
    """llama.cpp tools expect the base architecture here (e.g. "llama"), not a model name."""
    entry = MODELS.get(base_model)
    return entry.architecture if entry else base_model


def write_control_vector(path: str | Path, offsets: dict[int, np.ndarray], hint: str) -> Path:
    """`direction.N` is added to block N's output (llama.cpp's `l_out-N`); block 0 cannot carry one."""
    if not offsets:
        raise MetaspiderError("a control vector needs at least one layer")
    if min(offsets) < 1:
        raise MetaspiderError(f"llama.cpp control vectors start at block 1; got block {min(offsets)}")
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), ARCHITECTURE)
        writer.add_string("controlvector.model_hint", hint)
        writer.add_uint32("controlvector.layer_count", len(offsets))
        for layer in sorted(offsets):
            writer.add_tensor(f"direction.{layer}", np.ascontiguousarray(offsets[layer], dtype=np.float32))
        write_gguf(writer)
    return path


def read_control_vector(path: str | Path) -> dict[int, np.ndarray]:
    """{block: [d]}, the way llama.cpp's loader reads it (`direction.N` → block N)."""
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # damaged files raise many error types
        raise MetaspiderError(f"control vector {path} is unreadable (truncated or not a GGUF file?): {exc}") from None
    architecture = reader.fields.get("general.architecture")
    if architecture is None or architecture.contents() != ARCHITECTURE:
        raise MetaspiderError(f"{path} is not a control vector (general.architecture must be {ARCHITECTURE!r})")
    offsets = {}
    for tensor in reader.tensors:
        prefix, _, layer = tensor.name.partition(".")
        if prefix == "direction" and layer.isdigit():
            offsets[int(layer)] = np.array(tensor.data, dtype=np.float32).reshape(-1)
    return offsets
