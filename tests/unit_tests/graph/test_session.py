"""AgentSession around the agent, on a fake chat model and a fixed u: a turn cancelled while its answer
streams keeps its u and route, and a question asked while an escalation waits closes it as unanswered."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_specs import write_spec

from metaspider.graph.builder import AgentSession
from metaspider.graph.spec import load_spec

from .fakes import use_fakes

SCORE = 0.42


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    return use_fakes(monkeypatch, SCORE)


def test_a_turn_cancelled_mid_answer_keeps_its_score_and_route(tmp_path: Path, calls: list[dict]):
    session = AgentSession(load_spec(write_spec(tmp_path, policy={"answer_below": 1.0})))
    events = session.stream("Tell me a story.")
    for mode, _data in events:
        if mode == "messages":  # the answer has started: the user presses Ctrl-C
            break
    events.close()
    session.cancel("Once upon")
    result = session.result()
    assert result.decision == "cancelled" and result.answer == "Once upon [cancelled]"
    assert result.score == SCORE and result.route == "answer"
    assert [m.type for m in session.history()] == ["human", "ai"]
    assert session.run("And then?").decision == "answered"  # the thread moves on
    session.close()


def test_a_new_question_closes_an_escalation_left_open(tmp_path: Path, calls: list[dict]):
    spec = write_spec(tmp_path, policy={"answer_below": 0.0, "escalate_above": 0.0}, escalation={"kind": "human"})
    session = AgentSession(load_spec(spec))
    assert session.run("What is my dog called?").escalation is not None
    assert session.run("What is my cat called?").escalation is not None
    texts = [(m.type, m.text) for m in session.history()]
    assert texts == [
        ("human", "What is my dog called?"),
        ("ai", "No one answered this question."),
        ("human", "What is my cat called?"),
    ]
    session.close()
