"""A spec's `tools:` names any LangChain tool by import path; a wrong path is an error naming the field and line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from metaspider.errors import MetaspiderError
from metaspider.graph.nodes import agent_tools
from metaspider.graph.spec import load_spec
from metaspider.tools import build_tools
from metaspider.tools.specs import CalculatorSpec, ImportToolSpec

MODULE = '''
from langchain_core.tools import tool


@tool
def vault_code(vault: str) -> str:
    """The secret code of a vault."""
    return "7391"


def not_a_tool(vault: str) -> str:
    return "7391"
'''

SPEC = """\
model: smollm2-135m
policy:
  answer_below: 0.5
tools:
  - name: calculator
  - import: {path}
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tools.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "userpkg.tools"
    for name in ("userpkg.tools", "userpkg"):
        sys.modules.pop(name, None)


def load(tmp_path: Path, path: str):
    spec_file = tmp_path / "agent.yaml"
    spec_file.write_text(SPEC.format(path=path), encoding="utf-8")
    return load_spec(spec_file)


def test_a_tool_by_import_path_is_built_with_the_built_ins(tmp_path: Path, user_module: str):
    spec = load(tmp_path, f"{user_module}:vault_code")
    calculator, imported = spec.tools
    assert isinstance(calculator, CalculatorSpec) and isinstance(imported, ImportToolSpec)
    assert imported.name == "vault_code"
    tools = build_tools(spec.tools)
    assert [t.name for t in tools] == ["calculator", "vault_code"]
    assert tools[1].invoke({"vault": "Aurora"}) == "7391"
    assert agent_tools(spec.tools, tools)[1].applies("anything at all")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nosuchpackage.tools:search", "cannot import nosuchpackage.tools: ModuleNotFoundError"),
        ("userpkg.tools:missing", "userpkg.tools has no attribute 'missing'"),
        ("userpkg.tools:not_a_tool", "userpkg.tools:not_a_tool is a function, not a LangChain tool"),
        ("userpkg.tools.vault_code", "expected 'package.module:object'"),
    ],
)
def test_a_wrong_import_names_the_field_and_line(tmp_path: Path, user_module: str, path: str, message: str):
    with pytest.raises(MetaspiderError) as error:
        load(tmp_path, path)
    assert f"agent.yaml:6: tools[1].import: {message}" in str(error.value)


def test_an_entry_with_neither_name_nor_import_is_named(tmp_path: Path):
    spec_file = tmp_path / "agent.yaml"
    spec_file.write_text(SPEC.format(path="x").replace("- import: x", "- folder: kb"), encoding="utf-8")
    with pytest.raises(MetaspiderError, match=r"agent\.yaml:6: tools\[1\]"):
        load_spec(spec_file)
