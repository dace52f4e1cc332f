"""Leave-one-topic-out: does u travel to a topic it never saw?

For each topic, stage A is trained on every other topic's train split (early stopping and the read-layer
choice on the others' val split) and scored on the held-out topic's test split, beside the field's
baselines of both moments on the same questions:

- before the answer (decision point): `wrapper` (stage A's u), `linear_probe` (a logistic regression per
  read layer on the decision-point activations, probabilities averaged over the layers), `msp_first`
  and `entropy_first` (the first answer token's distribution);
- after the answer: `probe_post` (the same probe on the answer's last token), `msp` and `entropy` (over
  the answer's tokens), `p_true` (the model judging its own answer) and `consistency` (agreement of five
  samples with the greedy answer; only on the questions collected with `--consistency`).

The wrapper's own signals with support and fallback (`metaspider.loom.fallback`) beside them:
`wrapper_fallback` (stage A's u, Platt-scaled on val, blended toward the fallback on first-token
probabilities as support falls), `wrapper_hybrid` (stage A's u stacked with the first token's probabilities
by a regression fitted on out-of-topic logits, `metaspider.loom.hybrid`, then blended the same way: what a
wrapper trained with `--hybrid` reports before the answer), `wrapper_post` (the hybrid post-answer head:
`probe_post` stacked with the answer's token probabilities) and `wrapper_post_fallback` (it, blended the
same way); each topic also reports its mean `support`.

A topic is a data set of the run(s), or the `subject` of the items of a single mixed data set. Every
score is a doubt score (higher means more likely wrong); AUROC comes from scikit-learn."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler

from metaspider.errors import MetaspiderError
from metaspider.loom import metrics
from metaspider.loom.run_folder import RunConfig, RunFolder
from metaspider.loom.stage_a import StageASettings

BEFORE = ("wrapper", "wrapper_fallback", "wrapper_hybrid", "linear_probe", "msp_first", "entropy_first")
AFTER = ("wrapper_post", "wrapper_post_fallback", "probe_post", "msp", "entropy", "p_true", "consistency")
METHODS = BEFORE + AFTER
PROBE_C = (0.01, 0.1, 1.0)
"""Inverse L2 strengths tried for the probes; the one with the lowest val log-loss is kept."""
SPLITS = ("train", "val", "test")


@dataclass
class Pool:
    """Every collected question of the runs, with its topic and split, in one set of arrays."""

    config: RunConfig
    topic: np.ndarray
    origin: np.ndarray
    """The topic a question's entity comes from: its own topic, or for a conversation the topic of its final
    question, so that holding out a topic also keeps its entities out of training through conversations."""
    split: np.ndarray
    correct: np.ndarray
    acts: np.ndarray
    """[N, R, d] at the decision point."""
    acts_post: np.ndarray | None
    """[N, R, d] at the answer's last token, or None when some question was collected without them."""
    fields: dict[str, np.ndarray]
    """Per-question baseline values (NaN where a question lacks one): msp, entropy, msp_first, ..."""

    def __len__(self) -> int:
        return len(self.correct)


def load_pool(runs: Sequence[RunFolder], by: str = "auto") -> Pool:
    """The train, val and test splits of every data set in `runs` (one model). `by`: "dataset" (each data
    set is a topic), "subject" (each item's subject is), or "auto" (subject when the runs hold a single
    data set, e.g. the mixture; dataset otherwise)."""
    if by not in ("auto", "dataset", "subject"):
        raise MetaspiderError(f"unknown --by {by!r}: use auto, dataset or subject")
    if not runs:
        raise MetaspiderError("lotocv needs at least one --run")
    configs = [run.config() for run in runs]
    if len({(c.fingerprint, c.read_layers) for c in configs}) > 1:
        raise MetaspiderError(
            "the runs were collected with different models or read layers: "
            + ", ".join(
                f"{run.path} ({c.model}, layers {list(c.read_layers)})" for run, c in zip(runs, configs, strict=False)
            )
        )
    parts = []
    for run in runs:
        root = run.path / "collect"
        for folder in sorted(root.glob("*")) if root.is_dir() else []:
            for split in SPLITS:
                if (folder / split).is_dir():
                    parts.append((folder.name, split, run.load(folder.name, split)))
    if not parts:
        raise MetaspiderError(
            f"nothing collected in {', '.join(str(r.path) for r in runs)}: run `metaloom collect` first"
        )
    datasets = {name for name, _, _ in parts}
    by_subject = by == "subject" or (by == "auto" and len(datasets) == 1)
    topic, origin, split = [], [], []
    for name, split_name, data in parts:
        for record in data.records:
            topic.append(str(record.get("subject")) if by_subject else name)
            origin.append(conversation_origin(record["id"]) or topic[-1])
            split.append(split_name)
    with_post = all(data.acts_post is not None for _, _, data in parts)
    fields = {
        key: np.concatenate([data.field(key) for _, _, data in parts])
        for key in ("msp", "entropy", "msp_first", "entropy_first", "p_true", "consistency")
    }
    return Pool(
        config=configs[0],
        topic=np.array(topic),
        origin=np.array(origin),
        split=np.array(split),
        correct=np.concatenate([data.labels("correct").astype(bool) for _, _, data in parts]),
        acts=np.concatenate([data.acts for _, _, data in parts]),
        acts_post=np.concatenate([data.acts_post for _, _, data in parts]) if with_post else None,
        fields=fields,
    )


