"""The deploy path (export, load the sidecar, assess, generate) in a Python where `import torch` fails."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = r"""
import importlib.abc, json, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here (blocked by the test)")
        return None

sys.meta_path.insert(0, NoTorch())
try:
    import torch
    blocked = False
except ImportError:
    blocked = True

from metaspider.core.backbones.base import SamplingParams
from metaspider.core.pipeline import Pipeline
from metaspider.core.backbones import load_backbone
from metaspider.core.wrapper.handle import load_wrapper
from metaspider.deploy.cli import deploy_app

backbone = load_backbone("smollm2-135m", "llama_cpp", n_ctx=512, n_threads=1)
results = {}
for folder, sidecar in zip(sys.argv[1::2], sys.argv[2::2]):
    deploy_app(["export", folder, "--out", sidecar], standalone_mode=False)
    pipeline = Pipeline(backbone, load_wrapper(backbone, sidecar, "llama_cpp"))
    result = pipeline.run([{"role": "user", "content": "What is the capital of Peru?"}], SamplingParams(max_tokens=8))
    results[sidecar] = {"text": result.text, "n": result.end.n_generated, **result.uncertainty.as_dict()}
torch_loaded = any(m == "torch" or m.startswith("torch.") for m in sys.modules)
print(json.dumps({"blocked": blocked, "torch_loaded": torch_loaded, "results": results}))
"""


def test_sidecar_answers_with_an_uncertainty_without_torch(model_wrapper, tmp_path):
    args = []
    for injection in ("tokens", "pooled"):
        args += [str(model_wrapper(injection, "generated")), str(tmp_path / f"{injection}.gguf")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["blocked"] and not report["torch_loaded"]
    assert len(report["results"]) == 2
    for result in report["results"].values():
        assert 0.0 <= result["score"] <= 1.0
        assert result["decision"] in ("answer", "refuse")
        assert result["threshold"] == 0.42 and result["modifier"] == "doubter"
        assert result["n"] >= 1 and result["text"].strip()
