"""The installed `metaspider` command, run as a user would: a subprocess, no stdin."""

from __future__ import annotations

import json

import pytest
from agent_specs import metaspider_cli


def test_chat_answers_a_piped_question_and_exits_at_end_of_input():
    result = metaspider_cli("chat", "--max-tokens", "8", stdin="What is the capital of France?\n")
    assert result.returncode == 0, result.stderr
    assert "model>" in result.stdout
    answer = result.stdout.split("model>", 1)[1].split("you>", 1)[0].strip()
    assert answer


@pytest.mark.slow
def test_doctor_reports_parity_on_the_default_model():
    result = metaspider_cli("doctor", "--model", "smollm2-135m", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tokens_equal"] is True
    assert report["activation_cosine_min"] >= 0.99
    assert report["next_token_agreement_clear"] >= 0.9
    assert report["injection_cosine_min"] >= 0.99
