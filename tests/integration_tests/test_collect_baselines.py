"""Collect on the real default model stores the baselines of both moments, and they are sane."""

from __future__ import annotations

import numpy as np
import pytest

from metaspider.core.models.registry import DEFAULT_MODEL
from metaspider.core.wrapper.config import default_layers
from metaspider.core.wrapper.support import first_token_stats
from metaspider.loom.collect import TIMES_FILE, collect
from metaspider.loom.datasets import load_items, split_items, to_messages
from metaspider.loom.run_folder import RunConfig, RunFolder

N = 6


@pytest.mark.slow
def test_collect_stores_first_token_answer_end_p_true_and_consistency(tmp_path):
    from metaspider.loom.backbones import llama_backbone

    backbone = llama_backbone(DEFAULT_MODEL, 1)
    read, inject = default_layers(backbone.n_layers)
    config = RunConfig(
        model=DEFAULT_MODEL, fingerprint=backbone.fingerprint, read_layers=read, inject_layers=inject, prefix_layer=None
    )
    run = RunFolder(tmp_path / "run")
    summary = collect(run, backbone, config, "countries", "test", limit=N, consistency=3)
    assert summary.n_items == N
    data = run.load("countries", "test")
    assert data.acts_post is not None
    assert data.acts_post.shape == data.acts.shape == (N, len(read), backbone.d_model)
    assert data.acts_post.dtype == np.float16 and np.isfinite(data.acts_post).all()
    answered = np.array([r["n_answer"] > 0 for r in data.records])
    # after a non-empty answer the activations are read at another position than the decision point
    assert answered.any()
    assert not np.allclose(data.acts_post[answered], data.acts[answered])
    for record in data.records:
        assert 0.0 < record["msp_first"] <= 1.0
        assert record["entropy_first"] >= 0.0
        assert 0.0 <= record["p_true"] <= 1.0
    assert len({round(r["p_true"], 6) for r in data.records}) > 1  # it depends on the question and the answer
    # the first-token figures are those of the full distribution at the decision point
    item = next(i for i in split_items(load_items("countries"), "test") if i.id == data.records[0]["id"])
    msp_first, entropy_first = first_token_stats(backbone.next_logits(backbone.chat_ids(to_messages(item))))
    assert data.records[0]["msp_first"] == pytest.approx(msp_first, abs=1e-3)
    assert data.records[0]["entropy_first"] == pytest.approx(entropy_first, abs=1e-2)
    with_consistency = [r for r in data.records if "consistency" in r]
    assert len(with_consistency) == 3
    assert all(r["consistency"] in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0) for r in with_consistency)
    assert (run.path / TIMES_FILE).is_file()
    # resuming stores nothing twice
    again = collect(run, backbone, config, "countries", "test", limit=N, consistency=3)
    assert again.n_new == 0 and again.n_items == N
