"""report.json, report.md and risk_coverage.png for one evaluation: the writers of everything a reader looks at."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from numpy.typing import ArrayLike

from metaspider.core.files import write_text_atomically

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PLOT = "risk_coverage.png"


def write_report(folder: Path, report: dict[str, Any], curves: dict) -> None:
    """Write report.json, report.md and the risk-coverage plot into `folder`; `curves` maps a method to
    (coverage, selective risk) as `metrics.risk_coverage_curve` returns them."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomically(folder / REPORT_JSON, json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n")
    write_text_atomically(folder / REPORT_MD, markdown(report))
    risk_coverage_plot(curves, folder / PLOT)


def json_safe(value: Any) -> Any:
    """NaN (a metric with nothing to measure, e.g. accuracy at zero coverage) becomes null."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def targets(report: dict[str, Any]) -> dict[str, bool]:
    """The acceptance targets of a shipped Doubter: the wrapper beats the best baseline's AUROC by 0.05, and the
    Doubter keeps >= 40 % coverage with selective accuracy >= base + 0.2 and >= MSP at the same coverage."""
    methods = report["methods"]
    doubter = methods["doubter"]
    best_baseline = max(_num(methods["msp"]["auroc"]), _num(methods["entropy"]["auroc"]))
    found = {"wrapper_auroc_beats_best_baseline_by_0.05": _num(methods["wrapper"]["auroc"]) >= best_baseline + 0.05}
    if doubter is None:
        return found
    own = _num(doubter["selective_accuracy_at_own_coverage"])
    return found | {
        "doubter_coverage_at_least_0.4": doubter["coverage"] >= 0.4,
        "doubter_selective_accuracy_at_least_base_plus_0.2": own >= report["base_accuracy"] + 0.2,
        "doubter_selective_accuracy_at_least_msp_at_same_coverage": own
        >= _num(doubter["msp_selective_accuracy_at_same_coverage"]),
    }


def markdown(report: dict[str, Any]) -> str:
    """report.md: the table of methods, the Doubter's refusals and the targets, for a human reader."""
    methods = report["methods"]
    domain = (
        "cross-domain (never seen in training)"
        if report.get("cross_domain")
        else "a held-out split of a training data set"
    )
    lines = [
        f"# {report.get('model', '?')}: {report.get('dataset', '?')} / {report.get('split', '?')}",
        "",
        f"- questions: {report['n']}; base accuracy: {_pct(report['base_accuracy'])}",
        f"- wrapper: `{report.get('wrapper', '?')}`; this data set is {domain}"
        + (f" (trained on: {', '.join(report['trained_on'])})" if report.get("trained_on") else ""),
        f"- baselines Platt-scaled on: {report.get('baselines_calibrated_on') or 'nothing (raw scores)'}",
        "",
        "| method | AUROC | AURC | E-AURC | ECE | Brier | sel. acc @25% | @50% | @75% |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("msp", "entropy", "wrapper", "doubter"):
        m = methods[name]
        if m is None:
            continue
        sel = m["selective_accuracy"]
        lines.append(
            f"| {name} | {_f(m.get('auroc'))} | {_f(m['aurc'])} | {_f(m['e_aurc'])} | {_f(m['ece'])} | {_f(m['brier'])} "
            f"| {_pct(sel['0.25'])} | {_pct(sel['0.5'])} | {_pct(sel['0.75'])} |"
        )
    lines += _doubter_lines(report) + [
        f"- wrapper read-only threshold u < {_f(methods['wrapper']['threshold'])}: coverage {_pct(methods['wrapper']['coverage_at_threshold'])}, "
        f"selective accuracy {_pct(methods['wrapper']['selective_accuracy_at_threshold'])}",
        "",
        "Targets:",
        "",
    ]
    lines += [f"- {'PASS' if ok else 'MISS'}: {name.replace('_', ' ')}" for name, ok in targets(report).items()]
    if methods["doubter"] is not None:
        lines += [
            "",
            "Notes: the Doubter's curve ranks its answers by u' and its refusals after them; a refused question counts "
            'with the pass-1 answer it would have given. McNemar compares per question "no error" (a right answer or '
            "a refusal) of the Doubter and of MSP thresholded at the Doubter's coverage.",
        ]
    lines += ["", "![risk-coverage](risk_coverage.png)", ""]
    return "\n".join(lines)


def _doubter_lines(report: dict[str, Any]) -> list[str]:
    doubter = report["methods"]["doubter"]
    if doubter is None:
        return [
            "",
            "**Doubter**: not evaluated: the wrapper was trained by stage A alone (no meta-attention heads, no text refusals).",
            "",
        ]
    return [
        "",
        f"**Doubter (text refusals, modifier {doubter['modifier']['name']} bias {doubter['modifier']['bias']}, gain {doubter['gain']})**",
        "",
        f"- coverage {_pct(doubter['coverage'])}; selective accuracy {_pct(doubter['selective_accuracy_at_own_coverage'])} "
        f"(base {_pct(report['base_accuracy'])}; MSP at the same coverage {_pct(doubter['msp_selective_accuracy_at_same_coverage'])}; "
        f"wrapper u at the same coverage {_pct(doubter['wrapper_selective_accuracy_at_same_coverage'])})",
        f"- refusal precision {_pct(doubter['refusal_precision'])}; over-refusal {_pct(doubter['over_refusal'])}; "
        f"McNemar p (errors vs MSP at the same coverage) {_f(doubter['mcnemar_p'])}; answers changed by pass 2: {doubter['answers_changed']}",
    ]


def _num(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def _f(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def risk_coverage_plot(curves: dict[str, tuple[ArrayLike, ArrayLike]], path: str | Path) -> Path:
    """Write a PNG of selective risk against coverage, one line per method."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and leaves pyplot's state alone

    figure = Figure(figsize=(6, 4.5), dpi=120)
    axes = figure.subplots()
    for name, (cov, risk) in curves.items():
        axes.plot(cov, risk, label=name)
    axes.set(xlabel="coverage", ylabel="selective risk (error rate)", xlim=(0, 1), ylim=(0, None))
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
