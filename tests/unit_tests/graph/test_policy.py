import json
from pathlib import Path

import pytest

from metaspider.core.wrapper.config import WrapperConfig
from metaspider.core.wrapper.folder import CalibratedThreshold, WrapperManifest
from metaspider.errors import MetaspiderError
from metaspider.graph.policy import Thresholds, decide, thresholds_for
from metaspider.graph.spec import AgentSpec

BANDS = Thresholds(answer_below=0.3, tool_below=0.6, escalate_above=0.9)


def route(score: float, *, tools: bool = True, results: bool = False, escalation: bool = True) -> str:
    return decide(score, BANDS, tool_available=tools, has_tool_results=results, can_escalate=escalation).route


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.0, "answer"),
        (0.29, "answer"),
        (0.3, "tool"),
        (0.59, "tool"),
        (0.6, "refuse"),
        (0.89, "refuse"),
        (0.9, "escalate"),
        (1.0, "escalate"),
    ],
)
def test_bands(score: float, expected: str):
    assert route(score) == expected


def test_tool_band_without_a_tool_refuses_or_answers_from_earlier_results():
    assert route(0.4, tools=False) == "refuse"
    assert route(0.4, tools=False, results=True) == "answer"


def test_without_escalation_the_top_band_refuses():
    assert route(0.95, escalation=False) == "refuse"


def test_reason_names_the_score_and_threshold():
    reason = decide(0.95, BANDS, tool_available=True, has_tool_results=False, can_escalate=True).reason
    assert "u=0.95" in reason and "escalate_above=0.90" in reason


def write_wrapper_manifest(folder: Path, calibrated: list[CalibratedThreshold]) -> Path:
    """Only the manifest: the policy reads the calibration, never the weights."""
    config = WrapperConfig(d_model=576, read_layers=(20, 21), inject_layers=(24,), bottleneck=16, n_heads=2)
    manifest = WrapperManifest("fingerprint", "smollm2-135m", config, calibrated=tuple(calibrated))
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(manifest.to_dict()), encoding="utf-8")
    return folder


def max_risk_spec(wrapper: Path | None, max_risk: float, delta: float = 0.1) -> AgentSpec:
    return AgentSpec.model_validate(
        {
            "model": "smollm2-135m",
            "wrapper": str(wrapper) if wrapper else None,
            "policy": {"max_risk": max_risk, "delta": delta},
        }
    )


def test_max_risk_takes_the_most_permissive_calibrated_threshold_that_guarantees_it(tmp_path: Path):
    folder = write_wrapper_manifest(
        tmp_path / "w",
        [CalibratedThreshold(0.05, 0.1, 0.12), CalibratedThreshold(0.1, 0.1, 0.31), CalibratedThreshold(0.2, 0.1, 0.5)],
    )
    thresholds = thresholds_for(max_risk_spec(folder, 0.1))
    assert thresholds.answer_below == 0.31
    assert "max_risk 0.1" in thresholds.source


def test_max_risk_without_a_fitting_calibration_is_a_clear_error(tmp_path: Path):
    folder = write_wrapper_manifest(tmp_path / "w", [CalibratedThreshold(0.2, 0.1, 0.5)])
    with pytest.raises(MetaspiderError, match=r"max_risk 0.1 .*calibrated: max_risk 0.2 \(delta 0.1\)"):
        thresholds_for(max_risk_spec(folder, 0.1))
    with pytest.raises(MetaspiderError, match="no calibrated threshold"):
        thresholds_for(max_risk_spec(folder, 0.3, delta=0.05))


def test_max_risk_needs_a_wrapper():
    with pytest.raises(MetaspiderError, match="needs a wrapper"):
        thresholds_for(max_risk_spec(None, 0.1))
