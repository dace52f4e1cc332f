"""An unreadable agent spec is one clear error naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaspider.errors import MetaspiderError
from metaspider.graph.spec import load_spec


def test_a_binary_spec_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MetaspiderError, match=r"agent\.yaml: an agent spec must be UTF-8"):
        load_spec(path)
