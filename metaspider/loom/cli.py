"""`metaloom` / `metaspider loom`: collect → train → eval → calibrate."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from metaspider.errors import MetaspiderError

loom_app = typer.Typer(help="Collect, train, evaluate and calibrate wrappers.", no_args_is_help=True)
console = Console(stderr=True)

RunOption = Annotated[Path, typer.Option("--run", help="Run folder (created by collect).")]
ThreadsOption = Annotated[
    int | None,
    typer.Option("--threads", help="CPU threads for the base model (default: all; with --ray: 1 per worker)."),
]
RayOption = Annotated[
    bool, typer.Option("--ray", help="Collect on Ray workers (a local Ray cluster unless --ray-address).")
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address", help="Join this Ray cluster (e.g. auto, HOST:6379, ray://HOST:10001); implies --ray."
    ),
]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", help="Ray workers, each with its own model copy (default: fill the CPUs).")
]


@loom_app.command("collect")
def collect_command(
    run: RunOption,
    model: Annotated[str, typer.Option("--model", help="Base model name or GGUF path.")] = "smollm2-135m",
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset", help="mmlu, countries, a topic of docs/topics.md (elements, ..., mixture), or a JSONL file."
        ),
    ] = "countries",
    split: Annotated[str, typer.Option("--split", help="train, val, calib, test or all.")] = "train",
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="Only N questions of the split, picked by a hash of their id (every subject)."),
    ] = None,
    consistency: Annotated[
        int,
        typer.Option(
            "--consistency",
            help="Sample 5 answers at T=0.7 for N questions of the split (hash-picked) to score consistency.",
        ),
    ] = 0,
    threads: ThreadsOption = None,
    ray: RayOption = False,
    ray_address: RayAddressOption = None,
    workers: WorkersOption = None,
) -> None:
    """Run the base model over a split; keep answers, baselines and activations (resumable)."""
    from metaspider.core.wrapper.config import default_layers
    from metaspider.loom.backbones import llama_backbone
    from metaspider.loom.collect import collect
    from metaspider.loom.run_folder import RunConfig, RunFolder

    folder = RunFolder(run)
    ray_options = _ray_options(ray, ray_address, workers, threads)
    if ray_options is not None:
        from metaspider.loom.ray_collect import ray_collect

        summary = ray_collect(folder, model, dataset, split, limit, ray_options, consistency=consistency)
    else:
        backbone = llama_backbone(model, threads)
        if folder.has_config():
            config = folder.config()
            if config.model != model:
                raise MetaspiderError(
                    f"{run} was collected with --model {config.model}, not {model}: use another --run folder"
                )
        else:
            read, inject = default_layers(backbone.n_layers)
            config = RunConfig(model, backbone.fingerprint, read, inject, min(inject) - 1)
        summary = collect(folder, backbone, config, dataset, split, limit, consistency)
    console.print(
        f"{summary.dataset}/{summary.split}: {summary.n_items} questions stored ({summary.n_new} new), "
        f"base accuracy {100 * summary.accuracy:.1f} %"
    )


@loom_app.command("train")
def train_command(
    run: RunOption,
    stage: Annotated[
        str,
        typer.Option(
            "--stage",
            help="a (confidence), b (injection), all, or parts (refit support, fallbacks and heads fitted after A).",
        ),
    ] = "all",
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Epochs per stage (default: A up to 30, B 5; early stopping on val).")
    ] = None,
    threads: ThreadsOption = None,
    hybrid: Annotated[
        bool,
        typer.Option(
            "--hybrid/--no-hybrid",
            help="Stack u before the answer with the first token's probabilities (needs two or more data sets).",
        ),
    ] = False,
) -> None:
    """Train the wrapper on the run's train split (early stopping and calibration on val)."""
    from metaspider.loom.run_folder import RunFolder
    from metaspider.loom.train import train

    _torch_threads(threads)
    summary = train(RunFolder(run), stage, epochs, threads, hybrid)
    message = (
        f"trained stage(s) {', '.join(summary.stages)} on {summary.n_train} questions (val {summary.n_val}): "
        f"val AUROC {summary.val_auroc:.3f}, answer below u = {summary.answer_below:.3f}"
    )
    if summary.stage_b_val_loss:
        message += (
            f", stage B val loss {summary.stage_b_val_loss[0]:.3f} -> {summary.stage_b_val_loss[1]:.3f}, "
            f"Doubter bias {summary.doubter_bias:+.1f}"
        )
    console.print(message + f"\nwrapper: {RunFolder(run).wrapper_dir}")


