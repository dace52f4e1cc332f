"""CLI usage errors and unreadable spec files end in one error line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metaspider.errors import MetaspiderError
from metaspider.graph.spec import load_spec


@pytest.mark.parametrize(
    ("args", "named"),
    [(["models", "pull"], "name"), (["models", "list", "--colour"], "--colour")],
)
def test_usage_errors_have_no_traceback(args: list[str], named: str) -> None:
    env = {**os.environ, "COLUMNS": "300"}
    code = "from metaspider.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "Error" in line]
    assert len(errors) == 1 and named in errors[0]


def test_a_binary_spec_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MetaspiderError, match=r"agent\.yaml: an agent spec must be UTF-8"):
        load_spec(path)
