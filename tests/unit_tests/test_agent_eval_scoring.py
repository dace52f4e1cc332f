"""The agent benchmark's grading and aggregation (benchmarks/agent_eval_scoring.py), without a model: outcomes
per kind, net score, tool-call precision and the issue's targets; and the task file's shape."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


scoring = _load("agent_eval_scoring")
tasks_module = _load("agent_eval_tasks")
TaskResult = scoring.TaskResult


@pytest.mark.parametrize(
    ("kind", "text", "accepted", "flags", "expected"),
    [
        ("fact", "The capital of France is Paris.", ("Paris",), {}, "right"),
        ("fact", "I'm not sure, but I think it is Paris.", ("Paris",), {}, "right"),
        ("fact", "The capital of France is Lyon.", ("Paris",), {}, "wrong"),
        ("fact", "I'm not sure, so I won't guess.", ("Paris",), {}, "refused"),
        ("fact", "Paris", ("Paris",), {"refusal_flag": True}, "refused"),
        ("fact", "", ("Paris",), {}, "refused"),
        ("fact", "Paris", ("Paris",), {"escalated": True}, "escalated"),
        ("fact", "Paris", ("Paris",), {"error": True}, "wrong"),
        ("arithmetic", "The result is 1,234,567.", ("1234567",), {}, "right"),
        ("arithmetic", "The result is 12345670.", ("1234567",), {}, "wrong"),
        ("kb", "Orrery Labs is based in Tromso, Norway.", ("Tromsø", "Tromso"), {}, "right"),
        ("kb", "Write to help@orrerylabs.example for help.", ("help@orrerylabs.example",), {}, "right"),
        ("unanswerable", "I don't know.", (), {}, "right"),
        ("unanswerable", "I couldn't find any information about that painter.", (), {}, "right"),
        ("unanswerable", "anything", (), {"refusal_flag": True}, "right"),
        ("unanswerable", "a draft claim", (), {"escalated": True}, "right"),
        ("unanswerable", "She was born in 1874 in Vienna.", (), {}, "wrong"),
        ("fact", 'The query "largest ocean on earth" does not have a matching passage.', ("Pacific",), {}, "refused"),
        ("fact", "The capital of Japan is not mentioned in the given passage.", ("Tokyo",), {}, "refused"),
        ("unanswerable", "", (), {"error": True}, "wrong"),
        ("open_ended", "Soft rain on the roof / ...", (), {}, "right"),
        ("open_ended", "I'm not sure, so I won't guess.", (), {}, "refused"),
        ("open_ended", "", (), {}, "refused"),
        ("open_ended", "a draft", (), {"escalated": True}, "escalated"),
        # a tool call written out as text is neither an answer nor a refusal
        ("open_ended", '{{"name": "riddle", "arguments": {"riddle": "What has keys?"}}}', (), {}, "wrong"),
        ("unanswerable", '{"name": "calculator", "arguments": {"expression": "no passage matches"}}', (), {}, "wrong"),
        ("arithmetic", '{"name": "calculator", "arguments": {"expression": "17 * 23 = 391', ("391",), {}, "wrong"),
        ("open_ended", '{"name": "note", "arguments": {}}', (), {"escalated": True}, "escalated"),
    ],
)
def test_grade(kind, text, accepted, flags, expected):
    assert scoring.grade(kind, text, accepted, **flags) == expected


def _result(outcome: str, kind: str = "fact", calls=(), needed=None, seconds=1.0, error=None) -> TaskResult:
    return TaskResult("t", kind, outcome, "", list(calls), needed, seconds, [], None, error)


def test_summarise_counts_net_precision_and_recall():
    results = [
        _result("right", "arithmetic", ["calculator"], "calculator", 2.0),
        _result("right", "kb", ["calculator", "knowledge_base"], "knowledge_base", 4.0),
        _result("wrong", "kb", [], "knowledge_base"),
        _result("refused", calls=["knowledge_base"]),
        _result("escalated", error=None),
    ]
    summary = scoring.summarise(results)
    assert summary["counts"] == {"right": 2, "wrong": 1, "refused": 1, "escalated": 1}
    assert summary["shares"]["right"] == pytest.approx(0.4)
    assert summary["net"] == pytest.approx((2 - 1) / 5)
    assert summary["tool_calls"] == 4
    assert summary["tool_call_precision"] == pytest.approx(2 / 4)
    assert summary["tool_recall"] == pytest.approx(2 / 3)
    assert summary["seconds_per_task"] == pytest.approx(9.0 / 5)


def test_summarise_without_tool_calls_has_no_precision():
    summary = scoring.summarise([_result("right")])
    assert summary["tool_call_precision"] is None and summary["tool_recall"] is None


def test_summarise_by_kind_keeps_the_kinds_present_in_order():
    results = [_result("right", "kb"), _result("wrong", "fact"), _result("right", "fact")]
    by_kind = scoring.summarise_by_kind(results, ("fact", "arithmetic", "kb"))
    assert list(by_kind) == ["fact", "kb"]
    assert by_kind["fact"]["net"] == pytest.approx(0.0)


def _summary(right: int, wrong: int, n: int = 10, open_refused: float = 0.0):
    overall = {"counts": {"right": right, "wrong": wrong}, "net": (right - wrong) / n}
    return overall, {"open_ended": {"shares": {"refused": open_refused}}}


def test_targets_pass_and_fail():
    plain, plain_kinds = _summary(5, 5)
    msp, msp_kinds = _summary(5, 4)
    wrapper, wrapper_kinds = _summary(5, 3, open_refused=0.1)
    rows = scoring.targets(
        {"plain": plain, "msp": msp, "wrapper": wrapper},
        {"plain": plain_kinds, "msp": msp_kinds, "wrapper": wrapper_kinds},
    )
    verdict = {row["target"]: row["pass"] for row in rows}
    assert verdict["wrapper agent's wrong answers <= 60 % of the plain agent's"] is True  # 3 <= 3.0
    assert verdict["wrapper agent's net >= plain agent's net + 0.10"] is True  # 0.2 >= 0.0 + 0.1
    assert verdict["wrapper agent's net > max-softmax agent's net"] is True  # 0.2 > 0.1
    assert verdict["wrapper agent refuses <= 5 % of open-ended requests"] is False
    assert verdict["plain agent refuses <= 5 % of open-ended requests"] is True


def test_targets_without_a_wrapper_agent_compare_nothing_but_refusals():
    plain, kinds = _summary(5, 5)
    rows = scoring.targets({"plain": plain, "msp": plain}, {"plain": kinds, "msp": kinds})
    assert [row["target"] for row in rows] == [
        "plain agent refuses <= 5 % of open-ended requests",
        "msp agent refuses <= 5 % of open-ended requests",
    ]


def test_tasks_are_150_of_five_kinds_with_unique_ids_and_exact_arithmetic():
    tasks = tasks_module.load_tasks()
    assert len(tasks) == 150
    assert {k: sum(t.kind == k for t in tasks) for k in tasks_module.KINDS} == dict.fromkeys(tasks_module.KINDS, 30)
    assert len({t.id for t in tasks}) == 150
    for task in tasks:
        if task.kind == "arithmetic":
            expression = task.question.removeprefix("What is ").removeprefix("Calculate ").rstrip("?.")
            expression = expression.replace(" times ", " * ").replace(" multiplied by ", " * ")
            assert str(eval(expression, {"__builtins__": {}})) == task.accepted[0], task.question  # noqa: S307
        if task.kind in ("fact", "arithmetic", "kb"):
            assert task.accepted, task.id


def test_a_report_grades_stored_records_again_from_what_they_keep():
    agent_eval = _load("agent_eval")
    task = tasks_module.Task("t", "open_ended", "Tell me a riddle.")
    record = {"agent": "wrapper", "task_id": "t", "kind": "open_ended", "outcome": "right", "routes": ["answer"]}
    call = '{{"name": "riddle", "arguments": {}}}'
    assert agent_eval.regrade({**record, "answer": call, "error": None}, task)["outcome"] == "wrong"
    escalated = {**record, "answer": call, "error": None, "routes": ["answer", "escalate"]}
    assert agent_eval.regrade(escalated, task)["outcome"] == "escalated"
    refused = {**record, "answer": "Sorry.", "error": None, "routes": ["refuse"]}
    assert agent_eval.regrade(refused, task)["outcome"] == "refused"
    failed = {**record, "answer": "A riddle.", "error": "GraphRecursionError: ..."}
    assert agent_eval.regrade(failed, task)["outcome"] == "wrong"
    assert agent_eval.regrade({**record, "answer": "What has keys?", "error": None}, task)["outcome"] == "right"


def test_a_report_lists_the_records_graded_otherwise_than_when_they_ran():
    agent_eval = _load("agent_eval")
    stored = [
        {"agent": "plain", "task_id": "open-00", "kind": "open_ended", "outcome": "right", "routes": [], "u": None,
         "answer": '{"name": "haiku", "arguments": {}}', "tool_calls": [], "needed_tool": None, "seconds": 1.0,
         "error": None},
        {"agent": "plain", "task_id": "open-01", "kind": "open_ended", "outcome": "right", "routes": [], "u": None,
         "answer": "Soft rain on the roof.", "tool_calls": [], "needed_tool": None, "seconds": 1.0, "error": None},
    ]  # fmt: skip
    result = agent_eval.report("m", "cmd", stored, {})
    assert result["regraded"] == [{"agent": "plain", "task_id": "open-00", "stored": "right", "now": "wrong"}]
    assert result["as_stored"]["plain"]["right"] == 2 and result["agents"]["plain"]["overall"]["counts"]["right"] == 1
    assert "open-00 | right | wrong" in agent_eval.markdown(
        {**result, "n_tasks": 2, "subset": "", "policy_note": "", "started": "", "wall_seconds": 0}
    )
