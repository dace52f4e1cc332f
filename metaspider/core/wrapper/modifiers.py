"""Modifiers act on the uncertainty signal, never on the weights, so one trained wrapper serves several
behaviours. The runtime gain is separate: it scales the injected offsets (0 = the bare model)."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
from pydantic import FiniteFloat

from metaspider.core.names import MODIFIER_NAMES, ModifierName
from metaspider.core.schema import Schema

__all__ = ["DEFAULT_DOUBTER_BIAS", "MODIFIER_NAMES", "Modifier", "doubt"]

DEFAULT_DOUBTER_BIAS = 1.5

U = TypeVar("U")  # a float, a NumPy array or a torch tensor: doubt() uses only arithmetic


def doubt(u: U, bias: Any) -> U:
    """The Doubter's formula u' = sigmoid(logit(u) + bias), written without the logit so u = 0 and u = 1 stay
    finite. `u` and `bias` may be floats, NumPy arrays or torch tensors (one bias per row, as in training)."""
    if isinstance(bias, (int, float)):
        scale = math.exp(-bias)
    elif hasattr(bias, "exp"):  # a torch tensor, handled without importing torch
        scale = (-bias).exp()
    else:
        scale = np.exp(-np.asarray(bias))
    return u / (u + (1 - u) * scale)  # type: ignore[operator, return-value]


class Modifier(Schema):
    """`watchdog`: report u, inject nothing. `doubter`: feed back u' = sigmoid(logit(u) + bias), so the model
    refuses more. `none`: feed back u as trained."""

    _title = "modifier"

    name: ModifierName = "doubter"
    bias: FiniteFloat = DEFAULT_DOUBTER_BIAS

    def apply(self, u: U) -> U | None:
        """u' to feed back, or None when nothing should be injected."""
        if self.name == "watchdog":
            return None
        if self.name == "none":
            return u
        return doubt(u, self.bias)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the manifest stores (the manifest adds the runtime gain beside it)."""
        return {"name": self.name, "bias": self.bias}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Modifier:
        """Validate a stored modifier; unknown fields and names are refused with the accepted ones."""
        return cls.parse(data)
