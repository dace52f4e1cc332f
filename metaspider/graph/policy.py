"""The routing policy: a score u becomes answer, tool, escalate or refuse.

The bands come from the spec (`policy:`); `max_risk` swaps the hand-set answer threshold for the one
the wrapper was calibrated to, so the risk guarantee comes from data rather than from a guess."""

from __future__ import annotations

from dataclasses import dataclass

from metaspider.errors import MetaspiderError
from metaspider.graph.spec import AgentSpec
from metaspider.graph.state import Route


@dataclass(frozen=True)
class Thresholds:
    """The u thresholds the agent routes on (answer / use a tool / escalate), and where the answer threshold came
    from (the spec, or a calibrated guarantee)."""

    answer_below: float
    tool_below: float | None = None
    escalate_above: float | None = None
    source: str = "spec"
    """Where answer_below comes from: "spec", or the calibration it was taken from."""


@dataclass(frozen=True)
class Decision:
    """Where a question goes after pass 1, and why (shown by `/why`)."""

    route: Route
    reason: str


def thresholds_for(spec: AgentSpec) -> Thresholds:
    """The spec's thresholds, with `max_risk` resolved against the wrapper's calibration."""
    policy = spec.policy
    answer_below = policy.answer_below
    source = "spec"
    if policy.max_risk is not None:
        answer_below, source = _calibrated_threshold(spec)
    assert answer_below is not None
    return Thresholds(answer_below, policy.tool_below, policy.escalate_above, source)


def _calibrated_threshold(spec: AgentSpec) -> tuple[float, str]:
    """The most permissive calibrated threshold whose guarantee is at least as strict as asked."""
    if spec.wrapper is None:
        raise MetaspiderError("policy.max_risk needs a wrapper (its calibration); the spec has wrapper: null")
    assert spec.policy.max_risk is not None
    return calibrated_threshold(spec.wrapper, spec.model, spec.policy.max_risk, spec.policy.delta, "policy.max_risk")


def calibrated_threshold(
    wrapper_spec: str, model: str | None, max_risk: float, delta: float, name: str = "max_risk"
) -> tuple[float, str]:
    """(threshold, source): the most permissive threshold the wrapper was calibrated for (`metaloom
    calibrate`) whose guarantee is at least as strict as selective risk <= `max_risk` with probability
    >= 1 - `delta`. `name` is how the error message calls the setting."""
    from metaspider.core.wrapper.handle import Wrapper

    wrapper = Wrapper.open(wrapper_spec, model)
    folder = wrapper.source
    calibrated = wrapper.manifest.calibrated
    fitting = [c for c in calibrated if c.max_risk <= max_risk and c.delta <= delta]
    if not fitting:
        available = ", ".join(f"max_risk {c.max_risk} (delta {c.delta})" for c in calibrated) or "none"
        raise MetaspiderError(
            f"{name} {max_risk} (delta {delta}): wrapper {folder} has no calibrated threshold that "
            f"guarantees it; calibrated: {available}. Run `metaloom calibrate` for this risk or use answer_below"
        )
    best = max(fitting, key=lambda c: c.threshold)
    return best.threshold, f"calibrated for max_risk {best.max_risk} (delta {best.delta})"


def decide(
    score: float,
    thresholds: Thresholds,
    *,
    tool_available: bool,
    has_tool_results: bool,
    can_escalate: bool,
) -> Decision:
    """One routing decision.

    In the tool band with no tool left to try, a turn that already holds tool results answers from
    them: the tool was the way to answer a question the model alone was unsure of."""
    t = thresholds
    if score < t.answer_below:
        return Decision("answer", f"u={score:.2f} is below answer_below={t.answer_below:.2f}")
    if can_escalate and t.escalate_above is not None and score >= t.escalate_above:
        return Decision("escalate", f"u={score:.2f} is at or above escalate_above={t.escalate_above:.2f}")
    if t.tool_below is not None and score < t.tool_below:
        band = f"u={score:.2f} is in the tool band [{t.answer_below:.2f}, {t.tool_below:.2f})"
        if tool_available:
            return Decision("tool", band)
        if has_tool_results:
            return Decision("answer", f"{band}; no tool left to try, answering from the tool results")
        return Decision("refuse", f"{band} but no tool applies to this question")
    if t.tool_below is not None and score >= t.tool_below:
        return Decision("refuse", f"u={score:.2f} is at or above tool_below={t.tool_below:.2f}")
    return Decision("refuse", f"u={score:.2f} is at or above answer_below={t.answer_below:.2f}")
