"""Finding and opening a wrapper: a folder, a GGUF sidecar, or "default" (the one shipped for a model)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from metaspider.core.backbones.base import Backbone
from metaspider.core.wrapper.bounds import check_against_base
from metaspider.core.wrapper.runtime import NumpyRuntime, TorchRuntime, WrapperRuntime
from metaspider.errors import MetaspiderError

SHIPPED_WRAPPERS = {"smollm2-135m": "smollm2-135m-doubter"}


def wrapper_folder(spec: str | Path, model: str) -> Path:
    """A wrapper folder or GGUF sidecar path, or "default": the wrapper shipped inside the package for `model`."""
    if str(spec) != "default":
        folder = Path(spec).expanduser()
        if not folder.exists():
            raise MetaspiderError(f"wrapper {folder} does not exist")
        return folder
    name = SHIPPED_WRAPPERS.get(model)
    folder = Path(str(resources.files("metaspider") / "wrappers" / name)) if name else None
    if folder is None or not folder.exists():
        raise MetaspiderError(
            f"no default wrapper is shipped for model {model!r} (shipped: {', '.join(SHIPPED_WRAPPERS)}); "
            "train one with `metaloom` and pass its folder"
        )
    return folder


def load_wrapper(backbone: Backbone, spec: str | Path | None, backend: str) -> WrapperRuntime | None:
    if spec is None:
        return None
    folder = wrapper_folder(spec, _registry_name(backbone))
    if folder.suffix == ".gguf" and backend == "torch":
        raise MetaspiderError(f"{folder} is a GGUF sidecar, which runs on llama_cpp; for torch, use the wrapper folder")
    if folder.suffix != ".gguf":  # a sidecar's arrays are bounded by its file; a folder's manifest sizes them
        from metaspider.core.wrapper.folder import MANIFEST_FILE, load_manifest

        check_against_base(load_manifest(folder).config, backbone.d_model, backbone.n_layers, folder / MANIFEST_FILE)
    runtime = (TorchRuntime if backend == "torch" else NumpyRuntime)(folder, backbone.fingerprint)
    check_against_base(runtime.config, backbone.d_model, backbone.n_layers, folder)
    return runtime


def _registry_name(backbone: Backbone) -> str:
    """A registry model loaded by its file path is still that model: its fingerprint says so."""
    from metaspider.core.models.registry import MODELS

    for entry in MODELS.values():
        if backbone.fingerprint == f"sha256:{entry.source.sha256[:16]}":
            return entry.name
    return backbone.name
