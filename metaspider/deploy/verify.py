"""Parity of a deployed sidecar with the Torch wrapper: the same wrapper on two backends, same prompts.

Both sides run the sidecar's own weights (the Torch side loads them into `MetaWrapper`), so what is
measured is the backend difference: llama.cpp's quantised kernels and the NumPy wrapper vs transformers
on the dequantised GGUF and the torch wrapper. The caller picks the prompts (the CLI: a data set's held-out
`test` split), so deploying needs no training code."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from metaspider.core.backbones import load_backbone
from metaspider.core.backbones.base import SamplingParams, TokenOut
from metaspider.core.backbones.chat_template import Message
from metaspider.core.numerics import row_cosines
from metaspider.core.pipeline import Pipeline
from metaspider.core.wrapper.handle import Wrapper
from metaspider.errors import MetaspiderError

TARGETS = {"u_abs_diff_median": 0.02, "decision_agreement": 0.95}
"""The parity bar a deployed wrapper must meet: the median |Δu| at most this, the decisions agreeing at least this
often."""
MAX_TOKENS = 32


@dataclass
class ItemParity:
    """One prompt on both backends: how close the activations and u are, and what each side decided and said."""

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
    """The parity of one deployed wrapper over a set of prompts, with the targets' verdict in `passed`."""

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
        """The JSON form `metaspider deploy verify --json` prints."""
        return asdict(self)


Prompt = tuple[str, list[Message]]
"""(item id, chat messages): what both backends are asked."""


def verify(
    model: str,
    wrapper: str | Path | Wrapper,
    prompts: Sequence[Prompt],
    n_threads: int | None = None,
    dataset: str = "",
    split: str = "test",
) -> ParityReport:
    """Run the same deployed wrapper on llama.cpp (NumPy) and on Torch over `prompts` and compare activations,
    u, decisions and text: the check that a sidecar behaves as the wrapper it was exported from.

    `wrapper` is a sidecar, a wrapper folder or "default"; a folder is first exported to a temporary Q8_0
    sidecar, so both sides always run the weights that ship. `dataset` and `split` only label the report."""
    if not prompts:
        raise MetaspiderError(f"no prompts to verify (data set {dataset!r}, split {split!r} is empty)")
    opened = wrapper if isinstance(wrapper, Wrapper) else Wrapper.open(wrapper, model)
    if not opened.is_sidecar:
        with tempfile.TemporaryDirectory() as tmp:
            opened = Wrapper.open(opened.export(Path(tmp) / f"{opened.name}.gguf"))
    backbone = load_backbone(model, "llama_cpp", n_threads=n_threads)
    llama = Pipeline(backbone, opened.runtime(backbone))
    torch_backbone = load_backbone(model, "torch", n_threads=n_threads)
    torch_pipeline = Pipeline(torch_backbone, opened.runtime(torch_backbone))
    rows = [_compare(item_id, messages, torch_pipeline, llama) for item_id, messages in prompts]
    return _report(
        model, str(wrapper if not isinstance(wrapper, Wrapper) else opened.source), dataset, split, llama, rows
    )


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
    return float(row_cosines(a, b).min())


def _report(
    model: str, sidecar: str, dataset: str, split: str, llama: Pipeline, rows: list[ItemParity]
) -> ParityReport:
    diffs = [abs(r.u_torch - r.u_llama) for r in rows]
    config = llama.wrapper.config
    report = ParityReport(
        model=model,
        sidecar=sidecar,
        dataset=dataset,
        split=split,
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
