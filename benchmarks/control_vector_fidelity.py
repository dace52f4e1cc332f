"""How much of the pooled injection the prompt-independent control vector keeps.

For held-out (test) questions, compare the sidecar's per-prompt pooled offsets (what `metaspider`
injects after pass 1) with the exported control vector (what `llama-cli --control-vector` injects,
built from the mean cognitive token of 100 calib questions): cosine and relative error per injection
layer, at u' = 1 (the vector's default) and at each prompt's own u' (the runtime's modifier applied to
its u). `bias_only` is the alternative we rejected: each cognitive token replaced by its LayerNorm bias
(no data needed at export). Runs on llama.cpp, no torch.

    PYTHONPATH=. python benchmarks/control_vector_fidelity.py --sidecar FILE.gguf [--limit 50]
    PYTHONPATH=. python benchmarks/control_vector_fidelity.py --pooled-copy-of WRAPPER_FOLDER

`--pooled-copy-of` runs a `tokens` wrapper's trained weights with the pooled math (the weights do not
depend on the mode): the stand-in while no trained `pooled` wrapper exists.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

from metaspider.core.backbones.llama_cpp import LlamaCppBackbone
from metaspider.core.wrapper.folder import load_manifest, load_weights_numpy
from metaspider.core.wrapper.runtime import NumpyRuntime
from metaspider.core.wrapper.sidecar import write_sidecar
from metaspider.deploy.control_vector import CALIBRATION_PROMPTS, mean_cognitive_token, prompt_independent_offsets
from metaspider.loom.datasets import load_items, split_items, to_messages

MODEL = "smollm2-135m"
RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sidecar")
    source.add_argument("--pooled-copy-of", type=Path)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    backbone = LlamaCppBackbone(MODEL, n_threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        sidecar = args.sidecar or _pooled_sidecar(args.pooled_copy_of, Path(tmp) / "pooled.gguf")
        runtime = NumpyRuntime(sidecar, backbone.fingerprint)
    manifest = runtime.manifest
    calib = [to_messages(item) for item in split_items(load_items("countries"), "calib")[:CALIBRATION_PROMPTS]]
    mean = mean_cognitive_token(backbone, runtime, calib)
    vector = prompt_independent_offsets(runtime.wrapper, mean, 1.0, manifest.gain)
    bias_only = prompt_independent_offsets(runtime.wrapper, runtime.wrapper.w["shared_norm.bias"], 1.0, manifest.gain)
    rows = {"full_doubt": [], "own_u": [], "bias_only_full_doubt": []}
    for item in split_items(load_items("countries"), "test")[: args.limit]:
        ids = backbone.chat_ids(to_messages(item))
        reading = runtime.read(backbone.capture(ids, runtime.config.read_layers)[:, 0, :])
        own = manifest.modifier.apply(reading.u)
        cases = (
            ("full_doubt", 1.0, vector),
            ("own_u", reading.u if own is None else own, vector),
            ("bias_only_full_doubt", 1.0, bias_only),
        )
        for key, u_mod, fixed in cases:
            memory = runtime.wrapper.memory(reading.tokens, float(u_mod))
            offsets = runtime.wrapper.pooled_offsets(memory, manifest.gain)
            rows[key].append({layer: _compare(offsets[layer], fixed[layer]) for layer in offsets})
    report = {
        "sidecar": args.sidecar or f"{args.pooled_copy_of.name}'s weights with injection set to pooled",
        "n": len(rows["full_doubt"]),
        "control_vector_u": 1.0,
        "calibration_prompts": len(calib),
        **{key: _summarise(values) for key, values in rows.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "control_vector_fidelity.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _pooled_sidecar(folder: Path, out: Path) -> Path:
    manifest = load_manifest(folder)
    pooled = manifest.replace(config=manifest.config.replace(injection="pooled"))
    return write_sidecar(out, pooled, load_weights_numpy(folder), folder.name)


def _compare(per_prompt: np.ndarray, fixed: np.ndarray) -> tuple[float, float]:
    cosine = float(per_prompt @ fixed / (np.linalg.norm(per_prompt) * np.linalg.norm(fixed)))
    relative_error = float(np.linalg.norm(per_prompt - fixed) / np.linalg.norm(per_prompt))
    return cosine, relative_error


def _summarise(values: list[dict[int, tuple[float, float]]]) -> dict:
    layers = sorted(values[0])
    return {
        str(layer): {
            "cosine_median": statistics.median(v[layer][0] for v in values),
            "cosine_min": min(v[layer][0] for v in values),
            "relative_error_median": statistics.median(v[layer][1] for v in values),
        }
        for layer in layers
    }


if __name__ == "__main__":
    main()
