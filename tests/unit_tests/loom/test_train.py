import numpy as np
import pytest

from metaspider.core.wrapper.folder import load_torch_wrapper
from metaspider.errors import MetaspiderError
from metaspider.loom.run_folder import RunConfig, RunFolder
from metaspider.loom.train import read_layer_candidates, train


def test_read_windows_never_go_above_the_lowest_injected_block():
    late_third, inject = tuple(range(20, 29)), (26, 27, 28)
    candidates = read_layer_candidates(late_third, inject)
    assert candidates == [(24, 25, 26), (21, 22, 23), tuple(range(20, 27))]
    assert all(max(window) <= min(inject) for window in candidates)


def test_read_windows_with_few_eligible_layers():
    assert read_layer_candidates((3, 4), (4, 5)) == [(3, 4)]
    assert read_layer_candidates((20, 21, 22, 23), (20, 21)) == [(20,)]


def _topic_run(tmp_path, topics=("a", "b", "c")):
    """A run folder of three data sets whose wrongness shows along one direction of the read blocks."""
    rng = np.random.default_rng(0)
    run = RunFolder(tmp_path / "run")
    run.save_config(
        RunConfig(model="fake", fingerprint="fp", read_layers=(4, 5, 6), inject_layers=(6, 7), prefix_layer=None)
    )
    for topic in topics:
        for split, n in (("train", 60), ("val", 30)):
            correct = rng.random(n) < 0.5
            acts = rng.normal(size=(n, 3, 16)) + 1.5 * np.where(correct, -1.0, 1.0)[:, None, None] * np.eye(16)[0]
            records = [
                {
                    "id": f"{topic}:{i}",
                    "correct": bool(correct[i]),
                    "msp": 0.5,
                    "entropy": 1.0,
                    "msp_first": float(0.8 if correct[i] else 0.4),
                    "entropy_first": float(rng.random()),
                }
                for i in range(n)
            ]
            arrays = {"acts": acts.astype(np.float16), "acts_post": acts.astype(np.float16)}
            run.write_chunk(topic, split, records, arrays)
    return run


def test_the_hybrid_head_is_fitted_with_stage_a_and_refitted_or_dropped_by_the_parts_stage(tmp_path):
    run = _topic_run(tmp_path)
    train(run, stage="a", epochs=2, hybrid=True)
    wrapper, manifest = load_torch_wrapper(run.wrapper_dir, "fp")
    assert manifest.config.hybrid and manifest.config.support and manifest.config.post_layers
    record = manifest.training_data["hybrid"]
    assert sorted(t for group in record["folds"] for t in group) == ["a", "b", "c"]
    # The first token's max-softmax probability separates right from wrong here: the stack leans on it.
    assert record["stack"]["coef"][1] > 0
    encoder = wrapper.state_dict()["confidence.out.weight"].clone()
    train(run, stage="parts", hybrid=False)
    refitted, manifest = load_torch_wrapper(run.wrapper_dir, "fp")
    assert not manifest.config.hybrid and manifest.config.support and "hybrid" not in manifest.training_data
    assert np.array_equal(refitted.state_dict()["confidence.out.weight"].numpy(), encoder.numpy())


def test_one_training_data_set_leaves_the_hybrid_head_out_and_says_why(tmp_path):
    run = _topic_run(tmp_path, topics=("only",))
    train(run, stage="a", epochs=1, hybrid=True)
    _, manifest = load_torch_wrapper(run.wrapper_dir, "fp")
    assert not manifest.config.hybrid and "two training data sets" in manifest.training_data["hybrid"]


def test_the_hybrid_head_is_not_fitted_by_stage_b_alone(tmp_path):
    with pytest.raises(MetaspiderError, match="--hybrid"):
        train(_topic_run(tmp_path), stage="b", hybrid=True)
