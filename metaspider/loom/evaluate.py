"""`eval`: the wrapper against the baselines on one split, at matched coverage.

Methods rank the same questions by doubt:
- `msp`: 1 − mean probability of the answer's tokens; `entropy`: mean predictive entropy; `msp_first`,
  `entropy_first`: the same of the first answer token; `p_true`: 1 − P(True) of the model judging its own
  answer. All Platt-scaled on the run's val split when it has one, so their ECE and Brier are comparable
  with u's (ranking metrics do not change); a baseline the collect did not store is left out.
- `wrapper`: u from pass 1, read-only (blended toward its fallback where support is low, for a wrapper
  with a support model: the report then gives the mean `support`).
- `wrapper_post`: u_post of the wrapper's post-answer head, for a wrapper that has one.
- `doubter`: pass 2 with the injection (the wrapper's modifier and gain); a reply is a refusal when
  `is_refusal` says so, the same detector training's targets were written for. Its answers are judged
  on their own text. For its curve, refusals rank after every answer (by u'), and a refused question
  counts with the pass-1 answer it would have given."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from metaspider.core.backbones.base import TokenOut
from metaspider.core.numerics import fit_platt
from metaspider.core.pipeline import Pipeline
from metaspider.core.wrapper.folder import WEIGHTS_FILE, WrapperManifest, load_manifest
from metaspider.core.wrapper.handle import Wrapper
from metaspider.core.wrapper.runtime import NumpyRuntime
from metaspider.errors import MetaspiderError
from metaspider.loom import metrics
from metaspider.loom.backbones import llama_backbone
from metaspider.loom.collect import ANSWER_PARAMS, collect
from metaspider.loom.datasets import Item, is_correct, load_items, sample_items, split_items, to_messages
from metaspider.loom.progress import progress_bar
from metaspider.loom.ray_collect import RayOptions, ray_collect
from metaspider.loom.report import json_safe, targets, write_report
from metaspider.loom.run_folder import Collected, RunConfig, RunFolder, dataset_key
from metaspider.loom.scoring import is_refusal
from metaspider.loom.wrapper_scores import wrapper_scores

COVERAGES = ("0.25", "0.5", "0.75")


@dataclass(frozen=True)
class DoubterReplies:
    """The Doubter's pass-2 replies to each evaluated question: text, whether it refused, whether the text is
    right, and the u' fed back."""

    text: list[str]
    refused: np.ndarray
    correct: np.ndarray
    """Correctness of each reply's own text (False for refusals)."""
    u_mod: np.ndarray


def evaluate(
    run: RunFolder,
    wrapper_dir: Path,
    dataset: str,
    split: str,
    limit: int | None = None,
    threads: int | None = None,
    ray: RayOptions | None = None,
) -> dict[str, Any]:
    """Collect what is missing (on Ray workers when `ray` is given), score every method, write report.json /
    report.md / risk_coverage.png."""
    manifest = load_manifest(wrapper_dir)
    config = _run_config(run, manifest)
    items = sample_items(split_items(load_items(dataset), split), limit)
    backbone = llama_backbone(config.model, threads)
    if not run.stored_ids(dataset, split) >= {item.id for item in items}:
        if ray is not None:
            ray_collect(run, config.model, dataset, split, limit, ray, config)
        else:
            collect(run, backbone, config, dataset, split, limit)
    collected = _select(run.load(dataset, split), items)
    data = collected.read_layers(config.read_layers, manifest.config.read_layers)
    correct = data.labels("correct")
    scores = wrapper_scores(wrapper_dir, manifest.base_fingerprint, collected, config.read_layers)
    u = scores.u
    baselines, baseline_fit = _baselines(run, dataset, split, data)
    msp_u, entropy_u = baselines.pop("msp"), baselines.pop("entropy")
    replies = (
        doubter_replies(run, backbone, wrapper_dir, manifest, dataset, split, items) if has_stage_b(manifest) else None
    )
    report = build_report(correct, msp_u, entropy_u, u, replies, manifest)
    if not np.isnan(scores.u_post).all():
        baselines["wrapper_post"] = scores.u_post
    raw = {name: _doubt(data, *BASELINES[name]) for name in baselines if name in BASELINES}
    report["methods"] |= {
        name: _ranking(raw.get(name, score)[keep], correct[keep], with_auroc=True)
        | _calibration(score[keep], correct[keep])
        | {"n": int(keep.sum())}
        for name, score in baselines.items()
        if (keep := ~np.isnan(score)).any()
    }
    if not np.isnan(scores.support).all():
        report["support"] = {"mean": float(np.mean(scores.support)), "min": float(np.min(scores.support))}
    report |= {
        "model": config.model,
        "wrapper": str(wrapper_dir),
        "dataset": dataset,
        "split": split,
        "baselines_calibrated_on": baseline_fit,
        **_domain(manifest, dataset),
    }
    curves = {
        "msp": metrics.risk_coverage_curve(msp_u, correct),
        "entropy": metrics.risk_coverage_curve(entropy_u, correct),
        "wrapper (u)": metrics.risk_coverage_curve(u, correct),
    }
    if replies is not None:
        curves["doubter (text)"] = metrics.risk_coverage_curve(*_doubter_ranking(replies, correct))
    report["targets"] = targets(report)
    write_report(run.path, report, curves)
    return report


