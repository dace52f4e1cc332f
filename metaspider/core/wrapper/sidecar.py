"""The GGUF sidecar: a whole wrapper (weights and manifest) in one GGUF file next to the base model's.

One file, in the format llama.cpp users already handle, that `gguf-dump` can inspect. Tensors keep the
wrapper's state-dict names (`readers.20.proj.weight`, `heads.26.up.weight`, ...), so the sidecar, the
wrapper folder and the torch module agree name for name; most matrices are stored as Q8_0 by default,
which brings the sidecar to 1-3 % of a Q4 base model. The manifest is spread over `metaspider.*`
keys so a reader sees layers, modes and the base fingerprint without running anything.

Reading never imports torch: this module is the start of the torch-free deploy path."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import quants

from metaspider.core.files import atomic_path
from metaspider.core.names import SIDECAR_WEIGHT_TYPES
from metaspider.core.wrapper.config import FITTED_GROUPS, WrapperConfig
from metaspider.core.wrapper.folder import FORMAT_VERSION, WrapperManifest
from metaspider.errors import MetaspiderError

ARCHITECTURE = "metaspider"
WEIGHT_TYPES = SIDECAR_WEIGHT_TYPES
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
    """Write the sidecar atomically: a crashed export never leaves a half sidecar behind."""
    path = Path(path)
    if weight_type not in WEIGHT_TYPES:
        raise MetaspiderError(f"unknown sidecar weight type {weight_type!r}: use one of {', '.join(WEIGHT_TYPES)}")
    manifest.config.check_weights(weights, f"cannot export to {path}")
    with atomic_path(path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), ARCHITECTURE)
        _add_metadata(writer, manifest, name)
        for tensor_name in manifest.config.weight_shapes():
            array = np.ascontiguousarray(weights[tensor_name], dtype=np.float32)
            if weight_type == "q8_0" and _quantizable(tensor_name, array):
                writer.add_tensor(tensor_name, quants.quantize(array, Q8_0), raw_dtype=Q8_0)
            else:
                writer.add_tensor(tensor_name, array)
        write_gguf(writer)
    return path


def write_gguf(writer: gguf.GGUFWriter) -> None:
    """Write everything added to `writer` and close it (callers open it on an `atomic_path`)."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _quantizable(name: str, array: np.ndarray) -> bool:
    """Q8_0 packs rows in blocks of 32. Kept exact: vectors (norms, biases, gates: small and sensitive) and
    the confidence head, whose error goes straight into the logit of u and is multiplied by the
    calibration slope (measured on a wrapper with slope 23: Q8_0 everywhere moved u by 0.012, Q8_0
    outside the confidence head by 0.0016). The support's precision and the post-answer head's
    statistics and coefficients stay exact too: they are small, and a distance or a standardisation
    amplifies rounding."""
    block = gguf.GGML_QUANT_SIZES[Q8_0][0]
    exact = ("confidence.", *(f"{group}." for group in FITTED_GROUPS))
    return array.ndim == 2 and array.shape[1] % block == 0 and not name.startswith(exact)


_JSON_FIELDS = ("thresholds.calibrated", "training_data", "metrics")
"""Manifest fields of free or nested shape, stored as one JSON string each."""


def sidecar_fields(manifest: WrapperManifest) -> dict[str, Any]:
    """The manifest as flat `metaspider.*` metadata keys (without the prefix), derived from its JSON layout:
    nested objects become dotted keys, the config's fields sit at the top, free-form parts are JSON strings."""
    data = manifest.to_dict()
    del data["format_version"]  # the sidecar has its own format version
    config = data.pop("config")
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if prefix in _JSON_FIELDS:
            flat[prefix] = json.dumps(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        else:
            flat[prefix] = value

    walk("base", data.pop("base"))
    walk("", config)
    walk("", data)
    # GGUF arrays are typed by their items: an empty one (no post-answer layers) is left out, read back as the default
    return {key: value for key, value in flat.items() if value != []}


def manifest_from_fields(fields: dict[str, Any]) -> WrapperManifest:
    """Inverse of `sidecar_fields`: rebuild the manifest's JSON layout from the metadata and validate it."""
    data: dict[str, Any] = {"format_version": FORMAT_VERSION, "config": {}}
    config_fields = set(WrapperConfig.model_fields)
    for key, value in fields.items():
        if not key.startswith(_K) or key == _K + "format_version":
            continue
        name = key.removeprefix(_K)
        if name in _JSON_FIELDS:
            value = json.loads(value)
        elif isinstance(value, list):
            value = [x.item() if isinstance(x, np.generic) else x for x in value]
        if name in config_fields:
            data["config"][name] = value
            continue
        *parents, leaf = name.split(".")
        target = data
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return WrapperManifest.from_dict(data)


def _add_metadata(writer: gguf.GGUFWriter, manifest: WrapperManifest, name: str) -> None:
    writer.add_key_value("general.name", name, gguf.GGUFValueType.STRING)
    writer.add_key_value(_K + "format_version", SIDECAR_FORMAT_VERSION, gguf.GGUFValueType.UINT32)
    for key, value in sidecar_fields(manifest).items():
        if isinstance(value, bool):
            writer.add_key_value(_K + key, value, gguf.GGUFValueType.BOOL)
        elif isinstance(value, list):
            writer.add_key_value(_K + key, value, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32)
        elif isinstance(value, str):
            writer.add_key_value(_K + key, value, gguf.GGUFValueType.STRING)
        elif isinstance(value, int):
            writer.add_key_value(_K + key, value, gguf.GGUFValueType.UINT32)
        else:
            writer.add_key_value(_K + key, float(value), gguf.GGUFValueType.FLOAT64)


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
        manifest = manifest_from_fields(fields)
    except MetaspiderError as exc:
        raise MetaspiderError(f"sidecar {path}: {exc}") from None
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


def _weights(reader: gguf.GGUFReader, config: WrapperConfig, path: Path) -> dict[str, np.ndarray]:
    expected = config.weight_shapes()
    found = {tensor.name: tensor for tensor in reader.tensors}
    config.check_weights(dict.fromkeys(found), f"sidecar {path}")
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


def export_sidecar(wrapper: str | Path, out: str | Path, weight_type: str = "q8_0", model: str | None = None) -> Path:
    """A wrapper (folder, sidecar, or "default" with `model`) → its sidecar."""
    from metaspider.core.wrapper.handle import Wrapper

    return Wrapper.open(wrapper, model).export(out, weight_type)
