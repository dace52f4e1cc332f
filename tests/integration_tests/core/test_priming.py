"""Pass 1 that also injects the decision token (`Priming`) on the real default model through llama.cpp:
the first answer token needs no decode step of its own, the text is what re-evaluating the decision
token gives, and the injected cache rows never leak into another request."""

from pathlib import Path

import pytest
from random_wrappers import make_wrapper

from metaspider.core.backbones.base import SamplingParams, TokenOut
from metaspider.core.models.model_files import fingerprint
from metaspider.core.models.registry import DEFAULT_MODEL, resolve
from metaspider.core.pipeline import Pipeline
from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.runtime import NumpyRuntime

PARAMS = SamplingParams(max_tokens=12)
QUESTION = [{"role": "user", "content": "What is the capital of Peru?"}]


def _wrapper(folder: Path, injection: str, read: tuple[int, ...], inject: tuple[int, ...]) -> Path:
    """A random wrapper whose injection visibly changes the first token."""
    config = WrapperConfig(
        d_model=576, read_layers=read, inject_layers=inject, bottleneck=64, n_heads=4, injection=injection
    )
    return make_wrapper(folder, config, fingerprint(resolve(DEFAULT_MODEL)), up_std=4.0)


def _generate(pipeline: Pipeline, assessment) -> tuple[list[TokenOut], list[int]]:
    """The tokens, and how many evaluations the backbone ran before each one."""
    backbone = pipeline.backbone
    runs = [0]
    real_run = backbone._run_batch

    def counting(*args, **kwargs):
        runs[0] += 1
        return real_run(*args, **kwargs)

    backbone._run_batch = counting
    try:
        tokens, before = [], []
        for item in pipeline.stream(assessment, PARAMS):
            if isinstance(item, TokenOut) and item.token_id >= 0:
                tokens.append(item)
                before.append(runs[0])
        return tokens, before
    finally:
        del backbone._run_batch


def _bare_first_logprob(backbone, ids: list[int]) -> float:
    return next(t for t in backbone.generate(ids, PARAMS) if isinstance(t, TokenOut)).logprob


@pytest.mark.parametrize("injection", ["tokens", "pooled"])
def test_a_primed_pass_1_starts_pass_2_without_a_decode_step_and_with_the_same_text(
    llama_backbone, tmp_path, injection
):
    runtime = NumpyRuntime(
        _wrapper(tmp_path / injection, injection, (22, 23, 24), (24, 25, 26)), llama_backbone.fingerprint
    )
    pipeline = Pipeline(llama_backbone, runtime)
    with llama_backbone.lock:
        llama_backbone.reset()
        primed = pipeline.assess(QUESTION)
        assert primed.injection is not None
        tokens, before = _generate(pipeline, primed)
        assert before[0] == 0, "the first token needed an evaluation of its own"
        # The same request with the injection rebuilt after pass 1: pass 2 re-evaluates the decision token.
        again = pipeline.assess(QUESTION)
        unprimed = type(again)(again.ids, again.reading, again.uncertainty)
        reference, reference_before = _generate(pipeline, unprimed)
        bare = _bare_first_logprob(llama_backbone, primed.ids)
    assert reference_before[0] == 1
    assert primed.uncertainty.score == pytest.approx(again.uncertainty.score, abs=1e-6)
    assert [t.token_id for t in tokens] == [t.token_id for t in reference]
    assert tokens[0].logprob == pytest.approx(reference[0].logprob, abs=2e-2)
    assert abs(tokens[0].logprob - bare) > 1e-3, "the injection did not reach the first token: the test proves nothing"


@pytest.mark.parametrize("injection", ["tokens", "pooled"])
@pytest.mark.parametrize("pass_2_tokens", [0, 1])
def test_a_primed_request_leaves_nothing_injected_behind(llama_backbone, tmp_path, injection, pass_2_tokens):
    """Refused (no pass 2) or stopped after the primed token: the next bare request is the cold one."""
    runtime = NumpyRuntime(_wrapper(tmp_path / "w", injection, (22, 23, 24), (24, 25, 26)), llama_backbone.fingerprint)
    pipeline = Pipeline(llama_backbone, runtime)
    with llama_backbone.lock:
        llama_backbone.reset()
        ids = llama_backbone.chat_ids(QUESTION)
        cold, _ = llama_backbone.complete(ids, PARAMS)
        assessment = pipeline.assess(QUESTION)
        assert assessment.injection is not None
        if pass_2_tokens:
            list(pipeline.stream(assessment, SamplingParams(max_tokens=pass_2_tokens)))
        warm, _ = llama_backbone.complete(ids, PARAMS)
    assert warm == cold


def test_a_wrapper_reading_above_its_injection_is_not_primed_and_still_injects(llama_backbone, tmp_path):
    runtime = NumpyRuntime(_wrapper(tmp_path / "w", "tokens", (26, 27, 28), (24, 25, 26)), llama_backbone.fingerprint)
    pipeline = Pipeline(llama_backbone, runtime)
    with llama_backbone.lock:
        llama_backbone.reset()
        assessment = pipeline.assess(QUESTION)
        tokens, before = _generate(pipeline, assessment)
        bare = _bare_first_logprob(llama_backbone, assessment.ids)
    assert before[0] == 1
    assert abs(tokens[0].logprob - bare) > 1e-3