def has_stage_b(manifest: WrapperManifest) -> bool:
    """A wrapper trained by stage A alone has untrained heads: its pass 2 would be noise, not refusals."""
    return "stage_b" in manifest.training_data


def record_headline(folder: Path, report: dict[str, Any]) -> None:
    """Store an evaluation's headline figures in the wrapper folder's manifest (`metrics`, keyed by data set and
    split), so the wrapper carries them where it goes. Only on request (`metaloom eval --record`): evaluating
    never changes a wrapper by itself."""
    wrapper = Wrapper.open(folder)
    if wrapper.is_sidecar:
        raise MetaspiderError(f"--record writes into a wrapper folder's manifest, not into the sidecar {folder}")
    manifest = wrapper.manifest
    methods = report["methods"]
    doubter = methods["doubter"]
    headline = {
        "n": report["n"],
        "base_accuracy": report["base_accuracy"],
        "auroc": {name: methods[name]["auroc"] for name in ("msp", "entropy", "wrapper")},
        "doubter": doubter
        and {
            key: doubter[key]
            for key in ("coverage", "selective_accuracy_at_own_coverage", "msp_selective_accuracy_at_same_coverage")
        },
    }
    key = f"{dataset_key(report['dataset'])}/{report['split']}"
    wrapper.with_manifest(metrics={**manifest.metrics, key: json_safe(headline)}).save(folder)


def build_report(
    correct: np.ndarray,
    msp_u: np.ndarray,
    entropy_u: np.ndarray,
    u: np.ndarray,
    replies: DoubterReplies | None,
    manifest: WrapperManifest,
) -> dict[str, Any]:
    """`replies` None (a stage-A wrapper): the report has no `doubter` method, only the read-only u."""
    wrapper = _ranking(u, correct, with_auroc=True) | {
        "threshold": manifest.answer_below,
        "coverage_at_threshold": metrics.coverage(u, manifest.answer_below),
        "selective_accuracy_at_threshold": metrics.selective_accuracy(u < manifest.answer_below, correct),
    }
    return {
        "n": int(len(correct)),
        "base_accuracy": float(np.mean(correct)),
        "methods": {
            "msp": _ranking(msp_u, correct, with_auroc=True),
            "entropy": _ranking(entropy_u, correct, with_auroc=True),
            "wrapper": wrapper,
            "doubter": None if replies is None else _doubter_method(correct, msp_u, u, replies, manifest),
        },
    }


