"""Agent specs for tests: the real default model, routes forced by the policy thresholds.

Without a wrapper, u is the pass-1 baseline (1 − max softmax probability of the first answer token),
always strictly between 0 and 1, so `answer_below: 1.0` always answers and `answer_below: 0.0` never
does: each route is taken deterministically whatever the score."""

from __future__ import annotations

from pathlib import Path

import yaml

from metaspider.core.wrapper.handle import SHIPPED_WRAPPERS, wrapper_folder
from metaspider.errors import MetaspiderError

REPO = Path(__file__).resolve().parents[2]
KB_FOLDER = REPO / "agents" / "kb"
QA_SPEC = REPO / "agents" / "qa.yaml"


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
        wrapper_folder("default", next(iter(SHIPPED_WRAPPERS)))
    except MetaspiderError:
        return False
    return True


def qa_spec_copy(folder: Path) -> Path:
    """agents/qa.yaml with its memory in `folder`; on the bare model until the default wrapper ships."""
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
