"""The hybrid head before the answer: stage A's u stacked with the first answer token's probabilities.

Stage A reads the question's activations; the first token's max-softmax probability and entropy come from
the same pass 1. A logistic regression on (u's logit, 1 − max-softmax probability, entropy) cannot do worse
than the token probabilities on the questions it is fitted on. Fitted on the validation split as it is,
though, it learns how far to trust u on topics stage A was trained on, which is further than u travels:
on a topic the wrapper never saw, stage A is weaker and the first token's probabilities are not. So the
stacking regression is fitted on *out-of-topic* logits: the training topics are dealt into a few groups,
a stage A with the same read blocks is trained without each group, and every validation question gets the
logit of the stage A that never saw its topic. The regression then weighs u as it ranks on an unseen
topic, and is applied to the full stage A's logit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from metaspider.core.wrapper.support import stacked_features
from metaspider.errors import MetaspiderError
from metaspider.loom import metrics
from metaspider.loom.fallback import Logistic, fit_logistic
from metaspider.loom.run_folder import Collected
from metaspider.loom.stage_a import StageASettings, confidence_logits, train_stage_a

STACK_FOLDS = 4
"""Groups of topics for the out-of-topic logits: enough that each stage A still sees most topics."""


def topic_groups(topics: Sequence[str], folds: int = STACK_FOLDS) -> list[list[str]]:
    """The distinct `topics`, sorted, dealt round-robin into at most `folds` groups."""
    names = sorted(set(topics))
    return [group for group in (names[i::folds] for i in range(folds)) if group]


def out_of_topic_logits(
    read_layers: tuple[int, ...],
    inject_layers: tuple[int, ...],
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    folds: int = STACK_FOLDS,
    settings: StageASettings | None = None,
) -> np.ndarray:
    """For every validation question, the stage-A logit of a wrapper trained without its topic. `train` and
    `val` are (acts [N, R, d] at the wrapper's read blocks, wrong [N], topics [N] or [N, k]: a question is
    left out of a group's training when any of its k topic keys is in the group, so a conversation can be
    kept out with the topic its final question comes from)."""
    from metaspider.loom.train import new_wrapper

    train_acts, train_wrong, train_topics = train
    val_acts, val_wrong, val_topics = val
    train_keys, val_keys = _keys(train_topics), _keys(val_topics)
    groups = topic_groups(list(val_keys[:, 0]), folds)
    if len(groups) < 2:
        raise MetaspiderError("out-of-topic stacking needs validation questions from at least two topics")
    logits = np.full(len(val_acts), np.nan)
    for group in groups:
        held_train = np.isin(train_keys, group).any(axis=1)
        held_val = np.isin(val_keys, group).any(axis=1)
        scored = np.isin(val_keys[:, 0], group)
        if held_train.all() or held_val.all():
            raise MetaspiderError(f"leaving out {group} leaves no train or no val questions")
        wrapper = new_wrapper(int(train_acts.shape[-1]), read_layers, inject_layers)
        train_stage_a(
            wrapper,
            train_acts[~held_train],
            train_wrong[~held_train],
            val_acts[~held_val],
            val_wrong[~held_val],
            settings or StageASettings(),
        )
        logits[scored] = confidence_logits(wrapper, val_acts[scored]).numpy()
    return logits


def fit_out_of_topic_stack(
    read_layers: tuple[int, ...],
    inject_layers: tuple[int, ...],
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    first_token: tuple[np.ndarray, np.ndarray],
    calibration: Callable[[np.ndarray], np.ndarray] | None = None,
    settings: StageASettings | None = None,
) -> tuple[Logistic, np.ndarray]:
    """The hybrid head's stacking regression, fitted on `out_of_topic_logits` of `val` (its arguments as
    there) with val's first-token (max-softmax probability, entropy) `first_token`: (the regression, the
    out-of-topic logits)."""
    logits = out_of_topic_logits(read_layers, inject_layers, train, val, settings=settings)
    return fit_stack(logits, val[1], *first_token, calibration), logits


def fit_stack(
    logits: np.ndarray,
    wrong: np.ndarray,
    msp_first: np.ndarray,
    entropy_first: np.ndarray,
    calibration: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Logistic:
    """The stacking regression on (u's logit, 1 − first-token max-softmax probability, entropy), u being
    `calibration` of the logits [N, 1] (the wrapper's Platt map, so that the regression applies to the u the
    wrapper reports) or their sigmoid; questions without first-token values (older collects) are left out."""
    u = calibration(np.asarray(logits)[:, None]) if calibration else expit(np.asarray(logits, dtype=np.float64))
    features = stacked_features(u, msp_first, entropy_first)
    usable = np.isfinite(features).all(axis=1)
    if not usable.any():
        raise MetaspiderError("the hybrid head needs first-token values (msp_first, entropy_first) on val")
    return fit_logistic(features[usable], np.asarray(wrong)[usable])


def apply_stack(stack: Logistic, u: np.ndarray, msp_first: np.ndarray, entropy_first: np.ndarray) -> np.ndarray:
    """The hybrid P(wrong) from u (a probability); where the first-token values are missing, u itself."""
    features = stacked_features(u, msp_first, entropy_first)
    finite = np.isfinite(features).all(axis=1)
    return np.where(finite, stack(np.nan_to_num(features)), u)


def _keys(topics: np.ndarray) -> np.ndarray:
    keys = np.asarray(topics).astype(str)
    return keys[:, None] if keys.ndim == 1 else keys


def with_hybrid(
    wrapper: Any,
    columns: list[int],
    train: Collected,
    val: Collected,
    keys: tuple[np.ndarray, np.ndarray],
    settings: StageASettings | None = None,
) -> tuple[Any, dict[str, Any]]:
    """A copy of the stage-A `wrapper` (Platt-calibrated) that also holds the hybrid stack, fitted on
    out-of-topic logits of `val`; `columns` picks the wrapper's read blocks among the collected ones, `keys`
    are the topic keys of `train` and `val` (see `out_of_topic_logits`). Returns it with a summary for the
    manifest."""
    import torch

    from metaspider.loom.fallback import extended_wrapper

    def calibration(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return wrapper.calibrate(torch.as_tensor(x[:, 0], dtype=torch.float32)).numpy().astype(np.float64)

    train_wrong, val_wrong = ~train.labels("correct"), ~val.labels("correct")
    msp_first, entropy_first = val.field("msp_first"), val.field("entropy_first")
    stack, logits = fit_out_of_topic_stack(
        tuple(wrapper.config.read_layers),
        tuple(wrapper.config.inject_layers),
        (train.acts[:, columns], train_wrong, keys[0]),
        (val.acts[:, columns], val_wrong, keys[1]),
        (msp_first, entropy_first),
        calibration,
        settings,
    )
    u = calibration(logits[:, None])
    hybrid = apply_stack(stack, u, msp_first, entropy_first)
    groups = topic_groups(list(_keys(keys[1])[:, 0]))
    summary = {
        "folds": groups,
        "stack": {"coef": stack.coef.tolist(), "intercept": stack.intercept},
        "val_auroc_out_of_topic": {
            "wrapper": metrics.auroc(u, ~val_wrong),
            "hybrid": metrics.auroc(hybrid, ~val_wrong),
            "msp_first": metrics.auroc(1 - msp_first, ~val_wrong),
        },
    }
    tensors = {"hybrid.stack": np.append(stack.coef, stack.intercept)}
    return extended_wrapper(wrapper, {"hybrid": True}, tensors), summary


def topic_keys(datasets: Sequence[str], parts: Sequence[Collected]) -> np.ndarray:
    """[N, 2] topic keys of the concatenated `parts` (one per data set, in order): each question's data set,
    and the topic its final question comes from for a conversation (else the data set again)."""
    from metaspider.loom.lotocv import conversation_origin

    rows = [
        (name, conversation_origin(str(record["id"])) or name)
        for name, part in zip(datasets, parts, strict=True)
        for record in part.records
    ]
    return np.array(rows, dtype=str).reshape(-1, 2)
