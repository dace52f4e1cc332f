"""The installed `metaspider` command, run as a user would: a subprocess, no stdin."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _metaspider(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from metaspider.cli import main; main()", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_models_list_json_names_every_registry_model():
    result = _metaspider("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"} <= set(rows)
    assert rows["smollm2-135m"]["architecture"] == "llama"
    assert rows["smollm2-135m"]["size_bytes"] == 98_362_432


def test_unknown_model_is_a_one_line_error_not_a_traceback():
    result = _metaspider("models", "pull", "no-such-model")
    assert result.returncode == 1
    assert "unknown model 'no-such-model'" in result.stderr
    assert "smollm2-135m" in result.stderr
    assert "Traceback" not in result.stderr


def test_chat_answers_a_piped_question_and_exits_at_end_of_input():
    result = _metaspider("chat", "--max-tokens", "8", stdin="What is the capital of France?\n")
    assert result.returncode == 0, result.stderr
    assert "model>" in result.stdout
    answer = result.stdout.split("model>", 1)[1].split("you>", 1)[0].strip()
    assert answer


@pytest.mark.slow
def test_doctor_reports_parity_on_the_default_model():
    result = _metaspider("doctor", "--model", "smollm2-135m", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tokens_equal"] is True
    assert report["activation_cosine_min"] >= 0.99
    assert report["next_token_agreement_clear"] >= 0.9
    assert report["injection_cosine_min"] >= 0.99
