"""CLI usage errors end in one error line and exit code 2, never a traceback (a real process each)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


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


def test_models_verify_command(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "models" / "smollm2-135m.gguf"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"GGUF not the model")
    env = {**os.environ, "METASPIDER_HOME": str(tmp_path), "COLUMNS": "400"}
    code = "from metaspider.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "models", "verify", "smollm2-135m"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "smollm2-135m.gguf is damaged" in output and "Traceback" not in output
