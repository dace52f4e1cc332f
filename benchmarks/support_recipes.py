"""Which support and fallback recipe? Leave-one-topic-out scored on the held-out topics' val splits.

    python benchmarks/support_recipes.py --run /work/runs/smollm2-135m [--split val]

For each topic, stage A is trained on the other topics (as `metaloom lotocv` does) and the held-out
topic's val split (never its test split) is scored by u blended toward the first-token fallback under
each support recipe: the space the distance is measured in (`bottleneck`: the confidence head's hidden
vector; `pca32`: the first 32 principal components of the read blocks' mean activation) and the step
(centre at the val split's 95th or 99th percentile of squared distance, width a third or a tenth of its
gap to the median); and by `stack`, a logistic regression on (u's logit, 1 − first-token max-softmax
probability, entropy) fitted on the other topics' val split. Writes
benchmarks/results/support_recipes.{json,md}."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA

from metaspider.core.wrapper.support import baseline_features, blend, mahalanobis_sq, support_from_distance
from metaspider.loom.fallback import fit_logistic
from metaspider.loom.hybrid import apply_stack
from metaspider.loom.lotocv import fit_pool_stack, load_pool, probe_scores, rank_metrics, train_wrapper
from metaspider.loom.report import json_safe
from metaspider.loom.run_folder import RunFolder
from metaspider.loom.stage_a import confidence_logits

RESULTS = Path(__file__).resolve().parent / "results"
STEPS = {"q95/3": (0.95, 3.0), "q99/10": (0.99, 10.0)}


def score_topics(run: RunFolder, split: str) -> dict[str, Any]:
    """Per held-out topic: AUROC of each recipe (NaN where the split is all right or all wrong) and mean support."""
    pool = load_pool([run])
    wrong = ~pool.correct
    first = baseline_features(pool.fields["msp_first"], pool.fields["entropy_first"])
    out = {}
    for name in sorted(set(pool.topic[pool.split == split])):
        print(f"  holding out {name}", file=sys.stderr)
        held = (pool.topic == name) | (pool.origin == name)
        train, val = (~held) & (pool.split == "train"), (~held) & (pool.split == "val")
        scored = (pool.topic == name) & (pool.split == split)
        wrapper, columns = train_wrapper(pool.config, pool.acts[train], wrong[train], pool.acts[val], wrong[val])
        logit_val = confidence_logits(wrapper, pool.acts[val][:, columns]).numpy()
        logit = confidence_logits(wrapper, pool.acts[scored][:, columns]).numpy()
        u = fit_logistic(logit_val[:, None], wrong[val])(logit[:, None])
        usable = val & np.isfinite(first).all(axis=1)
        fallback = fit_logistic(first[usable], wrong[usable])(np.nan_to_num(first[scored]))
        stack = fit_logistic(
            np.column_stack([logit_val, first[val]])[np.isfinite(first[val]).all(axis=1)],
            wrong[val][np.isfinite(first[val]).all(axis=1)],
        )
        correct = pool.correct[scored]
        fields = pool.fields
        stack_oot = fit_pool_stack(pool, columns, train, val)
        u_raw = 1 / (1 + np.exp(-logit))
        hybrid = apply_stack(stack_oot, u_raw, fields["msp_first"][scored], fields["entropy_first"][scored])
        probe = probe_scores(pool.acts[train], wrong[train], pool.acts[val], wrong[val], pool.acts[scored])
        auroc = {
            "wrapper": rank_metrics(u, correct)["auroc"],
            "linear_probe": rank_metrics(probe, correct)["auroc"],
            "fallback": rank_metrics(fallback, correct)["auroc"],
            "msp_first": rank_metrics(1 - fields["msp_first"][scored], correct)["auroc"],
            "entropy_first": rank_metrics(fields["entropy_first"][scored], correct)["auroc"],
            "stack": rank_metrics(stack(np.column_stack([logit, np.nan_to_num(first[scored])])), correct)["auroc"],
            "stack_oot": rank_metrics(hybrid, correct)["auroc"],
        }
        support: dict[str, float] = {}
        for space, (a, b, c) in spaces(pool, wrapper, columns, train, val, scored).items():
            fit = LedoitWolf().fit(a)
            d2_val = mahalanobis_sq(b, fit.location_, fit.precision_)
            d2 = mahalanobis_sq(c, fit.location_, fit.precision_)
            for step, (quantile, divisor) in STEPS.items():
                center = float(np.quantile(d2_val, quantile))
                s = support_from_distance(d2, center, max((center - float(np.median(d2_val))) / divisor, 1e-6))
                auroc[f"{space} {step}"] = rank_metrics(blend(u, fallback, s), correct)["auroc"]
                support[f"{space} {step}"] = float(s.mean())
        out[name] = {"n": int(scored.sum()), "base_accuracy": float(correct.mean()), "auroc": auroc, "support": support}
    return out


def spaces(pool: Any, wrapper: Any, columns: list[int], *masks: np.ndarray) -> dict[str, tuple[np.ndarray, ...]]:
    """(train, val, scored) coordinates in each space a distance is measured in."""

    def bottleneck(mask: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.as_tensor(pool.acts[mask][:, columns].astype(np.float32))
            return wrapper.confidence.bottleneck(wrapper.encode(x)).numpy()

    def mean_acts(mask: np.ndarray) -> np.ndarray:
        return pool.acts[mask][:, columns].astype(np.float32).mean(axis=1)

    pca = PCA(32, random_state=0).fit(mean_acts(masks[0]))
    return {
        "bottleneck": tuple(bottleneck(m) for m in masks),
        "pca32": tuple(pca.transform(mean_acts(m)) for m in masks),
    }


def markdown(model: str, topics: dict[str, Any], command: str, split: str) -> str:
    methods = list(next(iter(topics.values()))["auroc"])
    means = {m: float(np.nanmean([t["auroc"][m] for t in topics.values()])) for m in methods}
    lines = [
        f"# Support recipes on {model}: leave-one-topic-out, held-out {split} splits",
        "",
        f"Command: `{command}`",
        "",
        "AUROC per held-out topic ('–': all right or all wrong). `wrapper`: stage A's u alone (Platt on val); "
        "`fallback`: the logistic regression on the first token's max-softmax probability and entropy alone; "
        "`SPACE qQ/D`: u blended toward the fallback by support measured in SPACE, step centred at the val "
        "split's Q-quantile of squared distance, width 1/D of its gap to the median; `stack`: one logistic "
        "regression on u's logit and the first-token values, fitted on the other topics' val split; `stack_oot`: "
        "the same regression fitted on out-of-topic logits (`metaspider/loom/hybrid.py`); `linear_probe`: a "
        "logistic regression per read block, averaged. Means are over the topics with an AUROC.",
        "",
        "| topic | n | acc | " + " | ".join(methods) + " |",
        "|" + "---|" * (len(methods) + 3),
    ]
    for name, t in topics.items():
        cells = " | ".join("–" if v != v else f"{v:.3f}" for v in t["auroc"].values())
        lines.append(f"| {name} | {t['n']} | {t['base_accuracy']:.2f} | {cells} |")
    lines.append("| **mean** | | | " + " | ".join(f"**{means[m]:.3f}**" for m in methods) + " |")
    support_keys = list(next(iter(topics.values()))["support"])
    lines += ["", "Mean support per held-out topic:", "", "| topic | " + " | ".join(support_keys) + " |"]
    lines.append("|" + "---|" * (len(support_keys) + 1))
    for name, t in topics.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in t["support"].values()) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--split", default="val", help="The held-out topics' split to score (val: never test)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "support_recipes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = "python benchmarks/support_recipes.py " + shlex.join(sys.argv[1:])
    run = RunFolder(args.run)
    model = run.config().model
    topics = score_topics(run, args.split)
    payload = {"command": command, "model": model, "split": args.split, "topics": topics}
    args.out.with_suffix(".json").write_text(json.dumps(json_safe(payload), indent=2) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(markdown(model, topics, command, args.split), encoding="utf-8")
    print(f"wrote {args.out}.{{json,md}}", file=sys.stderr)


if __name__ == "__main__":
    main()
