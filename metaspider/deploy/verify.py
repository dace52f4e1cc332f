"""Parity of a deployed sidecar with the Torch wrapper: the same wrapper on two backends, same prompts.

Both sides run the sidecar's own weights (the Torch side loads them into `MetaWrapper`), so what is
measured is the backend difference: llama.cpp's quantised kernels and the NumPy wrapper vs transformers
on the dequantised GGUF and the torch wrapper. Items come from the held-out `test` split."""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from metaspider.core.backbones.base import SamplingParams, TokenOut
from metaspider.core.backbones.chat_template import Message
from metaspider.core.pipeline import Pipeline
from metaspider.core.backbones import load_backbone
from metaspider.core.wrapper.folder import save_wrapper
from metaspider.core.wrapper.runtime import NumpyRuntime
from metaspider.core.wrapper.sidecar import read_sidecar
from metaspider.errors import MetaspiderError
from metaspider.loom.datasets import load_items, split_items, to_messages

TARGETS = {"u_abs_diff_median": 0.02, "decision_agreement": 0.95}
"""The deploy issue's parity bar: the median |Δu| at most this, the decisions agreeing at least this often."""
MAX_TOKENS = 32


@dataclass
class ItemParity:
    id: str
    activation_cosine: float
    u_torch: float
    u_llama: float
    decision_torch: str
    decision_llama: str
    text_torch: str
    text_llama: str


@dataclass
class ParityReport:
    model: str
    sidecar: str
    dataset: str
    split: str
    n: int
    injection: str
    positions: str
    threshold: float | None
    max_tokens: int
    activation_cosine_min: float
    u_abs_diff_median: float
    u_abs_diff_max: float
    decision_agreement: float
    text_agreement: float
    passed: bool
    items: list[ItemParity] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def verify(
    model: str, sidecar: str | Path, dataset: str = "countries", limit: int = 50, n_threads: int | None = None
) -> ParityReport:
    items = split_items(load_items(dataset), "test")[:limit]
    if not items:
        raise MetaspiderError(f"data set {dataset!r} has no items in its test split")
    backbone = load_backbone(model, "llama_cpp", n_threads=n_threads)
    llama = Pipeline(backbone, NumpyRuntime(sidecar, backbone.fingerprint))
    torch_pipeline = _torch_pipeline(model, sidecar, n_threads)
    rows = [_compare(item.id, to_messages(item), torch_pipeline, llama) for item in items]
    return _report(model, sidecar, dataset, llama, rows)


def _torch_pipeline(model: str, sidecar: str | Path, n_threads: int | None) -> Pipeline:
    """The Torch wrapper from the sidecar's weights, through a temporary wrapper folder (the one format
    `TorchRuntime` reads)."""
    from metaspider.core.wrapper.runtime import TorchRuntime

    backbone = load_backbone(model, "torch", n_threads=n_threads)
    content = read_sidecar(sidecar)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_wrapper(Path(tmp) / content.name, content.weights, content.manifest)
        runtime = TorchRuntime(folder, backbone.fingerprint)
    return Pipeline(backbone, runtime)


def _compare(item_id: str, messages: list[Message], torch_side: Pipeline, llama_side: Pipeline) -> ItemParity:
    layers = llama_side.wrapper.config.read_layers
    sides = []
    for pipeline in (torch_side, llama_side):
        with pipeline.backbone.lock:
            assessment = pipeline.assess(messages)
            acts = pipeline.backbone.capture(assessment.ids, layers)[:, 0, :]
            tokens = pipeline.stream(assessment, SamplingParams(max_tokens=MAX_TOKENS))
            text = "".join(t.text for t in tokens if isinstance(t, TokenOut))
        sides.append((assessment, acts, text))
    (t_assess, t_acts, t_text), (l_assess, l_acts, l_text) = sides
    if t_assess.ids != l_assess.ids:
        raise MetaspiderError(
            f"item {item_id}: Torch and llama.cpp tokenise the prompt differently; parity is meaningless"
        )
    return ItemParity(
        id=item_id,
        activation_cosine=_min_cosine(t_acts, l_acts),
        u_torch=float(t_assess.uncertainty.score),
        u_llama=float(l_assess.uncertainty.score),
        decision_torch=t_assess.uncertainty.decision,
        decision_llama=l_assess.uncertainty.decision,
        text_torch=t_text,
        text_llama=l_text,
    )


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest per-layer cosine of two [layers, d] activation sets."""
    dots = (a * b).sum(axis=1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float((dots / np.maximum(norms, 1e-12)).min())


def _report(model: str, sidecar: str | Path, dataset: str, llama: Pipeline, rows: list[ItemParity]) -> ParityReport:
    diffs = [abs(r.u_torch - r.u_llama) for r in rows]
    config = llama.wrapper.config
    report = ParityReport(
        model=model,
        sidecar=str(sidecar),
        dataset=dataset,
        split="test",
        n=len(rows),
        injection=config.injection,
        positions=config.positions,
        threshold=llama.threshold,
        max_tokens=MAX_TOKENS,
        activation_cosine_min=min(r.activation_cosine for r in rows),
        u_abs_diff_median=float(statistics.median(diffs)),
        u_abs_diff_max=max(diffs),
        decision_agreement=sum(r.decision_torch == r.decision_llama for r in rows) / len(rows),
        text_agreement=sum(r.text_torch == r.text_llama for r in rows) / len(rows),
        passed=False,
        items=rows,
    )
    report.passed = (
        report.u_abs_diff_median <= TARGETS["u_abs_diff_median"]
        and report.decision_agreement >= TARGETS["decision_agreement"]
    )
    return report
