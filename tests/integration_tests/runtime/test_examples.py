"""The examples run as documented, on the real default model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from metaspider.loom.datasets import is_correct, load_items

ROOT = Path(__file__).resolve().parents[3]


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_prompt_model_parser_chain():
    out = run_example("chain.py", "Australia").splitlines()
    australia = next(item for item in load_items("countries") if item.id == "capital:australia")
    assert is_correct(australia, out[0]), out[0]  # any accepted spelling of the capital
    assert out[1].startswith("uncertainty: {'score': 0.")


def test_tool_calling_loop():
    out = run_example("tool_loop.py", "What is 1234 * 5678?").splitlines()
    assert out[0] == "human: What is 1234 * 5678?"
    assert out[1].startswith("ai: [{'name': 'calculator'")
    assert out[2] == "tool: 7006652"
    assert out[3].startswith("ai: ")
