"""The REPL driven through a real pseudo-terminal: a question, the bar and the decision, /gain, /why,
Ctrl-C during an answer, Ctrl-D to leave, and the conversation found again by the next run."""

import os
import sys
from pathlib import Path

import pexpect
import pytest
from agent_specs import AGENT_CLI, REPO, write_spec

PROMPT = "you> "


def spawn_repl(spec: Path) -> pexpect.spawn:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "dumb", "COLUMNS": "200"}
    return pexpect.spawn(
        sys.executable, ["-c", AGENT_CLI, "run", str(spec)], cwd=str(REPO), env=env, encoding="utf-8", timeout=180
    )


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    # 600 tokens: the story must still be streaming when Ctrl-C arrives, even on a loaded machine
    return write_spec(tmp_path, policy={"answer_below": 1.0}, memory=str(tmp_path / "memory.sqlite"), max_tokens=600)


def test_repl_session(spec: Path):
    repl = spawn_repl(spec)
    repl.expect_exact(PROMPT)

    repl.sendline("What is the capital of France?")
    repl.expect_exact("agent> ")
    repl.expect(r"u \[[█░]{24}\] 0\.\d\d\s+answered")
    repl.expect_exact(PROMPT)

    repl.sendline("/gain 0.5")
    repl.expect_exact("gain 0.5")
    repl.expect_exact(PROMPT)

    repl.sendline("/why")
    repl.expect(r"decision\s+answered \(route answer\)")
    repl.expect(r"u\s+0\.\d{3}")
    repl.expect(r"why\s+u=0\.\d\d is below answer_below=1\.00")
    repl.expect(r"knobs\s+modifier None, gain 0\.5")
    repl.expect_exact(PROMPT)

    repl.sendline("Tell me a very long story about a dragon who learns to sing.")
    repl.expect_exact("agent> ")
    repl.expect(r"\w+ \w+")  # the answer is streaming
    repl.sendintr()
    repl.expect_exact("(cancelled)")
    repl.expect(r"u \[.*\] 0\.\d\d\s+cancelled")
    repl.expect_exact(PROMPT)

    repl.sendeof()
    repl.expect(pexpect.EOF)
    repl.close()
    assert repl.exitstatus == 0

    again = spawn_repl(spec)
    again.expect_exact("continuing a conversation of 2 turn(s)")
    again.expect_exact(PROMPT)
    again.sendline("/exit")
    again.expect(pexpect.EOF)
    again.close()
    assert again.exitstatus == 0


def test_escalation_prompts_the_human_inline(tmp_path: Path):
    spec = write_spec(
        tmp_path, policy={"answer_below": 0.0, "escalate_above": 0.0}, escalation={"kind": "human"}, max_tokens=16
    )
    repl = spawn_repl(spec)
    repl.expect_exact(PROMPT)
    repl.sendline("What is my neighbour's cat called?")
    repl.expect(r"escalated to you \(uncertainty 0\.\d\d\): What is my neighbour's cat called\?")
    repl.expect_exact("model's draft: ")
    repl.expect_exact("human> ")
    repl.sendline("Her name is Miso.")
    repl.expect_exact("Her name is Miso.")
    repl.expect(r"u \[.*\] 0\.\d\d\s+escalated")
    repl.expect_exact(PROMPT)
    repl.sendline("/exit")
    repl.expect(pexpect.EOF)
    repl.close()
    assert repl.exitstatus == 0
