import re
from pathlib import Path

import pytest

from metaspider.errors import MetaspiderError
from metaspider.graph.spec import AgentSpec, HumanEscalation, ModelEscalation, Policy, load_spec
from metaspider.tools import build_tools
from metaspider.tools.specs import CalculatorSpec, KnowledgeBaseSpec

VALID_SPEC = """\
# a comment, so lines are not trivially counted from the top
model: smollm2-135m
modifier: doubter
policy:
  answer_below: 0.3
  tool_below: 0.6
  escalate_above: 0.9
tools:
  - name: calculator
  - name: knowledge_base
    folder: kb
escalation:
  kind: human
memory: state/threads.sqlite
"""


def write_spec(folder: Path, text: str) -> Path:
    (folder / "kb").mkdir(exist_ok=True)
    (folder / "kb" / "facts.md").write_text("The sky is green on Tuesdays.\n", encoding="utf-8")
    path = folder / "agent.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(MetaspiderError) as error:
        load_spec(write_spec(tmp_path, text))
    return str(error.value)


def test_valid_spec_loads_with_defaults_and_paths_relative_to_the_spec(tmp_path: Path):
    spec = load_spec(write_spec(tmp_path, VALID_SPEC))
    assert spec.model == "smollm2-135m"
    assert (spec.backend, spec.wrapper, spec.gain, spec.max_steps) == ("llama_cpp", "default", 1.0, 6)
    assert spec.policy == Policy(answer_below=0.3, tool_below=0.6, escalate_above=0.9)
    assert spec.tools == [
        CalculatorSpec(name="calculator"),
        KnowledgeBaseSpec(name="knowledge_base", folder=tmp_path / "kb"),
    ]
    assert spec.escalation == HumanEscalation(kind="human")
    assert spec.memory == tmp_path / "state" / "threads.sqlite"
    assert [tool.name for tool in build_tools(spec.tools)] == ["calculator", "knowledge_base"]


def test_max_risk_policy_and_model_escalation(tmp_path: Path):
    text = VALID_SPEC.replace("answer_below: 0.3", "max_risk: 0.1\n  delta: 0.05").replace(
        "kind: human", "kind: model\n  model: qwen2.5-coder-1.5b"
    )
    spec = load_spec(write_spec(tmp_path, text))
    assert (spec.policy.answer_below, spec.policy.max_risk, spec.policy.delta) == (None, 0.1, 0.05)
    assert spec.escalation == ModelEscalation(kind="model", model="qwen2.5-coder-1.5b")


def test_malformed_yaml_names_the_line(tmp_path: Path):
    message = load_error(tmp_path, VALID_SPEC.replace("modifier: doubter", "modifier: [doubter"))
    assert message.startswith(f"{tmp_path / 'agent.yaml'}:4: invalid YAML:")
    assert "started at line 3" in message


def test_unknown_field_names_field_and_line(tmp_path: Path):
    message = load_error(tmp_path, VALID_SPEC.replace("  tool_below: 0.6", "  tool_bellow: 0.6"))
    assert message == f"{tmp_path / 'agent.yaml'}:6: policy.tool_bellow: Extra inputs are not permitted"


def test_unknown_field_inside_a_tool(tmp_path: Path):
    message = load_error(tmp_path, VALID_SPEC.replace("folder: kb", "folder: kb\n    colour: red"))
    assert message.endswith(":12: tools[1].colour: Extra inputs are not permitted")


def test_missing_model_is_reported_at_the_enclosing_mapping(tmp_path: Path):
    message = load_error(tmp_path, VALID_SPEC.replace("model: smollm2-135m\n", ""))
    assert message.endswith("agent.yaml:2: model: Field required")


def test_wrong_type_names_the_nested_field(tmp_path: Path):
    message = load_error(tmp_path, VALID_SPEC.replace("answer_below: 0.3", "answer_below: low"))
    assert ":5: policy.answer_below: Input should be a valid number" in message


def test_bad_threshold_order(tmp_path: Path):
    message = load_error(tmp_path, VALID_SPEC.replace("tool_below: 0.6", "tool_below: 0.2"))
    assert message.endswith(":4: policy: answer_below (0.3) must not be above tool_below (0.2)")


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"tool_below": 0.5}, "give exactly one of answer_below"),
        ({"answer_below": 0.2, "max_risk": 0.1}, "give exactly one of answer_below"),
        ({"answer_below": 0.2, "delta": 0.05}, "delta only applies together with max_risk"),
        ({"answer_below": 1.5}, "less than or equal to 1"),
        (
            {"answer_below": 0.5, "escalate_above": 0.4},
            "answer_below (0.5) must not be above escalate_above (0.4)",
        ),
    ],
)
def test_policy_validation(policy: dict, message: str):
    with pytest.raises(ValueError, match=re.escape(message)):
        AgentSpec.model_validate({"model": "m", "policy": policy})


def test_bad_tool_name_and_missing_folder(tmp_path: Path):
    assert "agent.yaml:9: tools[0]: Input tag 'abacus'" in load_error(
        tmp_path, VALID_SPEC.replace("- name: calculator", "- name: abacus")
    )
    assert "agent.yaml:11: tools[1].folder: folder not found" in load_error(
        tmp_path, VALID_SPEC.replace("folder: kb", "folder: missing")
    )


def test_escalation_model_needs_a_model(tmp_path: Path):
    message = load_error(tmp_path, VALID_SPEC.replace("kind: human", "kind: model"))
    assert message.endswith(":12: escalation.model: Field required")


def test_duplicate_tools(tmp_path: Path):
    message = load_error(tmp_path, VALID_SPEC.replace("tools:\n", "tools:\n  - name: calculator\n"))
    assert message.endswith(":8: tools: tool listed twice: calculator")


def test_every_error_is_reported(tmp_path: Path):
    text = VALID_SPEC.replace("model: smollm2-135m", "model: m\ngain: loud\nmax_steps: 0")
    message = load_error(tmp_path, text)
    assert len(message.splitlines()) == 2
    assert "gain: Input should be a valid number" in message
    assert "max_steps: Input should be greater than or equal to 1" in message


@pytest.mark.parametrize("text", ["", "- a list\n", "just text\n"])
def test_spec_must_be_a_mapping(tmp_path: Path, text: str):
    assert "must be a YAML mapping" in load_error(tmp_path, text)


def test_missing_file(tmp_path: Path):
    with pytest.raises(MetaspiderError, match="cannot read agent spec"):
        load_spec(tmp_path / "nope.yaml")
