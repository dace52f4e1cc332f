"""The hybrid head before the answer on synthetic data: out-of-topic logits and the stacking regression."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from metaspider.errors import MetaspiderError
from metaspider.loom import hybrid
from metaspider.loom.stage_a import StageASettings


def test_topics_are_dealt_round_robin_after_sorting():
    assert hybrid.topic_groups(["b", "a", "c", "a", "d", "e"], folds=2) == [["a", "c", "e"], ["b", "d"]]
    assert hybrid.topic_groups(["x"], folds=4) == [["x"]]


def _topic_data(rng, topics, n, d=8):
    """Acts whose first feature is the topic's index, so a fit can tell which topics it was given."""
    names = np.array(sorted(topics))
    topic = names[rng.integers(len(names), size=n)]
    acts = rng.normal(size=(n, 2, d)).astype(np.float32)
    acts[:, :, 0] = np.searchsorted(names, topic)[:, None]
    return acts, rng.random(n) < 0.5, topic


def test_each_val_question_is_scored_by_a_stage_a_that_never_saw_its_topic(monkeypatch):
    rng = np.random.default_rng(0)
    topics = ["a", "b", "c", "d", "e"]
    train, val = _topic_data(rng, topics, 200), _topic_data(rng, topics, 60)
    seen: list[set[int]] = []
    real = hybrid.train_stage_a

    def recording(wrapper, train_acts, train_wrong, val_acts, val_wrong, settings):
        seen.append(set(np.unique(train_acts[:, 0, 0]).astype(int)) | set(np.unique(val_acts[:, 0, 0]).astype(int)))
        return real(wrapper, train_acts, train_wrong, val_acts, val_wrong, settings)

    monkeypatch.setattr(hybrid, "train_stage_a", recording)
    logits = hybrid.out_of_topic_logits((1, 2), (2, 3), train, val, folds=2, settings=StageASettings(max_epochs=1))
    assert np.isfinite(logits).all()
    groups = hybrid.topic_groups(topics, folds=2)
    assert len(seen) == len(groups)
    for group, fitted_on in zip(groups, seen, strict=True):
        assert not fitted_on & {topics.index(t) for t in group}


def test_a_second_topic_key_keeps_a_conversation_out_with_its_origin(monkeypatch):
    rng = np.random.default_rng(1)
    acts, wrong, topic = _topic_data(rng, ["a", "b", "conversations"], 120)
    origin = np.where(topic == "conversations", "a", topic)
    kept: list[int] = []
    real = hybrid.train_stage_a

    def recording(wrapper, train_acts, train_wrong, val_acts, val_wrong, settings):
        kept.append(len(train_acts))
        return real(wrapper, train_acts, train_wrong, val_acts, val_wrong, settings)

    monkeypatch.setattr(hybrid, "train_stage_a", recording)
    keys = np.column_stack([topic, origin])
    hybrid.out_of_topic_logits(
        (1, 2), (2, 3), (acts, wrong, keys), (acts, wrong, keys), folds=3, settings=StageASettings(max_epochs=1)
    )
    # The group holding "a" also leaves out the conversations whose final question is about "a".
    assert kept[0] == int((~np.isin(origin, ["a"]) & ~np.isin(topic, ["a"])).sum())


def test_one_topic_cannot_be_stacked_out_of_topic():
    rng = np.random.default_rng(2)
    data = _topic_data(rng, ["only"], 40)
    with pytest.raises(MetaspiderError, match="at least two topics"):
        hybrid.out_of_topic_logits((1, 2), (2, 3), data, data)


def test_the_stack_ranks_by_the_token_probabilities_where_the_logit_carries_nothing():
    rng = np.random.default_rng(3)

    def data(n):
        wrong = rng.random(n) < 0.5
        return rng.normal(size=n), wrong, np.where(wrong, 0.3, 0.8) + 0.1 * rng.random(n), rng.random(n)

    logits, wrong, msp, entropy = data(300)
    stack = hybrid.fit_stack(logits, wrong, msp, entropy)
    logits, wrong, msp, entropy = data(200)
    u = hybrid.apply_stack(stack, 1 / (1 + np.exp(-logits)), msp, entropy)
    assert roc_auc_score(wrong, u) > 0.95


def test_without_first_token_values_the_stack_leaves_u_alone():
    stack = hybrid.fit_stack(
        np.array([-1.0, 1.0, -2.0, 2.0]),
        np.array([0, 1, 0, 1], bool),
        np.array([0.9, 0.2, 0.8, 0.3]),
        np.array([0.1, 2.0, 0.3, 1.5]),
    )
    u = np.array([0.3, 0.6])
    out = hybrid.apply_stack(stack, u, np.array([np.nan, 0.5]), np.array([np.nan, 1.0]))
    assert out[0] == pytest.approx(0.3) and out[1] != pytest.approx(0.6)
    with pytest.raises(MetaspiderError, match="first-token values"):
        hybrid.fit_stack(np.zeros(2), np.array([0, 1], bool), np.full(2, np.nan), np.full(2, np.nan))
