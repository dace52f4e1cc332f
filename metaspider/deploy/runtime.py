"""A wrapper runtime built from the GGUF sidecar alone: what a deployment needs, with no torch.

It is `NumpyRuntime` with another source: the same `NumpyWrapper` math, the same `read` and
`injection`. An `f32` sidecar gives exactly the folder's u and offsets; a `q8_0` one differs by the
quantisation of its matrices (|Δu| about 0.002 on a wrapper with a steep calibration slope).
On `LlamaCppBackbone`, `pooled` injections become `llama_set_adapter_cvec` control vectors and `tokens`
injections run in the evaluation callback."""

from __future__ import annotations

from pathlib import Path

from threadpoolctl import threadpool_limits

from metaspider.core.wrapper_file import check_fingerprint
from metaspider.core.wrapper_numpy import NumpyWrapper
from metaspider.core.wrapper_runtime import NumpyRuntime
from metaspider.deploy.sidecar import read_sidecar


class SidecarRuntime(NumpyRuntime):
    """`NumpyRuntime` whose weights and manifest come from a sidecar (its own __init__ reads a folder).

    Building one limits BLAS to one thread for the whole process: the wrapper's products are one row wide,
    and OpenBLAS's worker threads spin against llama.cpp's on the same cores (measured on 2 busy cores:
    13 ms per 576×128 product, 0.1 ms single-threaded; tokens-mode decode 5× slower)."""

    def __init__(self, path: str | Path, fingerprint: str):
        threadpool_limits(1, user_api="blas")
        sidecar = read_sidecar(path)
        check_fingerprint(sidecar.manifest, fingerprint, path)
        self.path = Path(path)
        self.manifest = sidecar.manifest
        self.config = sidecar.manifest.config
        self.wrapper = NumpyWrapper(sidecar.weights, self.config)