def _doubter_method(
    correct: np.ndarray, msp_u: np.ndarray, u: np.ndarray, replies: DoubterReplies, manifest: WrapperManifest
) -> dict[str, Any]:
    answered = ~replies.refused
    own_coverage = float(answered.mean())
    msp_threshold = metrics.threshold_for_coverage(msp_u, own_coverage)
    msp_answered = msp_u < msp_threshold
    doubter_score, doubter_correct = _doubter_ranking(replies, correct)
    return _ranking(doubter_score, doubter_correct, with_auroc=False) | {
        "coverage": own_coverage,
        "selective_accuracy_at_own_coverage": metrics.selective_accuracy(answered, replies.correct),
        "msp_selective_accuracy_at_same_coverage": metrics.selective_accuracy_at_coverage(msp_u, correct, own_coverage),
        "wrapper_selective_accuracy_at_same_coverage": metrics.selective_accuracy_at_coverage(u, correct, own_coverage),
        "refusal_precision": metrics.refusal_precision(replies.refused, correct),
        "over_refusal": metrics.over_refusal(replies.refused, correct),
        # Per question "no error" (a right answer or a refusal), Doubter vs MSP thresholded at the
        # Doubter's coverage: do the two make different numbers of mistakes at the same coverage?
        "mcnemar_p": metrics.mcnemar_p(replies.refused | replies.correct, ~msp_answered | correct),
        "answers_changed": int(np.sum(answered & (replies.correct != correct))),
        "modifier": manifest.modifier.to_dict(),
        "gain": manifest.gain,
    }


