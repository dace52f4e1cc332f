"""The wrapper's shape and modes, in one frozen record that the wrapper file stores as JSON.

Both implementations (torch for training, NumPy for deployment) are built from this record, and
`weight_shapes` is the single list of tensor names and shapes they agree on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from metaspider.errors import MetaspiderError

INJECTION_MODES = ("tokens", "pooled")
POSITION_MODES = ("generated", "all")


@dataclass(frozen=True)
class WrapperConfig:
    """Dimensions, layers and modes of one wrapper.

    `damping_floor` and `damping_tau` shrink the injection over generated steps, offset scale at step s =
    floor + (1 - floor) * exp(-s / tau): high gains run away into degenerate text on long answers.
    floor = 1.0 means no damping.
    """

    d_model: int
    read_layers: tuple[int, ...]
    inject_layers: tuple[int, ...]
    bottleneck: int = 128
    n_heads: int = 4
    injection: str = "tokens"
    positions: str = "generated"
    gate_init: float = 0.3
    damping_floor: float = 1.0
    damping_tau: float = 32.0

    def __post_init__(self) -> None:
        _check_positive_int("d_model", self.d_model)
        _check_layers("read_layers", self.read_layers)
        _check_layers("inject_layers", self.inject_layers)
        _check_positive_int("bottleneck", self.bottleneck)
        _check_positive_int("n_heads", self.n_heads)
        if self.bottleneck % self.n_heads:
            raise MetaspiderError(
                f"wrapper config: bottleneck {self.bottleneck} is not divisible by n_heads {self.n_heads}"
            )
        if self.injection not in INJECTION_MODES:
            raise MetaspiderError(f"wrapper config: injection must be one of {INJECTION_MODES}, got {self.injection!r}")
        if self.positions not in POSITION_MODES:
            raise MetaspiderError(f"wrapper config: positions must be one of {POSITION_MODES}, got {self.positions!r}")
        if not 0.0 <= self.damping_floor <= 1.0:
            raise MetaspiderError(f"wrapper config: damping_floor must be in [0, 1], got {self.damping_floor}")
        if not self.damping_tau > 0.0:
            raise MetaspiderError(f"wrapper config: damping_tau must be > 0, got {self.damping_tau}")

    @property
    def head_dim(self) -> int:
        return self.bottleneck // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["read_layers"] = list(self.read_layers)
        data["inject_layers"] = list(self.inject_layers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WrapperConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MetaspiderError(f"wrapper config: unknown field(s) {unknown}; known fields are {sorted(known)}")
        missing = [name for name in ("d_model", "read_layers", "inject_layers") if name not in data]
        if missing:
            raise MetaspiderError(f"wrapper config: missing field(s) {missing}")
        values = dict(data)
        for name in ("read_layers", "inject_layers"):
            if not isinstance(values[name], (list, tuple)):
                raise MetaspiderError(f"wrapper config: {name} must be a list of block indices, got {values[name]!r}")
            values[name] = tuple(values[name])
        return cls(**values)

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor of the wrapper by state-dict name; scalars are shape (1,) so every format holds them."""
        d, b = self.d_model, self.bottleneck
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in self.read_layers:
            shapes |= {
                f"readers.{layer}.norm.weight": (d,),
                f"readers.{layer}.norm.bias": (d,),
                f"readers.{layer}.proj.weight": (b, d),
                f"readers.{layer}.proj.bias": (b,),
                f"readers.{layer}.gate": (1,),
            }
        shapes |= {
            "shared_in.weight": (d, b),
            "shared_in.bias": (d,),
            "shared_out.weight": (d, d),
            "shared_out.bias": (d,),
            "shared_norm.weight": (d,),
            "shared_norm.bias": (d,),
            "confidence.query": (d,),
            "confidence.hidden.weight": (b, d),
            "confidence.hidden.bias": (b,),
            "confidence.out.weight": (1, b),
            "confidence.out.bias": (1,),
            "calib_a": (1,),
            "calib_b": (1,),
            "e_doubt": (d,),
            "e_sure": (d,),
        }
        for layer in self.inject_layers:
            shapes |= {
                f"heads.{layer}.norm.weight": (d,),
                f"heads.{layer}.norm.bias": (d,),
                f"heads.{layer}.down.weight": (b, d),
                f"heads.{layer}.down.bias": (b,),
                f"heads.{layer}.q.weight": (b, b),
                f"heads.{layer}.q.bias": (b,),
                f"heads.{layer}.k.weight": (b, d),
                f"heads.{layer}.k.bias": (b,),
                f"heads.{layer}.v.weight": (b, d),
                f"heads.{layer}.v.bias": (b,),
                f"heads.{layer}.up.weight": (d, b),
                f"heads.{layer}.up.bias": (d,),
                f"heads.{layer}.gate": (1,),
            }
        return shapes


def default_layers(n_layers: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(read, inject) block indices: read the late third, inject at three late blocks; never the last block,
    whose output llama.cpp prunes and transformers normalises."""
    if n_layers < 2:
        raise MetaspiderError(f"a wrapper needs a base model with at least 2 blocks, this one has {n_layers}")
    last = n_layers - 1
    read_start = max(0, min(n_layers - n_layers // 3, last - 1))
    read = tuple(range(read_start, last))
    inject = tuple(layer for layer in range(n_layers - 4, last) if layer >= 0)
    return read, inject


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise MetaspiderError(f"wrapper config: {name} must be a positive integer, got {value!r}")


def _check_layers(name: str, layers: Any) -> None:
    if not isinstance(layers, tuple) or not layers:
        raise MetaspiderError(f"wrapper config: {name} must be a non-empty tuple of block indices, got {layers!r}")
    if any(not isinstance(x, int) or isinstance(x, bool) or x < 0 for x in layers):
        raise MetaspiderError(f"wrapper config: {name} must hold block indices >= 0, got {layers!r}")
    if any(a >= b for a, b in zip(layers, layers[1:])):
        raise MetaspiderError(f"wrapper config: {name} must be strictly increasing, got {layers!r}")
