"""`train`: stage A (P(wrong) from cached activations), Platt calibration on val, the support model, the
fallbacks and the post-answer head (`fallback.py`), then stage B (the heads learn to refuse through the
frozen base). The wrapper folder in the run is rewritten after each
stage, so stage B can be rerun on its own."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.folder import WrapperManifest, load_torch_wrapper, save_wrapper
from metaspider.core.wrapper.modifiers import Modifier
from metaspider.core.wrapper.torch_module import MetaWrapper
from metaspider.errors import MetaspiderError
from metaspider.loom import metrics
from metaspider.loom.fallback import with_support_and_post, without_fitted_parts
from metaspider.loom.frozen_tail import FrozenTail
from metaspider.loom.hybrid import topic_keys, with_hybrid
from metaspider.loom.progress import progress_bar
from metaspider.loom.run_folder import Collected, RunFolder
from metaspider.loom.scoring import REFUSAL_SENTENCE
from metaspider.loom.stage_a import StageASettings, confidence_logits, train_stage_a
from metaspider.loom.stage_b import StageBSettings, examples, first_tokens, train_stage_b

STAGES = ("a", "b", "all", "parts")
_STAGE_A = set(StageASettings.__dataclass_fields__)
READ_WINDOW = 3
BIAS_GRID = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
ANSWER_BELOW = 0.5
"""Answer when the val-calibrated P(wrong) is below 1/2: the rule that maximises right minus wrong
answers when a wrong answer costs what a right one earns. Not the empirical maximiser on val: on a
val split of about a hundred questions that argmax follows the split's luck (countries' val was 50 %
right against 35 % for train, and its argmax answered up to u = 0.65)."""


@dataclass(frozen=True)
class TrainSummary:
    """What `metaloom train` did: stages run, data sizes, the val AUROC, stage B's loss and the Doubter bias chosen."""

    stages: tuple[str, ...]
    n_train: int
    n_val: int
    val_auroc: float
    answer_below: float
    doubter_bias: float
    stage_b_val_loss: tuple[float, float] | None
    """(before, after) stage B."""


