"""`metaspider agent run SPEC` on a spec that cannot be used: a one-line error naming the line, no model loaded."""

import re
from pathlib import Path

import pytest
from agent_specs import agent_cli


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: smollm2-135m\npolicy: {answer_below: 0.3\n", r"agent\.yaml:\d+: invalid YAML"),
        ("model: smollm2-135m\npolicy:\n  answer_below: 0.3\ncolour: blue\n", r"agent\.yaml:4: colour: Extra inputs"),
        (
            "# agent\nmodel: no-such-model\npolicy:\n  answer_below: 0.3\n",
            r"agent\.yaml:2: model: unknown model 'no-such-model'",
        ),
        ("policy:\n  answer_below: 0.3\n", r"agent\.yaml:1: model: Field required"),
    ],
    ids=["malformed-yaml", "unknown-field", "unknown-model", "missing-model"],
)
def test_bad_spec_exits_non_zero_with_a_message_and_no_traceback(tmp_path: Path, text: str, expected: str):
    spec = tmp_path / "agent.yaml"
    spec.write_text(text, encoding="utf-8")
    done = agent_cli(str(spec), "--question", "hi", "--json", timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert re.search(expected, " ".join(done.stderr.split())), done.stderr
