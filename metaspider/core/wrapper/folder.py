"""The wrapper file: a folder NAME/ holding `weights.safetensors` (float32) and `manifest.json`.

Everything except `load_torch_wrapper` works without torch, so the deploy path can read wrapper files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import safetensors.numpy
from pydantic import Field

from metaspider.core.files import atomic_path, write_text_atomically
from metaspider.core.schema import Schema
from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.modifiers import Modifier
from metaspider.errors import MetaspiderError

if TYPE_CHECKING:
    from metaspider.core.wrapper.torch_module import MetaWrapper

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"


class CalibratedThreshold(Schema):
    """Answer when u < threshold: selective risk <= max_risk holds with probability >= 1 - delta."""

    _title = "calibrated threshold"

    max_risk: float
    delta: float
    threshold: float


class WrapperManifest(Schema):
    """Everything about a wrapper except its tensors: the base model it was trained for (its fingerprint is
    checked on load), its config, the modifier and gain it runs with, its thresholds and its provenance.

    The file nests some fields (`base`, `modifier.gain`, `thresholds`): `to_dict`/`from_dict` map that layout,
    and the sidecar stores the same fields as GGUF metadata (`sidecar_fields`)."""

    _title = "wrapper manifest"

    base_fingerprint: str
    base_model: str
    config: WrapperConfig
    modifier: Modifier = Field(default_factory=Modifier)
    gain: float = 1.0
    answer_below: float = 0.5
    calibrated: tuple[CalibratedThreshold, ...] = ()
    training_data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The manifest.json layout."""
        return {
            "format_version": self.format_version,
            "base": {"fingerprint": self.base_fingerprint, "model": self.base_model},
            "config": self.config.to_dict(),
            "modifier": {**self.modifier.to_dict(), "gain": self.gain},
            "thresholds": {
                "answer_below": self.answer_below,
                "calibrated": [c.model_dump() for c in self.calibrated],
            },
            "training_data": self.training_data,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WrapperManifest:
        """Raises KeyError on a missing section, MetaspiderError on a bad field; `load_manifest` names the file."""
        version = data["format_version"]
        if version not in SUPPORTED_FORMAT_VERSIONS:
            raise MetaspiderError(
                f"wrapper format_version {version!r} is not supported; this metaspider reads "
                f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))} (a newer wrapper needs a newer metaspider)"
            )
        modifier = dict(data["modifier"])
        gain = modifier.pop("gain")
        thresholds = data["thresholds"]
        return cls.parse(
            {
                "base_fingerprint": data["base"]["fingerprint"],
                "base_model": data["base"]["model"],
                "config": WrapperConfig.from_dict(data["config"]),
                "modifier": Modifier.from_dict(modifier),
                "gain": gain,
                "answer_below": thresholds["answer_below"],
                "calibrated": thresholds["calibrated"],
                "training_data": data["training_data"],
                "metrics": data["metrics"],
                "format_version": version,
            }
        )


def save_wrapper(folder: str | Path, state: dict[str, Any], manifest: WrapperManifest) -> Path:
    """Write the folder (created if needed). `state` values: NumPy arrays or torch tensors."""
    folder = Path(folder)
    arrays = {name: _as_float32(value) for name, value in state.items()}
    manifest.config.check_weights(arrays, f"cannot save wrapper to {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        safetensors.numpy.save_file(arrays, str(tmp))
    write_text_atomically(folder / MANIFEST_FILE, json.dumps(manifest.to_dict(), indent=2, allow_nan=False) + "\n")
    return folder


def load_manifest(folder: str | Path) -> WrapperManifest:
    """Read and validate a wrapper folder's manifest.json; every problem is a MetaspiderError naming the file."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise MetaspiderError(f"wrapper manifest not found: {path} (is {folder} a wrapper folder?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetaspiderError(f"wrapper manifest {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MetaspiderError(f"wrapper manifest {path} must hold a JSON object")
    try:
        return WrapperManifest.from_dict(data)
    except MetaspiderError as exc:
        raise MetaspiderError(f"{path}: {exc}") from exc
    except KeyError as exc:
        raise MetaspiderError(f"wrapper manifest {path} lacks the field {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise MetaspiderError(f"wrapper manifest {path} is malformed: {exc}") from exc


def load_weights_numpy(folder: str | Path) -> dict[str, np.ndarray]:
    """Read a wrapper folder's float32 weights without torch; a damaged or non-float32 file is refused by name."""
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise MetaspiderError(f"wrapper weights not found: {path}")
    try:
        weights = safetensors.numpy.load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated or garbled headers
        raise MetaspiderError(f"wrapper weights {path} are unreadable (truncated or corrupted?): {exc}") from exc
    not_float32 = sorted(name for name, a in weights.items() if a.dtype != np.float32)
    if not_float32:
        raise MetaspiderError(f"wrapper weights {path} must be float32; these are not: {not_float32[:5]}")
    return weights


def check_fingerprint(manifest: WrapperManifest, actual: str, where: str | Path) -> None:
    """Refuse a wrapper trained for another base model: its signal would be meaningless there."""
    if manifest.base_fingerprint != actual:
        raise MetaspiderError(
            f"{where} was trained for base model {manifest.base_model!r} with fingerprint "
            f"{manifest.base_fingerprint}, but the loaded base model has fingerprint {actual}; "
            "use a wrapper trained for this model"
        )


def load_torch_wrapper(
    folder: str | Path, expected_fingerprint: str | None = None
) -> tuple[MetaWrapper, WrapperManifest]:
    """The trainable torch module, in eval mode, with the manifest. Checks the fingerprint when given."""
    from metaspider.core.wrapper.handle import Wrapper

    wrapper = Wrapper.open(folder)
    if expected_fingerprint is not None:
        wrapper.check_fingerprint(expected_fingerprint)
    return wrapper.torch_module(), wrapper.manifest


def _as_float32(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, handled without importing torch
        value = value.detach().cpu().float().numpy()
    return np.ascontiguousarray(value, dtype=np.float32)
