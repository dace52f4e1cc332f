"""Leave-one-topic-out on synthetic activations: what is held out, what is scored, how topics average."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metaspider.errors import MetaspiderError
from metaspider.loom import lotocv
from metaspider.loom.run_folder import RunConfig, RunFolder
from metaspider.loom.stage_a import StageASettings

CONFIG = RunConfig(model="fake", fingerprint="fp", read_layers=(4, 5, 6), inject_layers=(6, 7), prefix_layer=None)
D = 16
FAST = StageASettings(max_epochs=3, batch_size=64)


def _chunk(rng: np.random.Generator, topic: str, n: int, with_post: bool = True, consistency: bool = False):
    """Questions whose wrongness shows along one direction of every read layer (and in msp)."""
    correct = rng.random(n) < 0.5
    signal = np.where(correct, -1.0, 1.0)[:, None, None]
    acts = rng.normal(size=(n, 3, D)) + 1.5 * signal * np.eye(D)[0]
    records = []
    for i in range(n):
        record = {
            "id": f"{topic}:{i}",
            "subject": topic,
            "correct": bool(correct[i]),
            "msp": float(0.7 if correct[i] else 0.4) + 0.01 * rng.random(),
            "entropy": float(rng.random()),
        }
        if with_post:
            record |= {
                "msp_first": float(rng.random()),
                "entropy_first": float(rng.random()),
                "p_true": float(rng.random()),
            }
        if consistency and i % 2 == 0:
            record["consistency"] = 1.0 if correct[i] else 0.2
        records.append(record)
    arrays = {"acts": acts.astype(np.float16)}
    if with_post:
        arrays["acts_post"] = acts.astype(np.float16)
    return records, arrays


def _run(tmp_path, topics=("a", "b", "c"), with_post=True, seed=0) -> RunFolder:
    rng = np.random.default_rng(seed)
    run = RunFolder(tmp_path / "run")
    run.save_config(CONFIG)
    for topic in topics:
        for split, n in (("train", 80), ("val", 30), ("test", 40)):
            records, arrays = _chunk(rng, topic, n, with_post, consistency=split == "test" and topic == "a")
            run.write_chunk(topic, split, records, arrays)
    return run


def test_pool_reads_every_topic_and_split_with_both_moments(tmp_path):
    pool = lotocv.load_pool([_run(tmp_path)])
    assert set(pool.topic) == {"a", "b", "c"}
    assert len(pool) == 3 * 150
    assert pool.acts.shape == pool.acts_post.shape == (450, 3, D)
    assert np.isnan(pool.fields["consistency"]).sum() == 450 - 20


def test_old_chunks_without_the_new_fields_still_load(tmp_path):
    pool = lotocv.load_pool([_run(tmp_path, with_post=False)])
    assert pool.acts_post is None
    assert np.isnan(pool.fields["p_true"]).all()
    result = lotocv.lotocv(pool, topics=["a"], stage_a=FAST)
    assert "probe_post" not in result["topics"]["a"]["auroc"]
    assert "p_true" not in result["topics"]["a"]["auroc"]
    assert result["topics"]["a"]["auroc"]["msp"] > 0.9


def test_a_single_mixed_data_set_is_split_by_subject(tmp_path):
    rng = np.random.default_rng(1)
    run = RunFolder(tmp_path / "mixed")
    run.save_config(CONFIG)
    for split in ("train", "val", "test"):
        parts = [_chunk(rng, topic, 20) for topic in ("x", "y")]
        records = parts[0][0] + parts[1][0]
        arrays = {key: np.concatenate([parts[0][1][key], parts[1][1][key]]) for key in parts[0][1]}
        run.write_chunk("mixture", split, records, arrays)
    assert set(lotocv.load_pool([run]).topic) == {"x", "y"}
    assert set(lotocv.load_pool([run], by="dataset").topic) == {"mixture"}


def test_the_held_out_topic_never_reaches_training(tmp_path, monkeypatch):
    from metaspider.loom import fallback

    pool = lotocv.load_pool([_run(tmp_path)])
    seen = []
    real_train, real_head = lotocv.train_wrapper, fallback.fit_post_head

    def probe_spy(train_x, train_wrong, val_x, val_wrong, test_x):
        seen.append(("probe", len(train_x), len(val_x), len(test_x)))
        return np.zeros(len(test_x))

    def train_spy(config, train_x, train_wrong, val_x, val_wrong, settings=None):
        seen.append(("wrapper", len(train_x), len(val_x)))
        return real_train(config, train_x, train_wrong, val_x, val_wrong, FAST)

    def head_spy(train_post, train_wrong, val_post, *rest):
        seen.append(("post", len(train_post), len(val_post)))
        return real_head(train_post, train_wrong, val_post, *rest)

    monkeypatch.setattr(lotocv, "probe_scores", probe_spy)
    monkeypatch.setattr(lotocv, "train_wrapper", train_spy)
    monkeypatch.setattr(fallback, "fit_post_head", head_spy)
    result = lotocv.lotocv(pool)
    # per topic: the wrapper, the probe and the post head, each on the two other topics' train (160) and val (60)
    assert sorted(seen) == sorted([("wrapper", 160, 60), ("probe", 160, 60, 40), ("post", 160, 60)] * 3)
    assert set(result["topics"]) == {"a", "b", "c"}
    assert result["topics"]["a"]["auroc"]["linear_probe"] == 0.5  # constant scores: a coin


def test_scoring_the_val_split_leaves_test_unread(tmp_path):
    pool = lotocv.load_pool([_run(tmp_path)])
    result = lotocv.lotocv(pool, topics=["a"], stage_a=FAST, score_split="val")
    assert result["scored_split"] == "val" and result["topics"]["a"]["n"] == 30


def test_every_method_is_scored_and_the_probes_and_wrapper_find_the_signal(tmp_path):
    result = lotocv.lotocv(lotocv.load_pool([_run(tmp_path)]), stage_a=FAST)
    a = result["topics"]["a"]
    assert set(a["auroc"]) == set(lotocv.METHODS)
    assert a["n"] == 40 and a["n_consistency"] == 20
    for method in ("wrapper", "linear_probe", "probe_post", "wrapper_post", "msp"):
        assert result["mean_auroc"][method] > 0.85, method
    # The fallback here is noise (random first-token numbers): blending toward it where support is low
    # costs ranking, but u still leads.
    assert 0.6 < result["mean_auroc"]["wrapper_fallback"] < result["mean_auroc"]["wrapper"]
    assert 0.5 < a["support"] <= 1.0
    assert abs(result["mean_auroc"]["p_true"] - 0.5) < 0.25  # random numbers: no signal
    assert result["consistency_topics"] == ["a"]
    assert "consistency" not in result["topics"]["b"]["auroc"]
    for key in ("aurc", "selective_accuracy_50"):
        assert set(result[f"mean_{key}"]) == set(lotocv.METHODS)


def test_rank_metrics_skip_missing_scores_and_a_single_class():
    correct = np.array([True, False, True, False])
    m = lotocv.rank_metrics(np.array([0.1, 0.9, np.nan, 0.8]), correct)
    assert m["n"] == 3 and m["auroc"] == 1.0 and m["selective_accuracy_50"] == pytest.approx(0.5)
    assert math.isnan(lotocv.rank_metrics(np.array([0.1, 0.2]), np.array([True, True]))["auroc"])
    assert lotocv.rank_metrics(np.full(2, np.nan), correct[:2])["n"] == 0


def test_topic_means_count_each_topic_once_and_skip_nan():
    results = {
        "a": {"auroc": {"msp": 0.6, "consistency": 0.9}},
        "b": {"auroc": {"msp": 0.8, "consistency": math.nan}},
        "c": {"auroc": {"msp": 1.0}},
    }
    means = lotocv.mean_over_topics(results, "auroc")
    assert means["msp"] == pytest.approx(0.8)
    assert means["consistency"] == pytest.approx(0.9)


def test_runs_of_different_models_are_refused(tmp_path):
    first = _run(tmp_path / "1", topics=("a",))
    other = RunFolder(tmp_path / "2")
    other.save_config(
        RunConfig(model="other", fingerprint="fp2", read_layers=(4, 5, 6), inject_layers=(6, 7), prefix_layer=None)
    )
    with pytest.raises(MetaspiderError, match="different models"):
        lotocv.load_pool([first, other])


def test_conversations_about_the_held_out_topic_stay_out_of_training(tmp_path, monkeypatch):
    run = _run(tmp_path)
    rng = np.random.default_rng(3)
    for split in ("train", "val", "test"):
        records, arrays = _chunk(rng, "conversations", 10)
        for i, record in enumerate(records):
            record["id"] = f"conversations:{'a' if i < 4 else 'b'}:q{i}"
        run.write_chunk("conversations", split, records, arrays)
    pool = lotocv.load_pool([run])
    sizes = []
    monkeypatch.setattr(
        lotocv,
        "probe_scores",
        lambda tx, ty, vx, vy, sx: sizes.append((len(tx), len(vx), len(sx))) or np.zeros(len(sx)),
    )
    monkeypatch.setattr(lotocv, "train_wrapper", lambda *_, **__: (None, [0]))
    monkeypatch.setattr(lotocv, "_sigmoid_logits", lambda wrapper, acts: np.zeros(len(acts)))
    monkeypatch.setattr(lotocv, "fitted_signals", lambda *_: lambda test: ({}, np.ones(test.sum())))
    lotocv.lotocv(pool, topics=["a", "conversations"])
    # holding out a: b, c and the 6 conversations about b; holding out conversations: a, b and c in full
    assert sizes[0] == (160 + 6, 60 + 6, 40)
    assert sizes[1] == (240, 90, 10)
    assert lotocv.conversation_origin("conversations:elements:x") == "elements"
    assert lotocv.conversation_origin("elements:x") is None


def test_scoring_val_and_test_at_once_matches_scoring_each_alone(tmp_path):
    pool = lotocv.load_pool([_run(tmp_path)])
    both = lotocv.lotocv_by_split(pool, ("val", "test"), topics=["b"], stage_a=FAST, hybrid=False)
    for split in ("val", "test"):
        alone = lotocv.lotocv(pool, topics=["b"], stage_a=FAST, score_split=split, hybrid=False)
        assert both[split]["topics"]["b"]["n"] == alone["topics"]["b"]["n"]
        assert both[split]["mean_auroc"] == pytest.approx(alone["mean_auroc"], nan_ok=True)