@loom_app.command("eval")
def eval_command(
    run: RunOption,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Default: the run's training data set.")] = None,
    split: Annotated[str, typer.Option("--split", help="train, val, calib, test or all.")] = "test",
    model: Annotated[str | None, typer.Option("--model", help="Base model (default: the wrapper's).")] = None,
    wrapper: Annotated[
        str | None, typer.Option("--wrapper", help="A wrapper folder, or 'default' (shipped). Default: the run's.")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="Only N questions of the split, picked by a hash of their id (every subject)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print report.json to stdout.")] = False,
    record: Annotated[
        bool, typer.Option("--record", help="Also store the headline figures in the wrapper's manifest.")
    ] = False,
    threads: ThreadsOption = None,
    ray: RayOption = False,
    ray_address: RayAddressOption = None,
    workers: WorkersOption = None,
) -> None:
    """Score msp, entropy, the wrapper and the Doubter; write report.json, report.md, risk_coverage.png."""
    from metaspider.core.wrapper.folder import load_manifest
    from metaspider.core.wrapper.handle import resolve_wrapper_path
    from metaspider.loom.evaluate import evaluate, record_headline
    from metaspider.loom.report import json_safe
    from metaspider.loom.run_folder import RunFolder

    folder = RunFolder(run)
    if wrapper is None:
        wrapper_dir = folder.wrapper_dir
        if not wrapper_dir.is_dir():
            raise MetaspiderError(f"{run} holds no trained wrapper: run `metaloom train --run {run}` or pass --wrapper")
    else:
        wrapper_dir = resolve_wrapper_path(wrapper, model)
    manifest = load_manifest(wrapper_dir)
    if model is not None and model != manifest.base_model:
        raise MetaspiderError(f"{wrapper_dir} was trained for {manifest.base_model}, not --model {model}")
    if dataset is None:
        trained_on = list(manifest.training_data.get("datasets", {}))
        if not trained_on:
            raise MetaspiderError("pass --dataset: the wrapper names no training data set")
        dataset = trained_on[0]
    report = evaluate(
        folder, wrapper_dir, dataset, split, limit, threads, _ray_options(ray, ray_address, workers, threads)
    )
    if record:
        record_headline(wrapper_dir, report)
    if as_json:
        typer.echo(json.dumps(json_safe(report), indent=2))
    methods = report["methods"]
    doubter = methods["doubter"]
    refusals = (
        f"Doubter coverage {100 * doubter['coverage']:.1f} %, selective accuracy {100 * doubter['selective_accuracy_at_own_coverage']:.1f} %"
        if doubter
        else "no Doubter (stage A only)"
    )
    console.print(
        f"{report['dataset']}/{report['split']}: n={report['n']}, base accuracy {100 * report['base_accuracy']:.1f} %, "
        f"AUROC msp {methods['msp']['auroc']:.3f} entropy {methods['entropy']['auroc']:.3f} wrapper {methods['wrapper']['auroc']:.3f}; "
        f"{refusals} ({'cross-domain' if report['cross_domain'] else 'a held-out split of a training data set'})\nreport: {folder.path / 'report.md'}"
    )


