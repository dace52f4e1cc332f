"""A corrupt GGUF gives one `MetaspiderError` naming the file on both backbones, never a library traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaspider.core.backbones import load_backbone
from metaspider.core.models.registry import models_dir
from metaspider.errors import MetaspiderError


def _corruptions(tmp_path: Path) -> dict[str, Path]:
    real = (models_dir() / "smollm2-135m.gguf").read_bytes()[:200_000]
    files = {
        "empty": b"",
        "text": b"hello, not a model\n" * 100,
        "magic_only": b"GGUF\x03\x00\x00\x00" + b"\xff" * 64,
        "truncated": real,
    }
    out = {}
    for name, data in files.items():
        path = tmp_path / f"{name}.gguf"
        path.write_bytes(data)
        out[name] = path
    return out


@pytest.mark.parametrize("backend", ["llama_cpp", "torch"])
def test_corrupt_gguf_is_one_clear_error(tmp_path: Path, backend: str) -> None:
    for name, path in _corruptions(tmp_path).items():
        with pytest.raises(MetaspiderError) as caught:
            load_backbone(str(path), backend, 512, 1)
        assert str(path) in str(caught.value), name