def doubter_replies(
    run: RunFolder, backbone, wrapper_dir: Path, manifest: WrapperManifest, dataset: str, split: str, items: list[Item]
) -> DoubterReplies:
    """Pass 2 for every item, cached per wrapper weights so a re-run after retraining regenerates."""
    cache = run.path / "eval" / dataset_key(dataset) / split / f"doubter-{_weights_digest(wrapper_dir, manifest)}.jsonl"
    stored = _read_jsonl(cache)
    runtime = NumpyRuntime(wrapper_dir, manifest.base_fingerprint)
    pipeline = Pipeline(backbone, runtime, manifest.modifier, manifest.gain)
    todo = [item for item in items if item.id not in stored]
    with progress_bar() as progress:
        task = progress.add_task(
            f"doubter {dataset}/{split}", total=len(items), completed=len(items) - len(todo), info=""
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("a", encoding="utf-8") as out:
            for item in todo:
                with backbone.lock:
                    assessment = pipeline.assess(to_messages(item))
                    result_text = "".join(
                        t.text for t in pipeline.stream(assessment, ANSWER_PARAMS) if isinstance(t, TokenOut)
                    )
                u = assessment.uncertainty.score
                u_mod = pipeline.modifier.apply(u)
                row = {"id": item.id, "text": result_text, "u": u, "u_mod": u if u_mod is None else float(u_mod)}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                stored[item.id] = row
                progress.advance(task)
    rows = [stored[item.id] for item in items]
    texts = [row["text"] for row in rows]
    refused = np.array([is_refusal(t) for t in texts])
    correct = np.array([not r and is_correct(item, t) for item, t, r in zip(items, texts, refused, strict=False)])
    return DoubterReplies(texts, refused, correct, np.array([row["u_mod"] for row in rows]))


def _ranking(score: np.ndarray, correct: np.ndarray, with_auroc: bool) -> dict[str, Any]:
    out = {
        "aurc": metrics.aurc(score, correct),
        "e_aurc": metrics.e_aurc(score, correct),
        "ece": metrics.ece(np.clip(score, 0, 1), correct),
        "brier": metrics.brier(np.clip(score, 0, 1), correct),
        "selective_accuracy": {c: metrics.selective_accuracy_at_coverage(score, correct, float(c)) for c in COVERAGES},
    }
    if with_auroc:
        out = {"auroc": metrics.auroc(score, correct), **out}
    return out


def _doubter_ranking(replies: DoubterReplies, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(score, correct) for the Doubter's curve: answers first by u', then refusals by u'."""
    score = replies.u_mod + replies.refused.astype(float)
    outcome = np.where(replies.refused, correct, replies.correct)
    return score / 2, outcome


BASELINES = {
    "msp": ("msp", True),
    "entropy": ("entropy", False),
    "msp_first": ("msp_first", True),
    "entropy_first": ("entropy_first", False),
    "p_true": ("p_true", True),
}
"""Report method → (the collect's field, whether doubt is 1 − the field)."""


def _baselines(run: RunFolder, dataset: str, split: str, data: Collected) -> tuple[dict[str, np.ndarray], str | None]:
    """Each baseline's doubt score, Platt-scaled on the run's val split when it has one (NaN where a question
    lacks the field: collects from before it existed)."""
    val = run.load(dataset, "val") if split != "val" and run.split_dir(dataset, "val").is_dir() else None
    wrong = None if val is None else ~val.labels("correct")
    fitted = wrong is not None and wrong.any() and (~wrong).any()
    out = {}
    for name, (field, flip) in BASELINES.items():
        raw = _doubt(data, field, flip)
        if np.isnan(raw).all():
            continue
        if fitted:
            fit_x = _doubt(val, field, flip)
            keep = ~np.isnan(fit_x)
            if keep.any() and wrong[keep].any() and (~wrong[keep]).any():
                out[name] = platt(fit_x[keep], wrong[keep])(raw)
                continue
        out[name] = raw if flip else 1 - np.exp(-raw)
    return out, f"{dataset}/val" if fitted else None


def _calibration(score: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    """ECE and Brier of a probability score (the ranking metrics of a baseline come from its raw values: a
    Platt fit on a small, perfectly separated val split saturates and would tie every score)."""
    return {"ece": metrics.ece(np.clip(score, 0, 1), correct), "brier": metrics.brier(np.clip(score, 0, 1), correct)}


def _doubt(data: Collected, field: str, flip: bool) -> np.ndarray:
    values = data.field(field)
    return 1 - values if flip else values


def platt(x: np.ndarray, wrong: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A baseline's Platt map fitted to 0/1 labels (monotone in x): its ECE and Brier become comparable with u's.

    When x separates val's right and wrong answers perfectly (a small val split can), the likelihood has no
    maximum and the map would saturate to 0 and 1, tying every score; Platt's smoothed targets
    ((n+ + 1) / (n+ + 2) and 1 / (n- + 2)) keep it finite then."""
    x, wrong = np.asarray(x, dtype=np.float64), np.asarray(wrong, dtype=bool)
    targets = wrong.astype(np.float64)
    if wrong.any() and (~wrong).any() and (x[wrong].min() > x[~wrong].max() or x[wrong].max() < x[~wrong].min()):
        n_wrong, n_right = int(wrong.sum()), int((~wrong).sum())
        targets = np.where(wrong, (n_wrong + 1) / (n_wrong + 2), 1 / (n_right + 2))
    a, b = fit_platt(x, targets)
    if a <= 0:  # a baseline that ranks backwards keeps its own order: Platt must not flip it
        a = 1e-6
    return lambda v: expit(a * np.asarray(v) + b)


def _run_config(run: RunFolder, manifest: WrapperManifest) -> RunConfig:
    """The run's collect settings; a new run folder collects every block the wrapper reads, before the
    answer (`read_layers`) and after it (`post_layers`)."""
    needed = tuple(sorted(set(manifest.config.read_layers) | set(manifest.config.post_layers)))
    if run.has_config():
        config = run.config()
        if config.fingerprint != manifest.base_fingerprint or not set(needed) <= set(config.read_layers):
            raise MetaspiderError(
                f"{run.path} was collected for {config.model} with layers {list(config.read_layers)}; the wrapper "
                f"needs {manifest.base_model} with layers {list(needed)}: use another --run folder"
            )
        return config
    return RunConfig(manifest.base_model, manifest.base_fingerprint, needed, manifest.config.inject_layers, None)


def _select(data: Collected, items: list[Item]) -> Collected:
    """The stored records of `items`, in their order (a run may hold more, e.g. from an earlier --limit)."""
    index = {record["id"]: i for i, record in enumerate(data.records)}
    rows = [index[item.id] for item in items]
    post = None if data.acts_post is None else data.acts_post[rows]
    return Collected([data.records[i] for i in rows], data.acts[rows], None, post)


def _domain(manifest: WrapperManifest, dataset: str) -> dict[str, Any]:
    trained_on = sorted(manifest.training_data.get("datasets", {}))
    seen = dataset_key(dataset) in trained_on or dataset in trained_on
    return {"trained_on": trained_on, "seen_in_training": seen, "cross_domain": not seen}


def _weights_digest(folder: Path, manifest: WrapperManifest) -> str:
    """Changes with the weights and the knobs that shape pass 2, not with the manifest's metrics."""
    knobs = json.dumps({"modifier": manifest.modifier.to_dict(), "gain": manifest.gain}, sort_keys=True)
    return hashlib.sha256((folder / WEIGHTS_FILE).read_bytes() + knobs.encode()).hexdigest()[:12]


def _read_jsonl(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["id"]] = row
    return rows
