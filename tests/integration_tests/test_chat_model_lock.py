"""The chat model's lock on a real model: interleaved streams in one thread are refused, an abandoned
stream does not block others forever, and the answers stay those of the same request run alone."""

from __future__ import annotations

import threading

import pytest

from metaspider.core.backbones.model_lock import ModelReentryError, StreamAbandonedError
from metaspider.runtime.chat_model import MetaSpiderChatModel
from metaspider.runtime.engine import get_engine

QUESTION = "What is the capital of France?"
OTHER = "Name a primary colour."


@pytest.fixture
def llm():
    model = MetaSpiderChatModel(max_tokens=12, n_threads=1)
    lock = get_engine(model.model, model.backend, model.n_ctx, 1).lock
    saved = lock.idle_limit
    yield model
    lock.idle_limit = saved


def test_interleaved_streams_in_one_thread_are_refused(llm: MetaSpiderChatModel) -> None:
    alone = llm.invoke(QUESTION).text
    first = llm.stream(QUESTION)
    pieces = [next(first).text]
    with pytest.raises(ModelReentryError, match="already holds"):
        llm.invoke(OTHER)
    pieces += [c.text for c in first]
    assert "".join(pieces) == alone


def test_an_abandoned_stream_releases_the_model(llm: MetaSpiderChatModel) -> None:
    expected = llm.invoke(OTHER).text
    get_engine(llm.model, llm.backend, llm.n_ctx, 1).lock.idle_limit = 0.5
    abandoned = llm.stream(QUESTION)
    next(abandoned)  # holds the model, then nobody reads it
    answers: list[str] = []
    worker = threading.Thread(target=lambda: answers.append(llm.invoke(OTHER).text))
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the abandoned stream blocked the model"
    assert answers == [expected]
    with pytest.raises(StreamAbandonedError):
        list(abandoned)
    assert llm.invoke(OTHER).text == expected
