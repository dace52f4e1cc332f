"""A wrapper with a support model, a fallback and a post-answer head on the real default model, on both
backbones: pass 1 blends u with the bare first-token distribution, the answer gets u_post, and the two
backbones agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metaspider.core.backbones.base import SamplingParams
from metaspider.core.pipeline import Pipeline
from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.handle import Wrapper
from metaspider.core.wrapper.support import first_token_stats
from metaspider.loom.backbones import llama_backbone, torch_backbone

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
PARAMS = SamplingParams(max_tokens=16, stop=("\n",))
QUESTIONS = [
    [{"role": "user", "content": "What is the capital of France?\nAnswer in a few words."}],
    [{"role": "user", "content": "What is the ISO 4217 currency code of Tuvalu?\nAnswer in a few words."}],
]


@pytest.fixture(scope="module")
def backbones():
    return {"llama_cpp": llama_backbone(MODEL, 1), "torch": torch_backbone(MODEL, 1)}


@pytest.fixture(scope="module")
def extended(tmp_path_factory, backbones) -> Path:
    """The shipped wrapper plus support (centred on a real question's bottleneck), fallbacks and a post head
    whose statistics come from real activations: the parts' math on real inputs, not a trained recipe."""
    shipped = Wrapper.open("default", model=MODEL)
    post_layers = (20, 21, 22)
    config = WrapperConfig.from_dict(shipped.manifest.config.to_dict() | {"support": True, "post_layers": post_layers})
    llama = backbones["llama_cpp"]
    runtime = shipped.runtime(llama)
    ids = llama.chat_ids(QUESTIONS[0])
    acts = llama.capture(ids, config.read_layers, positions=(-1,))[:, 0, :]
    centre = runtime.wrapper.bottleneck(runtime.read(acts).tokens)
    post = llama.capture(ids, post_layers, positions=(-1,))[:, 0, :]
    rng = np.random.default_rng(0)
    b, d = config.bottleneck, config.d_model
    extra = {
        "support.mean": centre,
        "support.precision": np.eye(b) / max(float(np.var(centre)), 1e-3),
        "support.step": np.array([float(b), b / 4.0]),
        "fallback.coef": np.array([2.0, 0.5]),
        "fallback.intercept": np.array([-1.0]),
        "post.mean": post,
        "post.scale": np.abs(post) + 1.0,
        "post.coef": rng.normal(scale=0.05, size=(3, d)),
        "post.intercept": np.zeros(3),
        "post.stack": np.array([1.0, 1.5, 0.3, -0.5]),
        "fallback_post.coef": np.array([1.0, 0.2]),
        "fallback_post.intercept": np.array([0.0]),
    }
    weights = dict(shipped.weights) | {k: np.asarray(v, dtype=np.float32) for k, v in extra.items()}
    wrapper = Wrapper(shipped.manifest.replace(config=config), weights, name="extended")
    return wrapper.save(tmp_path_factory.mktemp("extended") / "w")


def _pass_one(backbone, wrapper: Path, messages):
    """(pipeline, pass 1's assessment, the wrapper's reading of the same activations given the bare first
    token's distribution, the same reading without it)."""
    pipeline = Pipeline(backbone, wrapper)
    assessment = pipeline.assess(messages)
    bare = backbone.next_logits(assessment.ids)
    acts = backbone.capture(assessment.ids, pipeline.wrapper.config.read_layers, positions=(-1,))[:, 0, :]
    return pipeline, assessment, pipeline.wrapper.read(acts, first_token_stats(bare)), pipeline.wrapper.read(acts)


def test_pass_one_blends_with_the_bare_first_token_and_the_answer_gets_u_post(backbones, extended):
    results = {}
    for name, backbone in backbones.items():
        for index, messages in enumerate(QUESTIONS):
            _, assessment, expected, _ = _pass_one(backbone, extended, messages)
            assert assessment.uncertainty.score == pytest.approx(expected.u, abs=1e-5)
            assert assessment.uncertainty.support == pytest.approx(expected.support, abs=1e-5)
            result = Pipeline(backbone, extended).run(messages, PARAMS)
            u = result.uncertainty
            assert 0.0 < u.support <= 1.0 and 0.0 < u.score < 1.0 and 0.0 < u.score_post < 1.0
            results[name, index] = (u.score, u.support, u.score_post)
    # The question the support was centred on is in support; the other lies farther out.
    assert results["llama_cpp", 0][1] > results["llama_cpp", 1][1]
    for index in range(len(QUESTIONS)):
        assert np.allclose(results["llama_cpp", index], results["torch", index], atol=0.05)


def test_the_chat_model_reports_support_and_score_post(extended):
    from metaspider import MetaSpiderChatModel

    model = MetaSpiderChatModel(model=MODEL, wrapper=str(extended), n_threads=1, max_tokens=16, temperature=0)
    reply = model.invoke("What is the capital of France? Answer in a few words.")
    record = reply.response_metadata["uncertainty"]
    assert 0.0 < record["support"] <= 1.0 and 0.0 < record["score_post"] < 1.0
    assert model.assess([("user", "What is the capital of France? Answer in a few words.")]).score_post is None


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory) -> Path:
    """The shipped wrapper with a hybrid head before the answer and no support model."""
    shipped = Wrapper.open("default", model=MODEL)
    config = WrapperConfig.from_dict(shipped.manifest.config.to_dict() | {"hybrid": True})
    weights = dict(shipped.weights) | {"hybrid.stack": np.array([1.0, 2.0, 0.5, -1.0], dtype=np.float32)}
    wrapper = Wrapper(shipped.manifest.replace(config=config), weights, name="hybrid")
    return wrapper.save(tmp_path_factory.mktemp("hybrid") / "w")


def test_a_hybrid_head_reads_the_bare_first_token_on_both_backbones(backbones, hybrid):
    scores = {}
    for name, backbone in backbones.items():
        _, assessment, expected, without_first_token = _pass_one(backbone, hybrid, QUESTIONS[1])
        assert assessment.uncertainty.score == pytest.approx(expected.u, abs=1e-5)
        assert expected.u != pytest.approx(without_first_token.u, abs=1e-3)
        assert assessment.uncertainty.support is None
        scores[name] = assessment.uncertainty.score
    assert scores["llama_cpp"] == pytest.approx(scores["torch"], abs=0.05)
