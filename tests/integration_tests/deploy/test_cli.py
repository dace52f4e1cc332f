"""`metaspider deploy export` with a control vector fitted on the default model's calibration prompts."""

import json

from typer.testing import CliRunner

from metaspider.core.wrapper.sidecar import read_sidecar
from metaspider.deploy.cli import deploy_app
from metaspider.deploy.control_vector import read_control_vector


def test_export_writes_sidecar_and_control_vector(model_wrapper, tmp_path):
    questions = tmp_path / "q.jsonl"
    rows = [{"id": i, "question": f"What is {i} + {i}?", "answers": [str(2 * i)]} for i in range(10)]
    questions.write_text("\n".join(json.dumps(row) for row in rows))
    out, cv = tmp_path / "w.gguf", tmp_path / "cv.gguf"
    result = CliRunner().invoke(
        deploy_app,
        [
            "export",
            str(model_wrapper("pooled", "generated")),
            "--out",
            str(out),
            "--control-vector",
            str(cv),
            "--calibration",
            str(questions),
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "pooled/generated" in result.output and "--control-vector" in result.output
    assert read_sidecar(out).manifest.config.inject_layers == (26, 27, 28)
    assert sorted(read_control_vector(cv)) == [26, 27, 28]