def conversation_origin(item_id: str) -> str | None:
    """The topic of a conversation item's final question ("conversations:TOPIC:..."), else None."""
    parts = item_id.split(":")
    return parts[1] if parts[0] == "conversations" and len(parts) > 2 else None


def baseline_scores(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Doubt scores (higher = more likely wrong) of the stored baselines."""
    return {
        "msp_first": 1 - fields["msp_first"],
        "entropy_first": fields["entropy_first"],
        "msp": 1 - fields["msp"],
        "entropy": fields["entropy"],
        "p_true": 1 - fields["p_true"],
        "consistency": 1 - fields["consistency"],
    }


def rank_metrics(score: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    """AUROC for detecting wrong answers, AURC, and selective accuracy at 50 % coverage, on the
    questions that have a score; NaN when there are none or, for AUROC, when all are right or all wrong."""
    keep = ~np.isnan(score)
    score, correct = score[keep], correct[keep]
    if not len(score):
        return {"n": 0, "auroc": math.nan, "aurc": math.nan, "selective_accuracy_50": math.nan}
    wrong = ~correct
    auroc = float(roc_auc_score(wrong, score)) if 0 < wrong.sum() < len(wrong) else math.nan
    return {
        "n": len(score),
        "auroc": auroc,
        "aurc": metrics.aurc(score, correct),
        "selective_accuracy_50": metrics.selective_accuracy_at_coverage(score, correct, 0.5),
    }


def probe_scores(
    train_x: np.ndarray, train_wrong: np.ndarray, val_x: np.ndarray, val_wrong: np.ndarray, test_x: np.ndarray
) -> np.ndarray:
    """P(wrong) on `test_x` [N, R, d] from one standardised logistic regression per read layer (its C
    chosen on val by log-loss), averaged over the layers: the plain linear probe of the literature."""
    out = np.zeros(len(test_x))
    for layer in range(train_x.shape[1]):
        scaler = StandardScaler().fit(train_x[:, layer].astype(np.float32))
        tx, vx, sx = (scaler.transform(x[:, layer].astype(np.float32)) for x in (train_x, val_x, test_x))
        best = None
        for c in PROBE_C:
            model = LogisticRegression(C=c, max_iter=500).fit(tx, train_wrong)
            loss = log_loss(val_wrong, model.predict_proba(vx)[:, 1], labels=[False, True]) if len(vx) else 0.0
            if best is None or loss < best[0]:
                best = (loss, model)
        out += best[1].predict_proba(sx)[:, 1]
    return out / train_x.shape[1]


def probe_scores_many(
    train_x: np.ndarray,
    train_wrong: np.ndarray,
    val_x: np.ndarray,
    val_wrong: np.ndarray,
    scored: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """`probe_scores` on several sets of questions from one fit: {name: P(wrong)}."""
    names = list(scored)
    stacked = probe_scores(train_x, train_wrong, val_x, val_wrong, np.concatenate([scored[n] for n in names]))
    bounds = np.cumsum([0, *(len(scored[n]) for n in names)])
    return {n: stacked[a:b] for n, a, b in zip(names, bounds[:-1], bounds[1:], strict=True)}


def train_wrapper(
    config: RunConfig,
    train_x: np.ndarray,
    train_wrong: np.ndarray,
    val_x: np.ndarray,
    val_wrong: np.ndarray,
    settings: StageASettings | None = None,
) -> tuple[Any, list[int]]:
    """A stage A trained as `metaloom train` does (the read-layer window with the lowest val loss), here on
    arrays instead of a run's own train split: (the wrapper, the columns of its read layers)."""
    from metaspider.loom.stage_a import train_stage_a
    from metaspider.loom.train import new_wrapper, read_layer_candidates

    best = None
    for layers in read_layer_candidates(config.read_layers, config.inject_layers):
        columns = [config.read_layers.index(layer) for layer in layers]
        wrapper = new_wrapper(int(train_x.shape[-1]), layers, config.inject_layers)
        result = train_stage_a(
            wrapper, train_x[:, columns], train_wrong, val_x[:, columns], val_wrong, settings or StageASettings()
        )
        if best is None or result.val_loss < best[0]:
            best = (result.val_loss, wrapper, columns)
    _, wrapper, columns = best
    return wrapper, columns


def fitted_signals(
    pool: Pool,
    wrapper: Any,
    columns: list[int],
    train: np.ndarray,
    val: np.ndarray,
    hybrid: bool = True,
    stage_a: StageASettings | None = None,
) -> Callable[[np.ndarray], tuple[dict[str, np.ndarray], np.ndarray]]:
    """Fit the wrapper's support, fallbacks, post head and (with `hybrid`) hybrid head on `train` and `val`
    once; returns the function that scores any mask of questions with them: ({method: doubt score}, support per
    scored question), as `metaloom train` fits them (`fit_parts`). `hybrid` also fits the hybrid head before the
    answer (a few more stage-A trainings per topic)."""
    from metaspider.core.wrapper.support import baseline_features, blend
    from metaspider.loom.fallback import bottleneck_vectors, fit_logistic, fit_parts
    from metaspider.loom.hybrid import apply_stack
    from metaspider.loom.stage_a import confidence_logits

    wrong, fields, post = ~pool.correct, pool.fields, pool.acts_post
    logit_val = confidence_logits(wrapper, pool.acts[val][:, columns]).numpy()
    # The stage-A wrapper's u is Platt-scaled on val, as `metaloom train` stores it.
    platt = fit_logistic(logit_val[:, None], wrong[val])
    parts = fit_parts(
        *(bottleneck_vectors(wrapper, pool.acts[mask][:, columns]) for mask in (train, val)),
        wrong[train],
        wrong[val],
        (fields["msp_first"][val], fields["entropy_first"][val]),
        None if post is None else (post[train], post[val], fields["msp"][val], fields["entropy"][val]),
    )
    stack = fit_pool_stack(pool, columns, train, val, stage_a, platt) if hybrid and parts is not None else None

    def score(test: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if parts is None:
            return {}, np.full(int(test.sum()), np.nan)
        u_test = platt(confidence_logits(wrapper, pool.acts[test][:, columns]).numpy()[:, None])
        support = parts.support(bottleneck_vectors(wrapper, pool.acts[test][:, columns]))

        def fallback(model: Any, msp_key: str, entropy_key: str, own: np.ndarray) -> np.ndarray:
            """The fallback's P(wrong) on test; where a question lacks the baseline values (older collects),
            the wrapper's own score, so the blend leaves it unchanged."""
            features = baseline_features(fields[msp_key][test], fields[entropy_key][test])
            finite = np.isfinite(features).all(axis=1)
            return np.where(finite, model(np.nan_to_num(features, nan=0.0)), own)

        first_fallback = fallback(parts.fallback, "msp_first", "entropy_first", u_test)
        scores = {"wrapper_fallback": blend(u_test, first_fallback, support)}
        if stack is not None:
            u_hybrid = apply_stack(stack, u_test, fields["msp_first"][test], fields["entropy_first"][test])
            scores["wrapper_hybrid"] = blend(u_hybrid, first_fallback, support)
        if post is not None and parts.post is not None:
            u_post = parts.post(post[test], fields["msp"][test], fields["entropy"][test])
            scores |= {
                "probe_post": parts.post.probe(post[test]),
                "wrapper_post": u_post,
                "wrapper_post_fallback": blend(
                    u_post, fallback(parts.fallback_post, "msp", "entropy", u_post), support
                ),
            }
        return scores, support

    return score


def fit_pool_stack(
    pool: Pool,
    columns: list[int],
    train: np.ndarray,
    val: np.ndarray,
    stage_a: StageASettings | None = None,
    calibration: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Any:
    """The hybrid head's stacking regression for a wrapper reading `columns`, fitted on the out-of-topic
    logits of the pool's `val` questions (stage A retrained on `train` without each group of topics; a
    conversation also kept out with its final question's topic)."""
    from metaspider.loom.hybrid import fit_out_of_topic_stack

    wrong, keys = ~pool.correct, np.column_stack([pool.topic, pool.origin])
    stack, _ = fit_out_of_topic_stack(
        tuple(pool.config.read_layers[c] for c in columns),
        pool.config.inject_layers,
        (pool.acts[train][:, columns], wrong[train], keys[train]),
        (pool.acts[val][:, columns], wrong[val], keys[val]),
        (pool.fields["msp_first"][val], pool.fields["entropy_first"][val]),
        calibration,
        stage_a,
    )
    return stack


def lotocv(
    pool: Pool,
    topics: Sequence[str] | None = None,
    on_topic: Callable[[str], None] | None = None,
    stage_a: StageASettings | None = None,
    score_split: str = "test",
    hybrid: bool = True,
) -> dict[str, Any]:
    """Per held-out topic and averaged over topics: n, base accuracy, mean support and, per method, AUROC,
    AURC and selective accuracy at 50 % coverage. `on_topic(name)` is called as each topic starts; `stage_a`
    overrides the wrapper's training settings (default: those of `metaloom train`); `score_split` "val"
    scores the held-out topic's val split instead of its test split, for choosing a recipe without
    looking at test; `hybrid` False skips `wrapper_hybrid` and its extra stage-A trainings."""
    return lotocv_by_split(pool, (score_split,), topics, on_topic, stage_a, hybrid)[score_split]


def lotocv_by_split(
    pool: Pool,
    splits: Sequence[str],
    topics: Sequence[str] | None = None,
    on_topic: Callable[[str], None] | None = None,
    stage_a: StageASettings | None = None,
    hybrid: bool = True,
) -> dict[str, dict[str, Any]]:
    """`lotocv` scoring each of `splits` of the held-out topic with the same trained wrapper and probes (one
    training per topic): {split: result}. A recipe is chosen on "val", the report read on "test"."""
    names = sorted(set(pool.topic[np.isin(pool.split, splits)])) if topics is None else list(topics)
    baselines = baseline_scores(pool.fields)
    results: dict[str, dict[str, Any]] = {split: {} for split in splits}
    for name in names:
        if on_topic:
            on_topic(name)
        held = (pool.topic == name) | (pool.origin == name)
        train, val = (~held) & (pool.split == "train"), (~held) & (pool.split == "val")
        scored = {split: (pool.topic == name) & (pool.split == split) for split in splits}
        if not any(mask.any() for mask in scored.values()):
            raise MetaspiderError(f"topic {name!r} has no {' or '.join(splits)} questions in the runs")
        if not train.any() or not val.any():
            raise MetaspiderError(
                f"leaving out {name!r} leaves no train or no val questions: collect the other topics' train and val splits"
            )
        wrong = ~pool.correct
        wrapper, columns = train_wrapper(
            pool.config, pool.acts[train], wrong[train], pool.acts[val], wrong[val], stage_a
        )
        signals = fitted_signals(pool, wrapper, columns, train, val, hybrid, stage_a)
        probe_x = {split: pool.acts[mask] for split, mask in scored.items() if mask.any()}
        probes = probe_scores_many(pool.acts[train], wrong[train], pool.acts[val], wrong[val], probe_x)
        for split, test in scored.items():
            if not test.any():
                continue
            extra, support = signals(test)
            scores: dict[str, np.ndarray] = {
                "wrapper": _sigmoid_logits(wrapper, pool.acts[test][:, columns]),
                "linear_probe": probes[split],
                **extra,
            }
            scores |= {method: values[test] for method, values in baselines.items() if not np.isnan(values[test]).all()}
            correct = pool.correct[test]
            per_method = {method: rank_metrics(scores[method], correct) for method in METHODS if method in scores}
            results[split][name] = {
                "n": int(test.sum()),
                "base_accuracy": float(correct.mean()),
                "n_consistency": per_method.get("consistency", {}).get("n", 0),
                "support": float(np.mean(support)),
                **{
                    key: {m: v[key] for m, v in per_method.items()}
                    for key in ("auroc", "aurc", "selective_accuracy_50")
                },
            }
    return {
        split: {
            "model": pool.config.model,
            "scored_split": split,
            "read_layers": list(pool.config.read_layers),
            "topics": topic_results,
            **{
                f"mean_{key}": mean_over_topics(topic_results, key)
                for key in ("auroc", "aurc", "selective_accuracy_50")
            },
            "consistency_topics": sorted(name for name, r in topic_results.items() if r["n_consistency"]),
        }
        for split, topic_results in results.items()
    }


def mean_over_topics(results: dict[str, Any], key: str) -> dict[str, float]:
    """Per method, the unweighted mean over the topics where the method has a value (NaN skipped): each
    topic counts once, however many questions it has."""
    methods = [m for m in METHODS if any(m in r[key] for r in results.values())]
    out = {}
    for method in methods:
        values = [r[key][method] for r in results.values() if method in r[key] and not math.isnan(r[key][method])]
        out[method] = float(np.mean(values)) if values else math.nan
    return out


def _sigmoid_logits(wrapper: Any, acts: np.ndarray) -> np.ndarray:
    import torch

    from metaspider.loom.stage_a import confidence_logits

    return torch.sigmoid(confidence_logits(wrapper, acts)).numpy()
