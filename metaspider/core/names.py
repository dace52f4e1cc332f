"""The closed vocabularies the user types: backend, modifier, injection and position names.

Each is one `Literal` type, so pydantic models (agent spec, chat model, wrapper files) validate against it,
and one tuple of its values, so CLIs and error messages list exactly the same names."""

from __future__ import annotations

from typing import Literal, get_args

Backend = Literal["llama_cpp", "torch"]
BACKENDS: tuple[str, ...] = get_args(Backend)

ModifierName = Literal["watchdog", "doubter", "none"]
MODIFIER_NAMES: tuple[str, ...] = get_args(ModifierName)

InjectionMode = Literal["tokens", "pooled"]
INJECTION_MODES: tuple[str, ...] = get_args(InjectionMode)

PositionMode = Literal["generated", "all"]
POSITION_MODES: tuple[str, ...] = get_args(PositionMode)

SidecarWeightType = Literal["q8_0", "f32"]
SIDECAR_WEIGHT_TYPES: tuple[str, ...] = get_args(SidecarWeightType)
