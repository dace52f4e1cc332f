"""`Wrapper`: one trained wrapper as one object, whichever file holds it.

A wrapper lives in a folder (`manifest.json` + `weights.safetensors`, what training writes) or in a GGUF
sidecar (what deployment ships); "default" names the wrapper shipped inside the package for a model.
`Wrapper.open` reads any of them, and the handle then gives the manifest, a runtime for a loaded backbone
(Torch or NumPy by the backbone's kind, the base-model fingerprint checked), and writes either format.
Opening never imports torch, so the deploy path stays torch-free."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metaspider.core.names import BACKENDS
from metaspider.core.wrapper.bounds import check_against_base
from metaspider.core.wrapper.folder import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    WrapperManifest,
    load_manifest,
    load_weights_numpy,
    save_wrapper,
)
from metaspider.errors import MetaspiderError

if TYPE_CHECKING:
    from metaspider.core.backbones.base import Backbone
    from metaspider.core.wrapper.runtime import WrapperRuntime
    from metaspider.core.wrapper.torch_module import MetaWrapper

SHIPPED_WRAPPERS = {"smollm2-135m": "smollm2-135m-doubter", "qwen2.5-coder-1.5b": "qwen2.5-coder-1.5b-doubter"}
"""Registry model name → the wrapper folder shipped in `metaspider/wrappers/` for it ("default")."""

DEFAULT = "default"


def resolve_wrapper_path(spec: str | Path, model: str | None) -> Path:
    """The path `spec` names: a wrapper folder or a GGUF sidecar as given, or for "default" the folder shipped
    inside the package for `model` (a registry name). Errors say what exists and what to pass instead."""
    if str(spec) != DEFAULT:
        path = Path(spec).expanduser()
        if not path.exists():
            raise MetaspiderError(
                f"wrapper {path} does not exist (pass a wrapper folder, a .gguf sidecar or 'default')"
            )
        return path
    if not model:
        raise MetaspiderError(
            "wrapper 'default' needs a model (--model): the shipped wrapper depends on the base model"
        )
    name = SHIPPED_WRAPPERS.get(model)
    folder = Path(str(resources.files("metaspider") / "wrappers" / name)) if name else None
    if folder is None or not folder.exists():
        raise MetaspiderError(
            f"no default wrapper is shipped for model {model!r} (shipped: {', '.join(SHIPPED_WRAPPERS)}); "
            "train one with `metaloom` and pass its folder"
        )
    return folder


class Wrapper:
    """A trained wrapper: its manifest (config, modifier, thresholds, provenance) and float32 weights by
    state-dict name, read from a folder or a sidecar. Every command and API that takes a wrapper goes through
    this handle, so a folder, a sidecar and "default" work everywhere alike. A folder's weights are read on
    first use: reading a manifest (thresholds, provenance) stays cheap."""

    def __init__(
        self, manifest: WrapperManifest, weights: dict[str, np.ndarray] | None, name: str, source: Path | None = None
    ) -> None:
        if weights is None and source is None:
            raise ValueError("a Wrapper needs its weights or the folder to read them from")
        self.manifest = manifest
        self._weights = weights
        self.name = name
        self.source = source

    def __repr__(self) -> str:
        return f"Wrapper({self.name!r}, source={str(self.source) if self.source else None!r})"

    @property
    def weights(self) -> dict[str, np.ndarray]:
        """Float32 tensors by state-dict name (read from the folder on first use)."""
        if self._weights is None:
            assert self.source is not None
            self._weights = load_weights_numpy(self.source)
        return self._weights

    @classmethod
    def open(cls, spec: str | Path, model: str | None = None) -> Wrapper:
        """Read a wrapper folder, a `.gguf` sidecar, or "default" (the wrapper shipped for `model`)."""
        path = resolve_wrapper_path(spec, model)
        if path.suffix == ".gguf":
            from metaspider.core.wrapper.sidecar import read_sidecar

            sidecar = read_sidecar(path)
            return cls(sidecar.manifest, sidecar.weights, sidecar.name, path)
        return cls(load_manifest(path), None, path.name, path)

    @property
    def is_sidecar(self) -> bool:
        """True when read from a GGUF sidecar (its matrices may be Q8_0-rounded)."""
        return self.source is not None and self.source.suffix == ".gguf"

    def check_fingerprint(self, fingerprint: str) -> None:
        """Refuse a wrapper trained for another base model: its signal would be meaningless there."""
        from metaspider.core.wrapper.folder import check_fingerprint

        check_fingerprint(self.manifest, fingerprint, self.source or self.name)

    def runtime(self, backbone: Backbone, backend: str | None = None) -> WrapperRuntime:
        """The wrapper at inference time for `backbone`: Torch on a Torch backbone, NumPy on llama.cpp (no torch
        import). `backend` overrides the backbone's own kind. Refused when the fingerprints differ."""
        from metaspider.core.wrapper.runtime import NumpyRuntime, TorchRuntime

        kind = backend or getattr(backbone, "backend", "llama_cpp")
        if kind not in BACKENDS:
            raise MetaspiderError(f"unknown backend {kind!r}: use one of {', '.join(BACKENDS)}")
        self.check_fingerprint(backbone.fingerprint)
        where = self.source / MANIFEST_FILE if self.source and not self.is_sidecar else self.source or self.name
        check_against_base(self.manifest.config, backbone.d_model, backbone.n_layers, where)
        if kind == "torch":
            return TorchRuntime.from_parts(self.manifest, self.torch_module())
        return NumpyRuntime.from_parts(self.manifest, self.weights)

    def torch_module(self) -> MetaWrapper:
        """The trainable Torch module (eval mode) holding these weights."""
        import torch

        from metaspider.core.wrapper.torch_module import MetaWrapper

        module = MetaWrapper(self.manifest.config)
        try:
            module.load_state_dict({name: torch.from_numpy(a.copy()) for name, a in self.weights.items()}, strict=True)
        except RuntimeError as exc:
            where = self.source / WEIGHTS_FILE if self.source and not self.is_sidecar else self.source or self.name
            raise MetaspiderError(f"wrapper weights of {where} do not match its manifest: {exc}") from exc
        return module.eval()

    def save(self, folder: str | Path) -> Path:
        """Write the wrapper folder format (created if needed, files replaced atomically)."""
        return save_wrapper(folder, self.weights, self.manifest)

    def export(self, path: str | Path, weight_type: str = "q8_0") -> Path:
        """Write the GGUF sidecar that runs on stock llama.cpp without torch (`weight_type`: q8_0 or f32)."""
        from metaspider.core.wrapper.sidecar import write_sidecar

        return write_sidecar(path, self.manifest, self.weights, self.name, weight_type)

    def with_manifest(self, **changes: Any) -> Wrapper:
        """The same weights under a manifest with `changes` applied (e.g. calibrated thresholds)."""
        return Wrapper(self.manifest.replace(**changes), self.weights, self.name, self.source)


def load_wrapper(
    backbone: Backbone, spec: str | Path | Wrapper | None, backend: str | None = None
) -> WrapperRuntime | None:
    """The runtime of wrapper `spec` (folder, sidecar, "default" or an open `Wrapper`) on `backbone`, or None for
    no wrapper. "default" picks the wrapper shipped for the backbone's model; a sidecar runs only on llama_cpp."""
    if spec is None:
        return None
    wrapper = spec if isinstance(spec, Wrapper) else Wrapper.open(spec, _registry_name(backbone))
    kind = backend or getattr(backbone, "backend", "llama_cpp")
    if wrapper.is_sidecar and kind == "torch":
        raise MetaspiderError(
            f"{wrapper.source} is a GGUF sidecar, which runs on llama_cpp; for torch, use the wrapper folder"
        )
    return wrapper.runtime(backbone, kind)


def _registry_name(backbone: Backbone) -> str:
    """A registry model loaded by its file path is still that model: its fingerprint says so."""
    from metaspider.core.models.registry import MODELS

    for entry in MODELS.values():
        if backbone.fingerprint == f"sha256:{entry.source.sha256[:16]}":
            return entry.name
    return backbone.name
