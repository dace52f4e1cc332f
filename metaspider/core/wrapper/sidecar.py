"""The GGUF sidecar: a whole wrapper (weights and manifest) in one GGUF file next to the base model's.

One file, in the format llama.cpp users already handle, that `gguf-dump` can inspect. Tensors keep the
wrapper's state-dict names (`readers.20.proj.weight`, `heads.26.up.weight`, ...), so the sidecar, the
wrapper folder and the torch module agree name for name; most matrices are stored as Q8_0 by default,
which brings the sidecar to 1-3 % of a Q4 base model. The manifest is spread over `metaspider.*`
keys so a reader sees layers, modes and the base fingerprint without running anything.

Reading never imports torch: this module is the start of the torch-free deploy path."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import quants

from metaspider.core.wrapper.modifiers import Modifier
from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.folder import CalibratedThreshold, WrapperManifest, load_manifest, load_weights_numpy
from metaspider.errors import MetaspiderError

ARCHITECTURE = "metaspider"
WEIGHT_TYPES = ("q8_0", "f32")
"""`q8_0` (default): the encoder's and heads' matrices in llama.cpp's 8-bit blocks (about 0.5 % relative
error, a quarter of the size); vectors and the confidence head stay float32. `f32`: bit-exact copies of
the wrapper folder."""
SIDECAR_FORMAT_VERSION = 1
SUPPORTED_SIDECAR_VERSIONS = (1,)
_K = ARCHITECTURE + "."
F32, Q8_0 = gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.Q8_0


@dataclass(frozen=True)
class Sidecar:
    """What a sidecar holds: the wrapper's manifest and its float32 weights by state-dict name."""

    manifest: WrapperManifest
    weights: dict[str, np.ndarray]
    name: str


def write_sidecar(
    path: str | Path, manifest: WrapperManifest, weights: dict[str, np.ndarray], name: str, weight_type: str = "q8_0"
) -> Path:
    """Write atomically (temp file + rename): a crashed export never leaves a half sidecar behind."""
    path = Path(path)
    if weight_type not in WEIGHT_TYPES:
        raise MetaspiderError(f"unknown sidecar weight type {weight_type!r}: use one of {', '.join(WEIGHT_TYPES)}")
    expected = manifest.config.weight_shapes()
    if set(weights) != set(expected):
        raise MetaspiderError(
            f"cannot export to {path}: the weights do not match the wrapper config "
            f"(missing {sorted(set(expected) - set(weights))[:5]}, "
            f"unexpected {sorted(set(weights) - set(expected))[:5]})"
        )
    tmp = path.with_name(path.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), ARCHITECTURE)
    _add_metadata(writer, manifest, name)
    for tensor_name, shape in expected.items():
        array = np.ascontiguousarray(weights[tensor_name], dtype=np.float32)
        if array.shape != shape:
            raise MetaspiderError(
                f"cannot export to {path}: tensor {tensor_name} has shape {array.shape}, expected {shape}"
            )
        if weight_type == "q8_0" and _quantizable(tensor_name, array):
            writer.add_tensor(tensor_name, quants.quantize(array, Q8_0), raw_dtype=Q8_0)
        else:
            writer.add_tensor(tensor_name, array)
    return finish_gguf(writer, tmp, path)


