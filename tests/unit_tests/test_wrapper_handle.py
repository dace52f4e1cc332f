"""The `Wrapper` handle and the wrapper file formats: no model file, no network (random NumPy weights and the
shipped wrapper's manifest)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import gguf
import numpy as np
import pytest
from typer.testing import CliRunner

from metaspider import MetaspiderError, Modifier, Wrapper, load_wrapper
from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.folder import CalibratedThreshold, WrapperManifest, save_wrapper
from metaspider.core.wrapper.handle import resolve_wrapper_path
from metaspider.core.wrapper.runtime import NumpyRuntime
from metaspider.core.wrapper.sidecar import manifest_from_fields, sidecar_fields

FINGERPRINT = "sha256:0123abcd0123abcd"
SHIPPED = Path(str(resources.files("metaspider") / "wrappers" / "smollm2-135m-doubter"))


def _manifest(**changes) -> WrapperManifest:
    config = WrapperConfig(d_model=64, read_layers=(1, 2), inject_layers=(2, 3), bottleneck=32, n_heads=2)
    fields = {
        "base_fingerprint": FINGERPRINT,
        "base_model": "smollm2-135m",
        "config": config,
        "modifier": Modifier("doubter", 0.5),
        "gain": 1.25,
        "answer_below": 0.42,
        "calibrated": (CalibratedThreshold(0.2, 0.1, 0.31),),
        "training_data": {"datasets": {"countries": {"splits": ["train"]}}},
        "metrics": {"val": {"auroc": 0.8}},
    }
    return WrapperManifest(**(fields | changes))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    manifest = _manifest()
    rng = np.random.default_rng(0)
    shapes = manifest.config.weight_shapes()
    weights = {name: rng.standard_normal(shape).astype(np.float32) * 0.1 for name, shape in shapes.items()}
    return save_wrapper(tmp_path / "w", weights, manifest)


def test_the_shipped_manifest_loads_and_writes_back_unchanged():
    wrapper = Wrapper.open("default", model="smollm2-135m")
    assert wrapper.source == SHIPPED
    assert wrapper.manifest.to_dict() == json.loads((SHIPPED / "manifest.json").read_text())
    assert wrapper.manifest.modifier == Modifier("doubter", 0.0)


def test_default_needs_a_model_with_a_shipped_wrapper(tmp_path: Path):
    with pytest.raises(MetaspiderError, match="needs a model"):
        resolve_wrapper_path("default", None)
    with pytest.raises(MetaspiderError, match="no default wrapper is shipped for model 'qwen2.5-coder-0.5b'"):
        resolve_wrapper_path("default", "qwen2.5-coder-0.5b")
    with pytest.raises(MetaspiderError, match="does not exist"):
        Wrapper.open(tmp_path / "missing")


def test_folder_save_and_sidecar_export_round_trip(folder: Path, tmp_path: Path):
    wrapper = Wrapper.open(folder)
    copy = Wrapper.open(wrapper.save(tmp_path / "copy"))
    assert copy.manifest == wrapper.manifest
    assert all(np.array_equal(copy.weights[k], wrapper.weights[k]) for k in wrapper.weights)
    sidecar = Wrapper.open(wrapper.export(tmp_path / "w.gguf", "f32"))
    assert sidecar.is_sidecar and not wrapper.is_sidecar
    assert sidecar.manifest == wrapper.manifest
    assert all(np.array_equal(sidecar.weights[k], wrapper.weights[k]) for k in wrapper.weights)


def test_sidecar_metadata_is_derived_from_the_manifest_with_the_documented_keys(folder: Path, tmp_path: Path):
    manifest = Wrapper.open(folder).manifest
    fields = sidecar_fields(manifest)
    assert fields["base.fingerprint"] == FINGERPRINT and fields["d_model"] == 64
    assert fields["read_layers"] == [1, 2] and fields["modifier.gain"] == 1.25
    assert json.loads(fields["thresholds.calibrated"]) == [{"max_risk": 0.2, "delta": 0.1, "threshold": 0.31}]
    reader = gguf.GGUFReader(Wrapper.open(folder).export(tmp_path / "w.gguf"))
    keys = {name for name in reader.fields if name.startswith("metaspider.")}
    assert keys == {"metaspider.format_version"} | {f"metaspider.{key}" for key in fields}
    assert manifest_from_fields({f"metaspider.{k}": v for k, v in fields.items()}) == manifest


def test_runtime_follows_the_backbone_kind_and_checks_the_fingerprint(folder: Path, tmp_path: Path):
    wrapper = Wrapper.open(folder)
    llama = SimpleNamespace(name="x", fingerprint=FINGERPRINT, backend="llama_cpp", d_model=64, n_layers=5)
    runtime = wrapper.runtime(llama)
    assert isinstance(runtime, NumpyRuntime) and runtime.manifest.answer_below == 0.42
    u = runtime.read(np.ones((2, 64), dtype=np.float32)).u
    assert 0.0 <= u <= 1.0
    with pytest.raises(MetaspiderError, match="fingerprint"):
        wrapper.runtime(
            SimpleNamespace(name="x", fingerprint="sha256:other", backend="llama_cpp", d_model=64, n_layers=5)
        )
    sidecar = wrapper.export(tmp_path / "w.gguf")
    with pytest.raises(MetaspiderError, match="runs on llama_cpp"):
        load_wrapper(
            SimpleNamespace(name="x", fingerprint=FINGERPRINT, backend="torch", d_model=64, n_layers=5), sidecar
        )


def test_a_manifest_is_read_without_reading_the_weights(folder: Path):
    (folder / "weights.safetensors").unlink()
    wrapper = Wrapper.open(folder)
    assert wrapper.manifest.calibrated[0].threshold == 0.31
    with pytest.raises(MetaspiderError, match="weights not found"):
        _ = wrapper.weights


def test_deploy_export_takes_default_with_a_model(tmp_path: Path):
    from metaspider.deploy.cli import deploy_app

    out = tmp_path / "doubter.gguf"
    result = CliRunner().invoke(deploy_app, ["export", "default", "--model", "smollm2-135m", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Wrapper.open(out).manifest == Wrapper.open("default", model="smollm2-135m").manifest
    failed = CliRunner().invoke(deploy_app, ["export", "default", "--out", str(tmp_path / "x.gguf")])
    assert failed.exit_code != 0 and "needs a model" in str(failed.exception)


def _extended_folder(tmp_path: Path, support: bool = True, hybrid: bool = False) -> Path:
    config = WrapperConfig(
        d_model=64,
        read_layers=(1, 2),
        inject_layers=(2, 3),
        bottleneck=32,
        n_heads=2,
        support=support,
        hybrid=hybrid,
        post_layers=(0, 1, 2),
    )
    manifest = _manifest(config=config)
    rng = np.random.default_rng(0)
    weights = {
        name: rng.standard_normal(shape).astype(np.float32) * 0.1 for name, shape in config.weight_shapes().items()
    }
    if support:
        weights["support.precision"] = np.eye(32, dtype=np.float32)
        weights["support.step"] = np.array([2.0, 0.5], dtype=np.float32)
    if hybrid:
        weights["hybrid.stack"] = np.array([0.8, 2.0, 0.5, -1.0], dtype=np.float32)
    weights["post.scale"] = np.ones((3, 64), dtype=np.float32)
    return save_wrapper(tmp_path / f"extended-{support}-{hybrid}", weights, manifest)


def test_support_and_post_head_travel_in_the_folder_and_the_sidecar_and_agree_on_both_runtimes(tmp_path: Path):
    wrapper = Wrapper.open(_extended_folder(tmp_path))
    assert {"support.mean", "fallback.coef", "post.stack", "fallback_post.intercept"} <= set(wrapper.weights)
    sidecars = [Wrapper.open(wrapper.export(tmp_path / f"w-{kind}.gguf", kind)) for kind in ("f32", "q8_0")]
    for sidecar in sidecars:
        assert sidecar.manifest == wrapper.manifest
        for name in ("support.precision", "post.mean", "post.coef"):  # never quantised
            assert np.array_equal(sidecar.weights[name], wrapper.weights[name])
    llama = SimpleNamespace(name="x", fingerprint=FINGERPRINT, backend="llama_cpp", d_model=64, n_layers=5)
    torch_ = SimpleNamespace(name="x", fingerprint=FINGERPRINT, backend="torch", d_model=64, n_layers=5)
    rng = np.random.default_rng(1)
    acts, post = rng.standard_normal((2, 64)).astype(np.float32), rng.standard_normal((3, 64)).astype(np.float32)
    readings = []
    for runtime in (wrapper.runtime(llama), wrapper.runtime(torch_), sidecars[0].runtime(llama)):
        reading = runtime.read(acts, (0.4, 1.5))
        readings.append((reading.u, reading.support, runtime.read_post(post, 0.6, 0.9, reading.support)))
    for got in readings[1:]:
        assert np.allclose(got, readings[0], atol=1e-5)
    u, support, u_post = readings[0]
    assert 0 < support < 1 and 0 < u < 1 and 0 < u_post < 1
    bare = wrapper.runtime(llama).read(acts)  # without the first token's values: u unblended, support still known
    assert bare.support == pytest.approx(support) and bare.u != pytest.approx(u)


@pytest.mark.parametrize("support", [True, False])
def test_the_hybrid_head_travels_in_the_sidecar_and_reads_the_first_token_on_both_runtimes(
    tmp_path: Path, support: bool
):
    wrapper = Wrapper.open(_extended_folder(tmp_path, support=support, hybrid=True))
    assert wrapper.manifest.config.hybrid and wrapper.manifest.config.reads_first_token
    sidecar = Wrapper.open(wrapper.export(tmp_path / "w.gguf", "q8_0"))
    assert sidecar.manifest == wrapper.manifest
    assert np.array_equal(sidecar.weights["hybrid.stack"], wrapper.weights["hybrid.stack"])
    llama = SimpleNamespace(name="x", fingerprint=FINGERPRINT, backend="llama_cpp", d_model=64, n_layers=5)
    torch_ = SimpleNamespace(name="x", fingerprint=FINGERPRINT, backend="torch", d_model=64, n_layers=5)
    acts = np.random.default_rng(2).standard_normal((2, 64)).astype(np.float32)
    runtimes = (wrapper.runtime(llama), wrapper.runtime(torch_), sidecar.runtime(llama))
    sure, unsure = ([r.read(acts, first).u for r in runtimes] for first in ((0.95, 0.2), (0.2, 3.0)))
    assert np.allclose(sure, sure[0], atol=1e-5) and np.allclose(unsure, unsure[0], atol=1e-5)
    # The stack's weights on 1 − max-softmax probability and entropy are positive: a flat first token raises u.
    assert unsure[0] > sure[0]
    assert (runtimes[0].read(acts).support is None) == (not support)


def test_a_wrapper_without_the_extras_reports_no_support_and_no_post(folder: Path):
    runtime = Wrapper.open(folder).runtime(
        SimpleNamespace(name="x", fingerprint=FINGERPRINT, backend="llama_cpp", d_model=64, n_layers=5)
    )
    reading = runtime.read(np.ones((2, 64), dtype=np.float32), (0.5, 1.0))
    assert reading.support is None and runtime.read_post(np.ones((3, 64)), 0.5, 1.0, None) is None
