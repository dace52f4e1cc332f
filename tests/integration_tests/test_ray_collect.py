"""`metaloom collect --ray`: two Ray workers on a local cluster store what a single process stores.

Both collects run the real `metaloom` command on the default model, one thread per model copy. The Ray
collect is interrupted on purpose (a smaller --limit first, then the full one) so resuming is covered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metaspider.core.models.registry import DEFAULT_MODEL
from metaspider.loom.run_folder import Collected, RunFolder

pytest.importorskip("ray", reason="Ray is in the test extra: pip install -e '.[test]'")

N_QUESTIONS = 60
DATASET, SPLIT = "countries", "train"


def _metaloom(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from metaspider.cli import loom_main; loom_main()", "collect", *args]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr
    return result


def _by_id(data: Collected) -> dict[str, tuple[dict, np.ndarray, np.ndarray]]:
    assert data.prefix is not None
    return {
        record["id"]: (record, acts, prefix)
        for record, acts, prefix in zip(data.records, data.acts, data.prefix, strict=True)
    }


@pytest.mark.slow
def test_ray_collect_with_two_workers_equals_single_process(tmp_path: Path) -> None:
    common = ["--model", DEFAULT_MODEL, "--dataset", DATASET, "--split", SPLIT, "--threads", "1"]
    _metaloom("--run", str(tmp_path / "single"), "--limit", str(N_QUESTIONS), *common)
    ray_run = str(tmp_path / "ray")
    first = _metaloom("--run", ray_run, "--limit", str(N_QUESTIONS // 3), "--ray", "--workers", "2", *common)
    assert f"{N_QUESTIONS // 3} new" in first.stderr
    resumed = _metaloom("--run", ray_run, "--limit", str(N_QUESTIONS), "--ray", "--workers", "2", *common)
    assert f"{N_QUESTIONS} questions stored ({N_QUESTIONS - N_QUESTIONS // 3} new)" in resumed.stderr
    assert "2 Ray workers" in resumed.stderr
    again = _metaloom("--run", ray_run, "--limit", str(N_QUESTIONS), "--ray", "--workers", "2", *common)
    assert f"{N_QUESTIONS} questions stored (0 new)" in again.stderr

    single = _by_id(RunFolder(tmp_path / "single").load(DATASET, SPLIT, with_prefix=True))
    ray = _by_id(RunFolder(ray_run).load(DATASET, SPLIT, with_prefix=True))
    assert len(single) == N_QUESTIONS
    assert ray.keys() == single.keys()
    assert RunFolder(ray_run).config() == RunFolder(tmp_path / "single").config()
    for item_id, (record, acts, prefix) in single.items():
        ray_record, ray_acts, ray_prefix = ray[item_id]
        for key in ("answer", "correct", "refused", "n_prompt", "target", "prefix_len"):
            assert ray_record[key] == record[key], (item_id, key)
        assert ray_record["msp"] == pytest.approx(record["msp"], abs=1e-4)
        assert ray_record["entropy"] == pytest.approx(record["entropy"], abs=1e-4)
        assert ray_acts.dtype == acts.dtype == np.float16
        np.testing.assert_array_equal(ray_acts, acts, err_msg=item_id)
        np.testing.assert_array_equal(ray_prefix, prefix, err_msg=item_id)
    assert any(record["correct"] for record, _, _ in single.values())
    assert not all(record["correct"] for record, _, _ in single.values())


@pytest.mark.slow
def test_eval_collects_its_missing_questions_on_ray(tmp_path: Path) -> None:
    """`metaloom eval --ray`: the questions are collected by Ray workers, then scored by the driver."""
    run = tmp_path / "eval"
    command = [sys.executable, "-c", "from metaspider.cli import loom_main; loom_main()", "eval", "--run", str(run)]
    command += ["--model", DEFAULT_MODEL, "--wrapper", "default", "--dataset", DATASET, "--split", "test"]
    command += ["--limit", "8", "--threads", "1", "--ray", "--workers", "2", "--json"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr
    assert "2 Ray workers" in result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 8
    assert len(RunFolder(run).load(DATASET, "test").records) == 8
    assert 0.0 <= report["methods"]["wrapper"]["auroc"] <= 1.0
