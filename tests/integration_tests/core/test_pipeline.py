"""The two-pass pipeline with the shipped Doubter on the real default model."""

import pytest

from metaspider.core.backbones.base import SamplingParams
from metaspider.core.pipeline import Pipeline
from metaspider.core.wrapper.folder import load_manifest
from metaspider.core.wrapper.handle import load_wrapper, resolve_wrapper_path
from metaspider.loom.backbones import llama_backbone, torch_backbone
from metaspider.loom.datasets import is_correct, load_items
from metaspider.loom.scoring import is_refusal

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
PARAMS = SamplingParams(max_tokens=24, stop=("\n",))
SURE = [{"role": "user", "content": "What is the capital of France?\nAnswer in a few words."}]
ANSWERED = [{"role": "user", "content": "What is the capital of Peru?\nAnswer in a few words."}]
UNSURE = [{"role": "user", "content": "What is the ISO 4217 currency code of Tuvalu?\nAnswer in a few words."}]


@pytest.fixture(scope="module")
def countries() -> dict:
    """The countries data set by id: its accepted spellings decide whether an answer is right."""
    return {item.id: item for item in load_items("countries")}


@pytest.fixture(scope="module")
def llama():
    return llama_backbone(MODEL, 1)


@pytest.fixture(scope="module")
def shipped(llama):
    return load_wrapper(llama, "default", "llama_cpp")


def test_the_default_wrapper_is_shipped_for_the_default_model():
    manifest = load_manifest(resolve_wrapper_path("default", MODEL))
    assert manifest.base_model == MODEL and manifest.modifier.name == "doubter"
    assert "countries" in manifest.training_data["datasets"]


def test_gain_zero_reproduces_the_bare_model_text(llama, shipped):
    for messages in (SURE, UNSURE):
        bare, _ = llama.complete(llama.chat_ids(messages), PARAMS)
        result = Pipeline(llama, shipped, gain=0.0).run(messages, PARAMS)
        assert result.text == bare
        assert result.uncertainty.gain == 0.0 and result.uncertainty.score is not None


def test_the_doubter_refuses_what_it_doubts_and_a_large_gain_refuses_more(llama, shipped, countries):
    bare, _ = llama.complete(llama.chat_ids(UNSURE), PARAMS)
    assert not is_refusal(bare)
    assert is_refusal(Pipeline(llama, shipped).run(UNSURE, PARAMS).text)
    sure = Pipeline(llama, shipped).run(SURE, PARAMS).text
    assert is_correct(countries["capital:france"], sure), sure
    # A question answered as trained (u about 0.2, below the threshold 0.5) is refused at gain 2.
    # From about 2.5 the injection runs away into repetition (DESIGN, lessons from the seed).
    answered = Pipeline(llama, shipped).run(ANSWERED, PARAMS).text
    assert is_correct(countries["capital:peru"], answered), answered
    assert is_refusal(Pipeline(llama, shipped, gain=2.0).run(ANSWERED, PARAMS).text)


def test_u_ranks_a_known_fact_below_an_obscure_one(llama, shipped):
    pipeline = Pipeline(llama, shipped)
    assert pipeline.assess(SURE).uncertainty.score < pipeline.assess(UNSURE).uncertainty.score


def test_u_agrees_across_backbones(llama, shipped):
    torch_model = torch_backbone(MODEL, 1)
    on_torch = Pipeline(torch_model, load_wrapper(torch_model, "default", "torch"))
    on_llama = Pipeline(llama, shipped)
    for messages in (SURE, UNSURE):
        assert on_torch.assess(messages).uncertainty.score == pytest.approx(
            on_llama.assess(messages).uncertainty.score, abs=0.02
        )
