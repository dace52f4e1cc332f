"""The schema layer, the shared names and the one-of-each helpers (atomic writes, Platt scaling, the Doubter
formula, cosine), and the import boundaries: no model file, no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metaspider import MetaspiderError, Modifier
from metaspider.core.files import atomic_path, write_text_atomically
from metaspider.core.names import BACKENDS, MODIFIER_NAMES
from metaspider.core.numerics import cosine, fit_platt, row_cosines
from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.modifiers import doubt
from metaspider.graph.repl import HELP
from metaspider.loom.datasets import DatasetRow
from metaspider.loom.run_folder import RunConfig

ROOT = Path(__file__).resolve().parents[2]


def test_schema_errors_name_the_field_and_are_metaspider_errors():
    with pytest.raises(MetaspiderError, match="wrapper config: injection"):
        WrapperConfig(d_model=8, read_layers=(1,), inject_layers=(2,), bottleneck=4, n_heads=2, injection="vector")
    with pytest.raises(MetaspiderError, match="unknown field 'dropout'"):
        WrapperConfig.from_dict({"d_model": 8, "read_layers": [1], "inject_layers": [2], "dropout": 0.1})
    with pytest.raises(MetaspiderError, match="modifier: name"):
        Modifier("skeptic")
    with pytest.raises(MetaspiderError, match="run config: missing field 'fingerprint'"):
        RunConfig.from_dict({"model": "m", "read_layers": [1], "inject_layers": [2], "prefix_layer": None})


def test_records_take_positional_fields_and_replace_like_dataclasses():
    config = RunConfig("m", "sha256:1", (1, 2), (3,), 2)
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.replace(prefix_layer=None).prefix_layer is None and config.prefix_layer == 2
    assert Modifier("none", 0.5) == Modifier.from_dict({"name": "none", "bias": 0.5})


def test_one_list_of_names_serves_the_spec_the_repl_and_the_chat_model():
    from metaspider.graph.spec import AgentSpec
    from metaspider.runtime.chat_model import MetaSpiderChatModel

    assert MODIFIER_NAMES == ("watchdog", "doubter", "none") and BACKENDS == ("llama_cpp", "torch")
    spec = AgentSpec.model_validate({"model": "m", "modifier": "none", "policy": {"answer_below": 0.5}})
    assert spec.modifier == "none"
    assert MetaSpiderChatModel(modifier="none").modifier == "none"
    assert " | ".join(MODIFIER_NAMES) in HELP


def test_dataset_rows_keep_their_messages_and_ignore_other_keys():
    item = DatasetRow.model_validate({"id": 7, "question": "Q?", "answers": ["a"], "source": "x"}).to_item()
    assert item.id == "7" and item.answers == ("a",)
    choice = DatasetRow.model_validate({"id": "c", "question": "Q?", "choices": ["x", "y"], "answer": "b"}).to_item()
    assert choice.answer == "B" and choice.is_multiple_choice


def test_atomic_path_leaves_nothing_behind_on_error(tmp_path: Path):
    target = tmp_path / "f.txt"
    write_text_atomically(target, "one")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_platt_fit_recovers_the_generating_parameters():
    rng = np.random.default_rng(0)
    x = rng.normal(size=20000)
    wrong = rng.random(x.size) < 1 / (1 + np.exp(-(2.0 * x - 0.5)))
    a, b = fit_platt(x, wrong)
    assert a == pytest.approx(2.0, abs=0.1) and b == pytest.approx(-0.5, abs=0.1)


def test_doubt_is_the_sigmoid_of_the_shifted_logit_on_floats_and_arrays():
    u = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    inner = u[1:-1]
    np.testing.assert_allclose(doubt(inner, 1.5), 1 / (1 + np.exp(-(np.log(inner / (1 - inner)) + 1.5))))
    assert doubt(0.0, 3.0) == 0.0 and doubt(1.0, 3.0) == 1.0
    np.testing.assert_allclose(doubt(u, np.full(5, 1.5)), Modifier("doubter", 1.5).apply(u))


def test_cosine_helpers():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[1.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    np.testing.assert_allclose(row_cosines(a, b), [1.0, -1.0, 0.0])
    assert cosine([3.0, 4.0], [6.0, 8.0]) == pytest.approx(1.0)


def _imported_after(code: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = f"import sys; {code}; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


def test_import_metaspider_loads_no_heavy_library():
    modules = _imported_after("import metaspider")
    heavy = {m for m in modules if m.split(".")[0] in ("torch", "langchain_core", "llama_cpp", "transformers")}
    assert not heavy


def test_the_deploy_library_does_not_import_the_training_side():
    modules = _imported_after("import metaspider.deploy.verify, metaspider.deploy.control_vector")
    assert not {m for m in modules if m.startswith("metaspider.loom")}
