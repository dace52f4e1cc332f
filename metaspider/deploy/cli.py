"""`metaspider deploy export|verify`. Heavy imports stay inside the commands: `export` must run where
torch is not installed. The deploy library takes prompts, not data sets; this command layer is the one
place in `metaspider/deploy` that turns a data set's split into prompts (`_prompts`, imported lazily)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

deploy_app = typer.Typer(help="Export a wrapper to a GGUF sidecar and check it on llama.cpp.", no_args_is_help=True)
console = Console()


WrapperArgument = typer.Argument(
    ..., help="A wrapper folder (manifest.json + weights.safetensors), a .gguf sidecar, or 'default' (needs --model)."
)


@deploy_app.command("export")
def export(
    wrapper: str = WrapperArgument,
    out: Path = typer.Option(..., "--out", help="The sidecar to write (.gguf)."),
    weights: str = typer.Option("q8_0", "--weights", help="Matrix storage: q8_0 (small) or f32 (bit-exact)."),
    control_vector: Path | None = typer.Option(
        None, "--control-vector", help="Also write a llama.cpp control vector (pooled wrappers only)."
    ),
    doubt: float = typer.Option(1.0, "--doubt", help="Control vector: u' baked in (1 full doubt, 0 full confidence)."),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Base model: picks the 'default' wrapper; the control vector runs it (default: the wrapper's).",
    ),
    calibration: str | None = typer.Option(
        None, "--calibration", help="Control vector: data set whose calib split is averaged (default: the wrapper's)."
    ),
    threads: int | None = typer.Option(None, "--threads", help="Control vector: CPU threads (default: all cores)."),
) -> None:
    """Write the GGUF sidecar that runs the wrapper on stock llama.cpp without torch."""
    from metaspider.core.wrapper.handle import Wrapper

    path = Wrapper.open(wrapper, model).export(out, weights)
    manifest = Wrapper.open(path).manifest
    config = manifest.config
    console.print(
        f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {config.injection}/{config.positions}, "
        f"base {manifest.base_model} {manifest.base_fingerprint})"
    )
    if control_vector is not None:
        from metaspider.deploy.control_vector import (
            CALIBRATION_PROMPTS,
            check_pooled,
            export_control_vector,
            training_set,
        )

        check_pooled(config)
        prompts = _prompts(calibration or training_set(manifest), "calib", CALIBRATION_PROMPTS)
        cv = export_control_vector(path, control_vector, [m for _, m in prompts], model, doubt, n_threads=threads)
        console.print(f"wrote {cv}: use with llama-cli --control-vector {cv}")


@deploy_app.command("verify")
def verify(
    model: str = typer.Option(..., "--model", help="Base model name or GGUF path."),
    wrapper: str = typer.Option(
        ...,
        "--wrapper",
        "--sidecar",
        help="The sidecar to check, or a wrapper folder or 'default' (exported to a Q8_0 sidecar first).",
    ),
    dataset: str = typer.Option("countries", "--dataset", help="Data set; its held-out test split is used."),
    limit: int = typer.Option(50, "--limit", help="How many test items."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for both backends (default: all cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
) -> None:
    """Compare the sidecar on llama.cpp with the same wrapper on Torch: activations, u, decisions, text.
    Exits with 1 when the parity targets are missed."""
    from metaspider.deploy.verify import TARGETS
    from metaspider.deploy.verify import verify as run_verify

    report = run_verify(model, wrapper, _prompts(dataset, "test", limit), threads, dataset=dataset, split="test")
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        table = Table(title=f"{Path(wrapper).name} on {model}: {report.n} {dataset} test items")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_column("target", justify="right")
        table.add_row("activation_cosine_min", f"{report.activation_cosine_min:.4f}", "")
        table.add_row("u_abs_diff_median", f"{report.u_abs_diff_median:.4f}", f"<= {TARGETS['u_abs_diff_median']}")
        table.add_row("u_abs_diff_max", f"{report.u_abs_diff_max:.4f}", "")
        table.add_row("decision_agreement", f"{report.decision_agreement:.3f}", f">= {TARGETS['decision_agreement']}")
        table.add_row("text_agreement", f"{report.text_agreement:.3f}", "")
        console.print(table)
        console.print("[green]parity OK[/]" if report.passed else "[red]parity targets missed[/]")
    if not report.passed:
        raise typer.Exit(1)


def _prompts(dataset: str, split: str, limit: int | None) -> list[tuple[str, list[dict[str, str]]]]:
    """(id, messages) of the first `limit` items of a data set's split. The deploy library takes prompts, not
    data sets: this command layer is the one place that asks the training side's data sets for them."""
    from metaspider.loom.datasets import load_items, split_items, to_messages

    items = split_items(load_items(dataset), split)[:limit]
    return [(item.id, to_messages(item)) for item in items]
