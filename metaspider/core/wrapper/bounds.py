"""A wrapper's dimensions checked against the base model before anything is allocated.

A manifest's numbers size the wrapper's matrices (d_model × bottleneck, d_model × d_model, ...): a
garbled or hostile manifest with `d_model: 1000000000` must be refused with a message, not allocate
until the machine falls over. The base model fixes what is sane: the residual width is the model's, the
bottleneck is narrower than a few widths, the layers are blocks the backbone can read or write."""

from __future__ import annotations

from pathlib import Path

from metaspider.core.wrapper.config import WrapperConfig
from metaspider.errors import MetaspiderError

MAX_BOTTLENECK_FACTOR = 4
"""The bottleneck may be at most this many times the model's width."""


def check_against_base(config: WrapperConfig, d_model: int, n_layers: int, where: str | Path) -> None:
    """Raise one `MetaspiderError` naming `where` and the field if `config` cannot fit this base model."""
    if config.d_model != d_model:
        raise MetaspiderError(f"{where}: d_model is {config.d_model}, but the base model's width is {d_model}")
    if config.bottleneck > MAX_BOTTLENECK_FACTOR * d_model:
        raise MetaspiderError(
            f"{where}: bottleneck {config.bottleneck} exceeds {MAX_BOTTLENECK_FACTOR} × the base model's width {d_model}"
        )
    if config.n_heads > config.bottleneck:
        raise MetaspiderError(f"{where}: n_heads {config.n_heads} exceeds bottleneck {config.bottleneck}")
    for field, layers in (("read_layers", config.read_layers), ("inject_layers", config.inject_layers)):
        bad = [layer for layer in layers if not 0 <= layer < n_layers - 1]
        if bad:
            raise MetaspiderError(
                f"{where}: {field} {bad} are outside the base model's blocks 0..{n_layers - 2} (the last is not usable)"
            )
