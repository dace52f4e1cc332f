"""Size and weight error of the shipped wrapper's GGUF sidecar, against the base model's GGUF.

Exports the wrapper shipped for the default model as Q8_0 (the default) and as F32, and reports each
file's size, its share of the Q4_1 base model file, and the relative error Q8_0 puts on the quantised
matrices (||q8 - f32|| / ||f32|| per tensor). No model is run; the base file is fetched if not cached.

    PYTHONPATH=. python benchmarks/sidecar_size.py   # -> benchmarks/results/sidecar_size.json
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

from metaspider import Wrapper
from metaspider.core.models.registry import DEFAULT_MODEL, resolve

RESULT = Path(__file__).resolve().parent / "results" / "sidecar_size.json"


def main() -> None:
    """Export both storage types into a temporary folder and write the figures."""
    wrapper = Wrapper.open("default", model=DEFAULT_MODEL)
    base_bytes = resolve(DEFAULT_MODEL).stat().st_size
    report: dict = {
        "command": "PYTHONPATH=. python benchmarks/sidecar_size.py",
        "model": DEFAULT_MODEL,
        "base_model_bytes": base_bytes,
    }
    with tempfile.TemporaryDirectory() as tmp:
        read_back = {}
        for weight_type in ("q8_0", "f32"):
            path = wrapper.export(Path(tmp) / f"{weight_type}.gguf", weight_type)
            size = path.stat().st_size
            report[weight_type] = {"bytes": size, "share_of_base_model": size / base_bytes}
            read_back[weight_type] = Wrapper.open(path).weights
    errors = {
        name: float(np.linalg.norm(read_back["q8_0"][name] - exact) / np.linalg.norm(exact))
        for name, exact in read_back["f32"].items()
        if not np.array_equal(read_back["q8_0"][name], exact)
    }
    report["q8_0"] |= {
        "quantised_tensors": len(errors),
        "relative_error_median": statistics.median(errors.values()),
        "relative_error_max": max(errors.values()),
    }
    RESULT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
