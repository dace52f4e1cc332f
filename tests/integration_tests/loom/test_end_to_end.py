"""collect → train → eval → calibrate through the CLI on the real default model, a few dozen questions."""

import json
import math
import shutil

import pytest
from typer.testing import CliRunner

from metaspider.core.wrapper.folder import load_manifest
from metaspider.loom.cli import loom_app
from metaspider.loom.run_folder import RunFolder

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"


def invoke(*args: str) -> str:
    """The command's stdout (progress and summaries go to stderr)."""
    result = CliRunner().invoke(loom_app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """40 questions: 24 to train on, 8 to validate, 8 to test; one short epoch per stage."""
    folder = tmp_path_factory.mktemp("run")
    for split, limit in (("train", 24), ("val", 8), ("test", 8)):
        invoke(
            "collect",
            "--model",
            MODEL,
            "--dataset",
            "countries",
            "--split",
            split,
            "--limit",
            str(limit),
            "--run",
            str(folder),
            "--threads",
            "1",
        )
    invoke("train", "--run", str(folder), "--stage", "all", "--epochs", "1", "--threads", "1")
    return folder


def test_collect_stores_answers_baselines_and_activations(run):
    data = RunFolder(run).load("countries", "train", with_prefix=True)
    assert len(data.records) == 24
    assert data.acts.shape == (24, len(RunFolder(run).config().read_layers), 576)
    record = data.records[0]
    assert 0 < record["msp"] <= 1 and record["entropy"] >= 0
    # Stage B's states cover prompt + target minus the last label token.
    assert len(data.prefix[0]) == record["n_prompt"] + len(record["target"]) - 1


def test_collect_resumes_without_redoing_stored_questions(run):
    before = (run / "collect" / "countries" / "val").stat().st_mtime_ns
    result = CliRunner().invoke(
        loom_app,
        [
            "collect",
            "--model",
            MODEL,
            "--dataset",
            "countries",
            "--split",
            "val",
            "--limit",
            "8",
            "--run",
            str(run),
            "--threads",
            "1",
        ],
        catch_exceptions=False,
    )
    assert "(0 new)" in result.stderr
    assert len(list((run / "collect" / "countries" / "val").glob("chunk-*.json"))) == 1
    assert (run / "collect" / "countries" / "val").stat().st_mtime_ns == before


def test_train_writes_a_loadable_wrapper_with_its_provenance(run):
    manifest = load_manifest(run / "wrapper")
    assert manifest.modifier.name == "doubter"
    assert manifest.training_data["datasets"] == {"countries": {"splits": ["train", "val"]}}
    assert manifest.training_data["stage_b"]["epochs"] == 1
    # The equal-cost operating point on val-calibrated u, and the Doubter bias that refuses from there.
    assert manifest.answer_below == 0.5 and manifest.modifier.bias == 0.0
    assert math.copysign(1.0, manifest.modifier.bias) == 1.0  # 0.0, not -0.0, in the file people read


def test_eval_writes_the_report_the_issue_asks_for(run):
    report = json.loads(
        invoke("eval", "--run", str(run), "--split", "test", "--limit", "8", "--json", "--threads", "1")
    )
    assert report["n"] == 8 and not report["cross_domain"]
    for name in ("msp", "entropy", "wrapper", "doubter"):
        method = report["methods"][name]
        for key in ("aurc", "e_aurc", "ece", "brier"):
            assert key in method
        assert set(method["selective_accuracy"]) == {"0.25", "0.5", "0.75"}
        assert ("auroc" in method) == (name != "doubter")
    for key in (
        "coverage",
        "selective_accuracy_at_own_coverage",
        "msp_selective_accuracy_at_same_coverage",
        "refusal_precision",
        "over_refusal",
        "mcnemar_p",
    ):
        assert key in report["methods"]["doubter"]
    for name in ("report.json", "report.md", "risk_coverage.png"):
        assert (run / name).stat().st_size > 0


def test_a_stage_a_wrapper_is_evaluated_without_a_doubter(run, tmp_path):
    stage_a = tmp_path / "stage_a"
    shutil.copytree(run / "collect", stage_a / "collect")
    shutil.copy(run / "run.json", stage_a / "run.json")
    invoke("train", "--run", str(stage_a), "--stage", "a", "--epochs", "1")
    report = json.loads(
        invoke("eval", "--run", str(stage_a), "--split", "test", "--limit", "8", "--json", "--threads", "1")
    )
    assert report["methods"]["doubter"] is None
    assert report["methods"]["wrapper"]["auroc"] is not None
    assert list(report["targets"]) == ["wrapper_auroc_beats_best_baseline_by_0.05"]
    assert "stage A alone" in (stage_a / "report.md").read_text()
    assert not (stage_a / "eval").exists()  # no pass 2 was run


def test_eval_of_the_shipped_wrapper_on_a_jsonl_set_is_cross_domain(tmp_path):
    questions = tmp_path / "planets.jsonl"
    rows = [
        {"id": "p1", "question": "Which planet is closest to the Sun?", "answers": ["Mercury"]},
        {"id": "p2", "question": "Which planet is known as the Red Planet?", "answers": ["Mars"]},
        {"id": "p3", "question": "What is the largest planet of the Solar System?", "answers": ["Jupiter"]},
        {"id": "p4", "question": "Which planet has the most moons?", "answers": ["Saturn"]},
        {"id": "p5", "question": "Which planet is tilted on its side?", "answers": ["Uranus"]},
        {"id": "p6", "question": "Which planet is farthest from the Sun?", "answers": ["Neptune"]},
    ]
    questions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = tmp_path / "cross"
    report = json.loads(
        invoke(
            "eval",
            "--model",
            MODEL,
            "--wrapper",
            "default",
            "--dataset",
            str(questions),
            "--split",
            "all",
            "--run",
            str(run),
            "--json",
            "--threads",
            "1",
        )
    )
    assert report["n"] == 6 and report["cross_domain"] is True and report["trained_on"] == ["countries"]
    assert "cross-domain" in (run / "report.md").read_text()


def test_calibrate_stores_a_certified_threshold_or_explains_why_not(run):
    invoke(
        "collect",
        "--model",
        MODEL,
        "--dataset",
        "countries",
        "--split",
        "calib",
        "--limit",
        "8",
        "--run",
        str(run),
        "--threads",
        "1",
    )
    result = CliRunner().invoke(loom_app, ["calibrate", "--run", str(run), "--max-risk", "0.5", "--delta", "0.2"])
    # Eight questions cannot certify a 50 % risk bound: the command must say so and leave the wrapper alone.
    assert result.exit_code != 0
    assert "no threshold" in str(result.exception)
    assert load_manifest(run / "wrapper").calibrated == ()
