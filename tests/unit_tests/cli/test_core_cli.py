"""The installed `metaspider` command as a user runs it (a subprocess, no stdin), on commands that need no model."""

from __future__ import annotations

import json

from agent_specs import metaspider_cli


def test_models_list_json_names_every_registry_model():
    result = metaspider_cli("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"} <= set(rows)
    assert rows["smollm2-135m"]["architecture"] == "llama"
    assert rows["smollm2-135m"]["size_bytes"] == 98_362_432


def test_unknown_model_is_a_one_line_error_not_a_traceback():
    result = metaspider_cli("models", "pull", "no-such-model")
    assert result.returncode == 1
    assert "unknown model 'no-such-model'" in result.stderr
    assert "smollm2-135m" in result.stderr
    assert "Traceback" not in result.stderr
