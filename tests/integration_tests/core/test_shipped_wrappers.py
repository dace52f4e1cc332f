"""The wrappers shipped in the package, on their real models through the LangChain chat model: each loads
as `default`, answers an easy question rightly, and reports u (and, for a wrapper with a support model and a
post-answer head, its support and u after the answer)."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from metaspider import MetaSpiderChatModel
from metaspider.core.wrapper.handle import SHIPPED_WRAPPERS, Wrapper
from metaspider.loom.scoring import is_correct_open

QUESTION = "What is the capital of France?\nAnswer in a few words."


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(SHIPPED_WRAPPERS))
def test_shipped_wrapper_answers_and_reports_its_uncertainty(model):
    manifest = Wrapper.open("default", model=model).manifest
    llm = MetaSpiderChatModel(model=model, wrapper="default", n_threads=1, max_tokens=24)
    assessed = llm.assess([HumanMessage(QUESTION)])
    reply = llm.invoke([HumanMessage(QUESTION)])
    uncertainty = reply.response_metadata["uncertainty"]
    assert 0.0 <= uncertainty["score"] <= 1.0
    if uncertainty["decision"] == "answer":
        assert is_correct_open(reply.text, ["Paris"]), reply.text
    if manifest.config.support:
        assert 0.0 <= uncertainty["support"] <= 1.0
        if manifest.config.post_layers and uncertainty["decision"] == "answer":
            assert 0.0 <= uncertainty["score_post"] <= 1.0
    # assess() is the pass 1 the answer runs: the same u, up to llama.cpp's rounding between a prompt read
    # in one batch and one continued from the cache.
    assert abs(assessed.score - uncertainty["score"]) < 1e-3
