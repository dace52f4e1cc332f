"""Modifiers act on the uncertainty signal, never on the weights, so one trained wrapper serves several
behaviours. The runtime gain is separate: it scales the injected offsets (0 = the bare model)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeVar

from metaspider.errors import MetaspiderError

MODIFIER_NAMES = ("watchdog", "doubter", "none")
DEFAULT_DOUBTER_BIAS = 1.5

U = TypeVar("U")  # a float, a NumPy array or a torch tensor: apply() uses only arithmetic


@dataclass(frozen=True)
class Modifier:
    """`watchdog`: report u, inject nothing. `doubter`: feed back u' = sigmoid(logit(u) + bias), so the model
    refuses more. `none`: feed back u as trained."""

    name: str = "doubter"
    bias: float = DEFAULT_DOUBTER_BIAS

    def __post_init__(self) -> None:
        if self.name not in MODIFIER_NAMES:
            raise MetaspiderError(f"modifier must be one of {MODIFIER_NAMES}, got {self.name!r}")
        if not isinstance(self.bias, (int, float)) or not math.isfinite(self.bias):
            raise MetaspiderError(f"modifier bias must be a finite number, got {self.bias!r}")

    def apply(self, u: U) -> U | None:
        """u' to feed back, or None when nothing should be injected."""
        if self.name == "watchdog":
            return None
        if self.name == "none":
            return u
        # sigmoid(logit(u) + bias) without the logit, so u = 0 and u = 1 stay finite.
        return u / (u + (1 - u) * math.exp(-self.bias))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "bias": self.bias}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Modifier:
        unknown = sorted(set(data) - {"name", "bias"})
        if unknown:
            raise MetaspiderError(f"modifier: unknown field(s) {unknown}; known fields are ['bias', 'name']")
        return cls(**data)