@loom_app.command("calibrate")
def calibrate_command(
    run: RunOption,
    max_risk: Annotated[float, typer.Option("--max-risk", help="Highest acceptable selective risk (error rate).")],
    delta: Annotated[float, typer.Option("--delta", help="Allowed probability that the guarantee fails.")] = 0.1,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Calibration data set (default: the training ones).")
    ] = None,
) -> None:
    """Certify an answer threshold on the calib split (risk <= A w.p. >= 1 - D); store it in the wrapper."""
    from metaspider.loom.calibrate import calibrate
    from metaspider.loom.run_folder import RunFolder

    result = calibrate(RunFolder(run), max_risk, delta, dataset)
    console.print(
        f"answer when u < {result.threshold:.3f}: coverage {100 * result.coverage:.1f} % of {result.n} calib questions, "
        f"risk {100 * result.risk:.1f} % (bound {100 * result.risk_bound:.1f} % <= {100 * max_risk:.1f} % w.p. >= {1 - delta:.2f})"
    )


@loom_app.command("lotocv")
def lotocv_command(
    run: Annotated[
        list[Path],
        typer.Option(
            "--run", help="Run folder(s) of one model: one with many data sets, a mixed one, or one per topic."
        ),
    ],
    by: Annotated[
        str,
        typer.Option(
            "--by", help="Topic = each data set, each item's subject, or auto (subject for a single data set)."
        ),
    ] = "auto",
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write the JSON (default: RUN/lotocv.json of the first run).")
    ] = None,
    threads: ThreadsOption = None,
    score_split: Annotated[
        str,
        typer.Option(
            "--score-split", help="Score each held-out topic's test split, or its val split to choose a recipe."
        ),
    ] = "test",
) -> None:
    """Leave-one-topic-out: stage A and the probes trained on the other topics, scored on each topic's test
    split beside the baselines of both moments (AUROC, AURC, selective accuracy at 50 % coverage)."""
    from rich.table import Table

    from metaspider.loom.lotocv import METHODS, load_pool, lotocv
    from metaspider.loom.report import json_safe
    from metaspider.loom.run_folder import RunFolder

    _torch_threads(threads)
    pool = load_pool([RunFolder(r) for r in run], by)
    with console.status("leave-one-topic-out") as status:
        result = lotocv(
            pool,
            on_topic=lambda name: status.update(f"leave-one-topic-out: holding out {name}"),
            score_split=score_split,
        )
    target = out or Path(run[0]) / "lotocv.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(json_safe(result), indent=2) + "\n", encoding="utf-8")
    methods = [m for m in METHODS if m in result["mean_auroc"]]
    table = Table(title=f"{result['model']}: AUROC on each held-out topic's {score_split} split")
    for column in ("topic", "n", "acc", *methods):
        table.add_column(column, justify="left" if column == "topic" else "right")
    rows = [(name, r["n"], r["base_accuracy"], r["auroc"]) for name, r in result["topics"].items()]
    for name, n, accuracy, auroc in [*rows, ("mean", "", None, result["mean_auroc"])]:
        table.add_row(
            name, str(n), "" if accuracy is None else f"{accuracy:.2f}", *(_cell(auroc.get(m)) for m in methods)
        )
    # eleven columns of figures: never let a narrow or piped console abbreviate them
    Console(stderr=True, width=max(console.width, 150)).print(table)
    console.print(f"consistency run on: {', '.join(result['consistency_topics']) or 'no topic'}\nresults: {target}")


def _cell(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.3f}"


def _ray_options(ray: bool, address: str | None, workers: int | None, threads: int | None):
    """The Ray settings when --ray or --ray-address is given, else None (collect in this process)."""
    if not ray and address is None:
        if workers is not None:
            raise MetaspiderError("--workers applies to Ray collects: add --ray (or --ray-address)")
        return None
    from metaspider.loom.ray_collect import RayOptions

    if workers is not None and workers < 1:
        raise MetaspiderError(f"--workers must be at least 1, not {workers}")
    return RayOptions(address=address, workers=workers, threads=threads or 1)


def _torch_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