def finish_gguf(writer: gguf.GGUFWriter, tmp: Path, path: Path) -> Path:
    """Write everything added to `writer` (open on `tmp`) and move it into place only when complete,
    so an interrupted export never leaves a half file at `path`."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    return path


def _quantizable(name: str, array: np.ndarray) -> bool:
    """Q8_0 packs rows in blocks of 32. Kept exact: vectors (norms, biases, gates: small and sensitive) and
    the confidence head, whose error goes straight into the logit of u and is multiplied by the
    calibration slope (measured on a wrapper with slope 23: Q8_0 everywhere moved u by 0.012, Q8_0
    outside the confidence head by 0.0016)."""
    block = gguf.GGML_QUANT_SIZES[Q8_0][0]
    return array.ndim == 2 and array.shape[1] % block == 0 and not name.startswith("confidence.")


def _add_metadata(writer: gguf.GGUFWriter, manifest: WrapperManifest, name: str) -> None:
    config = manifest.config
    string, u32, f64 = gguf.GGUFValueType.STRING, gguf.GGUFValueType.UINT32, gguf.GGUFValueType.FLOAT64
    array, i32 = gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32
    values: list[tuple[str, Any, gguf.GGUFValueType, gguf.GGUFValueType | None]] = [
        ("general.name", name, string, None),
        (_K + "format_version", SIDECAR_FORMAT_VERSION, u32, None),
        (_K + "base.fingerprint", manifest.base_fingerprint, string, None),
        (_K + "base.model", manifest.base_model, string, None),
        (_K + "d_model", config.d_model, u32, None),
        (_K + "bottleneck", config.bottleneck, u32, None),
        (_K + "n_heads", config.n_heads, u32, None),
        (_K + "read_layers", list(config.read_layers), array, i32),
        (_K + "inject_layers", list(config.inject_layers), array, i32),
        (_K + "injection", config.injection, string, None),
        (_K + "positions", config.positions, string, None),
        (_K + "gate_init", config.gate_init, f64, None),
        (_K + "damping_floor", config.damping_floor, f64, None),
        (_K + "damping_tau", config.damping_tau, f64, None),
        (_K + "modifier.name", manifest.modifier.name, string, None),
        (_K + "modifier.bias", manifest.modifier.bias, f64, None),
        (_K + "modifier.gain", manifest.gain, f64, None),
        (_K + "thresholds.answer_below", manifest.answer_below, f64, None),
        (_K + "thresholds.calibrated", json.dumps([c.__dict__ for c in manifest.calibrated]), string, None),
        (_K + "training_data", json.dumps(manifest.training_data), string, None),
        (_K + "metrics", json.dumps(manifest.metrics), string, None),
    ]
    for key, value, vtype, sub_type in values:
        writer.add_key_value(key, value, vtype, sub_type)


def read_sidecar(path: str | Path) -> Sidecar:
    """Every problem is a `MetaspiderError` naming the file: not GGUF, truncated, another architecture,
    an unknown format version, a missing key or tensor."""
    path = Path(path)
    if not path.is_file():
        raise MetaspiderError(f"sidecar not found: {path}")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # the reader raises ValueError, IndexError, struct errors... on damaged files
        raise MetaspiderError(f"sidecar {path} is unreadable (truncated or not a GGUF file?): {exc}") from None
    _check_complete(reader, path)
    fields = _scalar_fields(reader)
    architecture = fields.get("general.architecture")
    if architecture != ARCHITECTURE:
        raise MetaspiderError(
            f"{path} is not a metaspider sidecar: general.architecture is {architecture!r}, expected {ARCHITECTURE!r}"
        )
    version = fields.get(_K + "format_version")
    if version not in SUPPORTED_SIDECAR_VERSIONS:
        raise MetaspiderError(
            f"sidecar {path} has format_version {version!r}; this metaspider reads "
            f"{', '.join(map(str, SUPPORTED_SIDECAR_VERSIONS))} (a newer sidecar needs a newer metaspider)"
        )
    try:
        manifest = _manifest(fields)
    except KeyError as exc:
        raise MetaspiderError(f"sidecar {path} lacks the metadata key {exc.args[0]!r}") from None
    except (TypeError, ValueError, json.JSONDecodeError) as exc:
        raise MetaspiderError(f"sidecar {path} has malformed metadata: {exc}") from None
    weights = _weights(reader, manifest.config, path)
    return Sidecar(manifest, weights, str(fields.get("general.name", path.stem)))


def _check_complete(reader: gguf.GGUFReader, path: Path) -> None:
    size = path.stat().st_size
    for tensor in reader.tensors:
        end = tensor.data_offset + tensor.n_bytes
        if end > size or tensor.data.nbytes != tensor.n_bytes:
            raise MetaspiderError(
                f"sidecar {path} is truncated: tensor {tensor.name} ends at byte {end} but the file has {size} bytes"
            )


def _scalar_fields(reader: gguf.GGUFReader) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, field in reader.fields.items():
        value = field.contents()
        fields[name] = value.item() if isinstance(value, np.generic) else value
    return fields


def _manifest(fields: dict[str, Any]) -> WrapperManifest:
    config = WrapperConfig.from_dict(
        {
            "d_model": int(fields[_K + "d_model"]),
            "read_layers": [int(x) for x in fields[_K + "read_layers"]],
            "inject_layers": [int(x) for x in fields[_K + "inject_layers"]],
            "bottleneck": int(fields[_K + "bottleneck"]),
            "n_heads": int(fields[_K + "n_heads"]),
            "injection": str(fields[_K + "injection"]),
            "positions": str(fields[_K + "positions"]),
            "gate_init": float(fields[_K + "gate_init"]),
            "damping_floor": float(fields[_K + "damping_floor"]),
            "damping_tau": float(fields[_K + "damping_tau"]),
        }
    )
    return WrapperManifest(
        base_fingerprint=str(fields[_K + "base.fingerprint"]),
        base_model=str(fields[_K + "base.model"]),
        config=config,
        modifier=Modifier(str(fields[_K + "modifier.name"]), float(fields[_K + "modifier.bias"])),
        gain=float(fields[_K + "modifier.gain"]),
        answer_below=float(fields[_K + "thresholds.answer_below"]),
        calibrated=tuple(CalibratedThreshold(**c) for c in json.loads(fields[_K + "thresholds.calibrated"])),
        training_data=json.loads(fields[_K + "training_data"]),
        metrics=json.loads(fields[_K + "metrics"]),
    )


def _weights(reader: gguf.GGUFReader, config: WrapperConfig, path: Path) -> dict[str, np.ndarray]:
    expected = config.weight_shapes()
    found = {tensor.name: tensor for tensor in reader.tensors}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise MetaspiderError(
            f"sidecar {path}: tensors do not match its metadata: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    weights = {}
    for name, shape in expected.items():
        tensor = found[name]
        if tensor.tensor_type not in (F32, Q8_0) or tensor.n_elements != int(np.prod(shape)):
            raise MetaspiderError(
                f"sidecar {path}: tensor {name} is {tensor.tensor_type.name} with {tensor.n_elements} elements, "
                f"expected F32 or Q8_0 {shape}"
            )
        data = quants.dequantize(tensor.data, Q8_0) if tensor.tensor_type == Q8_0 else tensor.data
        weights[name] = np.array(data, dtype=np.float32).reshape(shape)
    return weights


def export_sidecar(wrapper: str | Path, out: str | Path, weight_type: str = "q8_0") -> Path:
    """A wrapper folder → its sidecar."""
    folder = Path(wrapper)
    return write_sidecar(out, load_manifest(folder), load_weights_numpy(folder), folder.name, weight_type)
