"""The fault-injection suite (benchmarks/faults.py) as tests: smaller sizes, the same checks. The figures
in benchmarks/results/faults.md come from the full script."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "faults.py"
_spec = importlib.util.spec_from_file_location("faults", _PATH)
assert _spec is not None and _spec.loader is not None
faults = importlib.util.module_from_spec(_spec)
sys.modules["faults"] = faults  # dataclasses look their module up there
_spec.loader.exec_module(faults)

pytestmark = pytest.mark.slow


def test_bad_inputs_give_one_clear_error() -> None:
    result = faults.bad_inputs()
    failed = [c for c in result["cases"] if not c["ok"]]
    assert not failed, "\n".join(f"{c['surface']} / {c['name']}: {c['error_line']}" for c in failed)
    assert len(result["surfaces"]) == 8


def test_an_agent_killed_mid_turn_loses_nothing() -> None:
    result = faults.kill_agent()
    assert result["killed_mid_turn"], "the turn finished before the kill: raise FAULTS_KILL_AFTER"
    assert result["earlier_turns_kept"] and result["history_after_resume_starts_with_earlier_turns"]
    assert result["resume_exit_code"] == 0 and result["resumed_turn_answered"]


def test_a_collect_killed_mid_run_resumes_exactly() -> None:
    result = faults.kill_collect(limit=48)
    assert result["killed_mid_run"] and result["resume_exit_code"] == 0
    assert result["missing"] == 0 and result["duplicates"] == 0


def test_load_no_deadlock_no_cross_talk() -> None:
    result = faults.load(threads=16, per_thread=3)
    assert result["hung_threads"] == 0
    assert result["finished_answers_differing_from_alone"] == 0
    assert result["outcomes"]["other_error"] == 0, result["errors"]
    assert result["outcomes"]["finished"] > 0
