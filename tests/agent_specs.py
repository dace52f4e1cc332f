"""Agent specs for tests: the real default model, routes forced by the policy thresholds.

Without a wrapper, u is the pass-1 baseline (1 − max softmax probability of the first answer token),
always strictly between 0 and 1, so `answer_below: 1.0` always answers and `answer_below: 0.0` never
does: each route is taken deterministically whatever the score."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from metaspider.core.wrapper.handle import SHIPPED_WRAPPERS, resolve_wrapper_path
from metaspider.errors import MetaspiderError

REPO = Path(__file__).resolve().parents[1]
KB_FOLDER = REPO / "agents" / "kb"
QA_SPEC = REPO / "agents" / "qa-small.yaml"
# The top-level runner on the agent sub-app: exactly how `metaspider agent` reports errors.
AGENT_CLI = "from metaspider.cli import _run; from metaspider.graph.cli import agent_app; _run(agent_app)"
PASSED_ON = ("METASPIDER_HOME", "HF_HUB_OFFLINE", "PIP_NO_INDEX")
"""Environment a CLI subprocess inherits: the unit suite's empty model cache and offline switches."""


def agent_cli(*args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`metaspider agent run ARGS` in a process of its own, as a user runs it."""
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "COLUMNS": "300"}
    env |= {name: os.environ[name] for name in PASSED_ON if name in os.environ}
    return subprocess.run(
        [sys.executable, "-c", AGENT_CLI, "run", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )


def write_spec(folder: Path, name: str = "agent.yaml", **fields) -> Path:
    spec = {
        "model": "smollm2-135m",
        "wrapper": None,
        "system_prompt": "You are a careful assistant. Answer in one short sentence.",
        "max_tokens": 32,
        **fields,
    }
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def default_wrapper_shipped() -> bool:
    try:
        resolve_wrapper_path("default", next(iter(SHIPPED_WRAPPERS)))
    except MetaspiderError:
        return False
    return True


def qa_spec_copy(folder: Path) -> Path:
    """agents/qa-small.yaml (the shipped agent on the small model) with its memory in `folder`."""
    spec = yaml.safe_load(QA_SPEC.read_text(encoding="utf-8"))
    spec["memory"] = str(folder / "qa.sqlite")
    spec["tools"] = [
        {**tool, "folder": str(KB_FOLDER)} if tool["name"] == "knowledge_base" else tool for tool in spec["tools"]
    ]
    if not default_wrapper_shipped():
        spec["wrapper"] = None
    path = folder / "qa.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def agent(tmp_path: Path, extra_tools=None, **fields):
    """The agent graph of a spec written with `fields`, on in-process memory."""
    from langgraph.checkpoint.memory import InMemorySaver

    from metaspider.graph.builder import build_agent
    from metaspider.graph.spec import load_spec

    return build_agent(load_spec(write_spec(tmp_path, **fields)), InMemorySaver(), extra_tools)


def run(graph, question_or_command, thread: str = "t") -> tuple[list[str], list[dict]]:
    """The steps the turn went through, in order (a model step by its route), and their updates."""
    from metaspider.graph.builder import run_config
    from metaspider.graph.state import turn_input

    source = turn_input(question_or_command) if isinstance(question_or_command, str) else question_or_command
    updates = list(graph.stream(source, run_config(thread), stream_mode="updates"))
    return [_step(node, value) for update in updates for node, value in update.items()], updates


def _step(node: str, value) -> str:
    return value["routing"]["route"] if node == "model" else node


def routing(update: dict) -> dict:
    """The routing a model step recorded in the agent state."""
    return update["model"]["routing"]


def metaspider_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """`metaspider ARGS` in a fresh process, with `stdin` piped in."""
    return subprocess.run(
        [sys.executable, "-c", "from metaspider.cli import main; main()", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
