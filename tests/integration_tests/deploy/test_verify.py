import json

import pytest
from typer.testing import CliRunner

from metaspider.core.wrapper.sidecar import export_sidecar
from metaspider.deploy.cli import deploy_app


@pytest.mark.slow
def test_verify_reports_parity_between_torch_and_llama_cpp(model_wrapper, tmp_path):
    sidecar = export_sidecar(model_wrapper("tokens", "generated", up_std=0.05), tmp_path / "t.gguf")
    result = CliRunner().invoke(
        deploy_app,
        ["verify", "--model", "smollm2-135m", "--sidecar", str(sidecar), "--limit", "3", "--threads", "1", "--json"],
    )
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["n"] == 3 and report["split"] == "test" and report["injection"] == "tokens"
    assert report["activation_cosine_min"] > 0.99
    assert report["u_abs_diff_max"] < 0.02
    assert report["decision_agreement"] == 1.0 and report["passed"]
    assert result.exit_code == 0
    assert {"u_torch", "u_llama", "text_torch", "text_llama"} <= set(report["items"][0])
