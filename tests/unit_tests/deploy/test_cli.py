"""`metaspider deploy export` on tiny wrappers, and loading its sidecar (no model file)."""

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from metaspider.core.wrapper.handle import load_wrapper
from metaspider.core.wrapper.runtime import NumpyRuntime
from metaspider.deploy.cli import deploy_app
from metaspider.errors import MetaspiderError


def test_export_refuses_a_control_vector_for_tokens_wrappers(tiny_tokens_wrapper, tmp_path):
    result = CliRunner().invoke(
        deploy_app,
        [
            "export",
            str(tiny_tokens_wrapper),
            "--out",
            str(tmp_path / "w.gguf"),
            "--control-vector",
            str(tmp_path / "cv.gguf"),
        ],
    )
    assert isinstance(result.exception, MetaspiderError) and "only pooled wrappers" in str(result.exception)
    assert (tmp_path / "w.gguf").exists() and not (tmp_path / "cv.gguf").exists()


def test_export_of_a_missing_folder_fails_with_the_path(tmp_path):
    result = CliRunner().invoke(deploy_app, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "w.gguf")])
    assert isinstance(result.exception, MetaspiderError)
    assert "nope" in str(result.exception) and not (tmp_path / "w.gguf").exists()


def test_pipeline_loads_a_sidecar_on_llama_cpp_only(tiny_wrapper, tiny_fingerprint, tmp_path):
    out = tmp_path / "w.gguf"
    CliRunner().invoke(deploy_app, ["export", str(tiny_wrapper), "--out", str(out)])
    backbone = SimpleNamespace(name="smollm2-135m", fingerprint=tiny_fingerprint, d_model=64, n_layers=5)
    runtime = load_wrapper(backbone, out, "llama_cpp")
    assert isinstance(runtime, NumpyRuntime) and runtime.manifest.answer_below == 0.42
    with pytest.raises(MetaspiderError, match="runs on llama_cpp"):
        load_wrapper(backbone, out, "torch")
    with pytest.raises(MetaspiderError, match="sha256:other"):
        load_wrapper(
            SimpleNamespace(name="smollm2-135m", fingerprint="sha256:other", d_model=64, n_layers=5), out, "llama_cpp"
        )
