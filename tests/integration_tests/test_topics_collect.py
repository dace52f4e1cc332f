"""The topic data sets through `metaloom collect` on the real default model: conversations reach the
model with their history, open-ended requests are scored by refusal, and per-topic subjects survive."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from metaspider.loom.backbones import llama_backbone
from metaspider.loom.cli import loom_app
from metaspider.loom.datasets import load_items, to_messages
from metaspider.loom.run_folder import RunFolder
from metaspider.loom.scoring import is_refusal

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("topics-run")
    for dataset in ("open-ended", "conversations", "mixture"):
        args = ["collect", "--model", MODEL, "--dataset", dataset, "--split", "test", "--limit", "6"]
        result = CliRunner().invoke(loom_app, [*args, "--run", str(folder), "--threads", "1"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return RunFolder(folder)


def test_open_ended_requests_are_right_unless_refused(run):
    records = run.load("open-ended", "test").records
    assert len(records) == 6
    for record in records:
        assert record["correct"] == (bool(record["answer"].strip()) and not is_refusal(record["answer"]))


def test_conversations_reach_the_model_with_their_history(run):
    records = {record["id"]: record for record in run.load("conversations", "test").records}
    assert len(records) == 6
    backbone = llama_backbone(MODEL, 1)
    for item in load_items("conversations"):
        if item.id in records:
            alone = len(backbone.chat_ids(to_messages(item)[-1:]))
            assert records[item.id]["n_prompt"] > alone  # the earlier turns were in the prompt
            assert records[item.id]["n_prompt"] == len(backbone.chat_ids(to_messages(item)))


def test_a_mixed_run_keeps_each_items_topic(run):
    records = run.load("mixture", "test").records
    topics = {item.id: item.subject for item in load_items("mixture")}
    assert len(records) == 6
    assert all(record["subject"] == topics[record["id"]] for record in records)