def default_bottleneck(d_model: int) -> int:
    """d/16 (256 for 4k-wide models, 128 for 2k), at least 64 for small models: a bottleneck that keeps the
    wrapper a few percent of the base model."""
    return max(64, d_model // 16)


def new_wrapper(d_model: int, read_layers: tuple[int, ...], inject_layers: tuple[int, ...]) -> MetaWrapper:
    """An untrained wrapper from a fixed seed, so that every read-layer window starts alike."""
    torch.manual_seed(0)
    return MetaWrapper(
        WrapperConfig(
            d_model=d_model,
            read_layers=read_layers,
            inject_layers=inject_layers,
            bottleneck=default_bottleneck(d_model),
        )
    )


def train(
    run: RunFolder, stage: str = "all", epochs: int | None = None, threads: int | None = None, hybrid: bool = False
) -> TrainSummary:
    """Train the run's wrapper from its collected data: stage A (P(wrong) from activations), Platt calibration on
    val, the fitted parts (support, fallbacks, post-answer head; with `hybrid`, the hybrid head before the
    answer), stage B (the heads, through the frozen model); `stage` "a", "b", "all", or "parts" (fit the
    parts again on the run's wrapper, its encoder and heads unchanged). Writes the wrapper folder."""
    if stage not in STAGES:
        raise MetaspiderError(f"unknown stage {stage!r}: use one of {', '.join(STAGES)}")
    if hybrid and stage == "b":
        raise MetaspiderError("--hybrid is fitted with stage a, all or parts, not with stage b alone")
    datasets = training_datasets(run)
    need_prefix = stage in ("b", "all")
    train_parts = [run.load(d, "train", with_prefix=need_prefix) for d in datasets]
    val_parts = [run.load(d, "val", with_prefix=need_prefix) for d in datasets]
    train_data, val_data = _concat(train_parts), _concat(val_parts)
    keys = (topic_keys(datasets, train_parts), topic_keys(datasets, val_parts)) if hybrid else None
    if stage in ("a", "all"):
        wrapper, manifest = _stage_a(run, datasets, train_data, val_data, epochs, keys)
    else:
        wrapper, manifest = load_torch_wrapper(run.wrapper_dir, run.config().fingerprint)
    if stage == "parts":
        wrapper, manifest = _refit_parts(run, wrapper, manifest, train_data, val_data, keys)
    stage_b = None
    if need_prefix:
        manifest, stage_b = _stage_b(run, wrapper, manifest, train_data, val_data, epochs, threads)
        manifest = manifest.replace(training_data={**manifest.training_data, "stage_b": stage_b})
        save_wrapper(run.wrapper_dir, wrapper.state_dict(), manifest)
    return TrainSummary(
        stages=("a", "b") if stage == "all" else (stage,),
        n_train=len(train_data.records),
        n_val=len(val_data.records),
        val_auroc=manifest.metrics["val"]["auroc"],
        answer_below=manifest.answer_below,
        doubter_bias=manifest.modifier.bias,
        stage_b_val_loss=(stage_b["val_loss_before"], stage_b["val_loss"]) if stage_b else None,
    )


def training_datasets(run: RunFolder) -> list[str]:
    """Every data set the run holds both a train and a val split of."""
    root = run.path / "collect"
    found = (
        sorted(p.name for p in root.glob("*") if (p / "train").is_dir() and (p / "val").is_dir())
        if root.is_dir()
        else []
    )
    if not found:
        raise MetaspiderError(f"{run.path} holds no data set with both a train and a val split: collect them first")
    return found


def read_layer_candidates(
    layers: tuple[int, ...], inject_layers: tuple[int, ...], width: int = READ_WINDOW
) -> list[tuple[int, ...]]:
    """Windows of `width` collected layers counted down from the lowest injected block, then all of
    those: the late blocks do not all carry the signal equally, and a nine-layer encoder on a few hundred
    questions overfits to the weaker ones. No window reads above the lowest injected block, so that on
    llama.cpp pass 1 can inject the decision token in the same evaluation (`Priming`): reading higher
    would cost every answer one more decode step before its first token."""
    eligible = tuple(layer for layer in layers if layer <= min(inject_layers)) or layers
    windows = [eligible[max(0, end - width) : end] for end in range(len(eligible), 0, -width)]
    windows = [window for window in windows if len(window) == min(width, len(eligible))]
    return [*windows, eligible] if len(eligible) > width else [eligible]


def _fitted_parts(
    wrapper: MetaWrapper,
    columns: list[int],
    read_layers: tuple[int, ...],
    train_data: Collected,
    val_data: Collected,
    keys: tuple[np.ndarray, np.ndarray] | None,
    settings: StageASettings,
) -> tuple[MetaWrapper, dict[str, Any]]:
    """The Platt-calibrated stage-A `wrapper` with its support, fallbacks and post head, and with `keys` (the
    topic keys of train and val) its hybrid head; and the manifest's record of them."""
    wrapper, support_and_post = with_support_and_post(wrapper, columns, read_layers, train_data, val_data)
    record: dict[str, Any] = {"support_and_post": support_and_post}
    if keys is not None:
        if len(set(keys[1][:, 0])) < 2:
            record["hybrid"] = "not fitted: the hybrid head needs at least two training data sets"
        else:
            wrapper, record["hybrid"] = with_hybrid(wrapper, columns, train_data, val_data, keys, settings)
    return wrapper, record


def _refit_parts(run, wrapper, manifest, train_data, val_data, keys) -> tuple[MetaWrapper, WrapperManifest]:
    config = run.config()
    columns = [config.read_layers.index(layer) for layer in wrapper.config.read_layers]
    settings = StageASettings(**{k: v for k, v in manifest.training_data.get("stage_a", {}).items() if k in _STAGE_A})
    wrapper, record = _fitted_parts(
        without_fitted_parts(wrapper), columns, config.read_layers, train_data, val_data, keys, settings
    )
    training_data = {k: v for k, v in manifest.training_data.items() if k != "hybrid"} | record
    manifest = manifest.replace(config=wrapper.config, training_data=training_data)
    save_wrapper(run.wrapper_dir, wrapper.state_dict(), manifest)
    return wrapper, manifest


def _stage_a(
    run: RunFolder,
    datasets: list[str],
    train_data: Collected,
    val_data: Collected,
    epochs: int | None,
    keys: tuple[np.ndarray, np.ndarray] | None,
):
    config = run.config()
    d_model = int(train_data.acts.shape[-1])
    settings = StageASettings() if epochs is None else StageASettings(max_epochs=epochs)
    train_wrong, val_wrong = ~train_data.labels("correct"), ~val_data.labels("correct")
    candidates = read_layer_candidates(config.read_layers, config.inject_layers)
    scan, best = [], None
    with progress_bar() as progress:
        task = progress.add_task("stage A", total=settings.max_epochs * len(candidates), info="")
        for index, layers in enumerate(candidates):
            columns = [config.read_layers.index(layer) for layer in layers]
            wrapper = new_wrapper(d_model, layers, config.inject_layers)

            def on_epoch(
                epoch: int, train_loss: float, val_loss: float, index: int = index, layers: tuple = layers
            ) -> None:
                progress.update(
                    task,
                    completed=index * settings.max_epochs + epoch,
                    info=f"layers {layers[0]}-{layers[-1]} val {val_loss:.3f}",
                )

            result = train_stage_a(
                wrapper,
                train_data.acts[:, columns],
                train_wrong,
                val_data.acts[:, columns],
                val_wrong,
                settings,
                on_epoch,
            )
            scan.append({"read_layers": list(layers), "val_bce": result.val_loss, "best_epoch": result.best_epoch})
            if best is None or result.val_loss < best[2].val_loss:
                best = (wrapper, columns, result)
        progress.update(task, completed=settings.max_epochs * len(candidates))
    wrapper, columns, result = best
    val_logits = confidence_logits(wrapper, val_data.acts[:, columns])
    wrapper.fit_calibration(val_logits, torch.as_tensor(val_wrong, dtype=torch.float32))
    wrapper, fitted = _fitted_parts(wrapper, columns, config.read_layers, train_data, val_data, keys, settings)
    val_u = wrapper.calibrate(val_logits).numpy()
    val_correct = val_data.labels("correct")
    manifest = WrapperManifest(
        base_fingerprint=config.fingerprint,
        base_model=config.model,
        config=wrapper.config,
        modifier=Modifier("doubter"),
        gain=1.0,
        answer_below=ANSWER_BELOW,
        training_data={
            "datasets": {d: {"splits": ["train", "val"]} for d in datasets},
            "n_train": len(train_data.records),
            "n_val": len(val_data.records),
            "targets": {"right": "the model's own answer", "wrong": REFUSAL_SENTENCE},
            "stage_a": {
                "epochs": result.epochs,
                "best_epoch": result.best_epoch,
                "val_bce": result.val_loss,
                "read_layer_scan": scan,
                **_settings(settings),
            },
            **fitted,
        },
        metrics={"val": _val_metrics(val_u, val_correct, val_data)},
    )
    save_wrapper(run.wrapper_dir, wrapper.state_dict(), manifest)
    return wrapper, manifest


def _stage_b(run, wrapper, manifest, train_data, val_data, epochs, threads) -> dict[str, Any]:
    from metaspider.loom.backbones import torch_backbone

    config = run.config()
    backbone = torch_backbone(config.model, threads)
    if backbone.fingerprint != manifest.base_fingerprint:
        raise MetaspiderError(
            f"{run.wrapper_dir} was trained for {manifest.base_fingerprint}, not {backbone.fingerprint}"
        )
    tail = FrozenTail(backbone, min(manifest.config.inject_layers))
    tail.check(backbone.chat_ids([{"role": "user", "content": "What is the capital of France?"}]))
    settings = StageBSettings() if epochs is None else StageBSettings(epochs=epochs)
    layers = (config.read_layers, manifest.config.read_layers)
    refusal_start = backbone.tokenize(REFUSAL_SENTENCE)[0]

    def first_token(text: str) -> int:
        return backbone.tokenize(text)[0]

    train_examples = examples(train_data.read_layers(*layers), first_token, refusal_start)
    val_examples = examples(val_data.read_layers(*layers), first_token, refusal_start)
    n_train_batches = -(-len(train_examples) // settings.batch_size)
    n_val_batches = -(-len(val_examples) // settings.batch_size)
    with progress_bar() as progress:
        task = progress.add_task(
            "stage B", total=(settings.epochs + 1) * n_val_batches + settings.epochs * n_train_batches, info=""
        )

        def on_step(phase: str, loss: float) -> None:
            progress.update(task, advance=1, info=f"{phase} loss {loss:.3f}")

        result = train_stage_b(wrapper, tail, train_examples, val_examples, settings, on_step)
    # The heads refuse when u' >= 1/2: this bias puts that point at the read-only threshold.
    bias = round(math.log((1 - manifest.answer_below) / manifest.answer_below), 2)
    scan = doubter_bias_scan(wrapper, tail, val_examples, val_data.labels("correct"), refusal_start, (*BIAS_GRID, bias))
    manifest = manifest.replace(modifier=Modifier("doubter", bias))
    save_wrapper(run.wrapper_dir, wrapper.state_dict(), manifest)
    return manifest, {
        "doubter_bias_scan": scan,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "val_loss_before": result.val_loss_before,
        "val_loss": result.val_loss,
        **_settings(settings),
    }


def doubter_bias_scan(
    wrapper, tail, val_examples, correct: np.ndarray, refusal_start: int, biases: tuple[float, ...]
) -> list[dict[str, float]]:
    """For each Doubter bias, the val questions whose pass 2 would open with the refusal, and the net
    (right answers − wrong answers) of the rest: a record of the knob's effect, checked without generating."""
    rows = []
    for bias in sorted(set(biases)):
        refused = (first_tokens(wrapper, tail, val_examples, Modifier("doubter", bias)) == refusal_start).numpy()
        answered = ~refused
        rows.append(
            {
                "bias": bias,
                "coverage": float(answered.mean()),
                "net": int(np.sum(correct[answered]) - np.sum(~correct[answered])),
                "selective_accuracy": metrics.selective_accuracy(answered, correct),
            }
        )
    return rows


def _val_metrics(u: np.ndarray, correct: np.ndarray, data: Collected) -> dict[str, float]:
    return {
        "n": int(len(u)),
        "base_accuracy": float(np.mean(correct)),
        "auroc": metrics.auroc(u, correct),
        "msp_auroc": metrics.auroc(1 - data.labels("msp"), correct),
        "ece": metrics.ece(u, correct),
    }


def _settings(settings) -> dict[str, Any]:
    return dict(vars(settings))


def _concat(parts: list[Collected]) -> Collected:
    if len(parts) == 1:
        return parts[0]
    prefix = None if any(p.prefix is None for p in parts) else [x for p in parts for x in p.prefix]
    post = None if any(p.acts_post is None for p in parts) else np.concatenate([p.acts_post for p in parts])
    return Collected([r for p in parts for r in p.records], np.concatenate([p.acts for p in parts]), prefix, post)
