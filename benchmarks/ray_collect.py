"""Does `metaloom collect --ray` pay off on one machine? One process vs 2 Ray workers, one thread each.

The same questions are collected into fresh run folders by the real `metaloom collect` command, once
in one process (`--threads 1`) and once on a local Ray cluster (`--ray --workers 2 --threads 1`),
alternating for `--repeats` rounds in one run. Each command is timed from start to exit (imports, model
loading, Ray start-up and shut-down included); the collect phase alone is read off the progress bar
(the elapsed time it prints when it closes). The two collects are checked to store the same answers.

    python benchmarks/ray_collect.py [--model smollm2-135m] [--questions 120] [--repeats 2]
    python benchmarks/ray_collect.py --replot      # the Markdown and PNG again from the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).parents[1]
DATASET, SPLIT = "countries", "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--questions", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--replot", action="store_true", help="Rewrite the Markdown and the plot from the JSON.")
    args = parser.parse_args()
    if args.replot:
        _write_views(json.loads((RESULTS / "ray_collect.json").read_text(encoding="utf-8")))
        return

    variants = {
        "1 process": ["--threads", "1"],
        "2 Ray workers": ["--threads", "1", "--ray", "--workers", "2"],
    }
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    answers: dict[str, dict] = {}
    for round_index in range(args.repeats):
        order = list(variants) if round_index % 2 == 0 else list(reversed(variants))
        for name in order:
            with tempfile.TemporaryDirectory(prefix="ray-bench-") as folder:
                timing = _collect(args, Path(folder) / "run", variants[name])
                answers[name] = _answers(Path(folder) / "run")
            runs[name].append(timing)
            print(f"round {round_index + 1} {name}: {timing}", file=sys.stderr, flush=True)

    summary = {
        name: {
            "wall_s": [r["wall_s"] for r in rs],
            "collect_s": [r["collect_s"] for r in rs],
            "wall_s_mean": sum(r["wall_s"] for r in rs) / len(rs),
            "collect_s_mean": sum(r["collect_s"] for r in rs) / len(rs),
        }
        for name, rs in runs.items()
    }
    single, ray = summary["1 process"], summary["2 Ray workers"]
    result = {
        "command": f"python benchmarks/ray_collect.py --model {args.model} --questions {args.questions} --repeats {args.repeats}",
        "model": args.model,
        "dataset": f"{DATASET}/{SPLIT}",
        "questions": args.questions,
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average_at_end": os.getloadavg()},
        "variants": summary,
        "speedup_wall": single["wall_s_mean"] / ray["wall_s_mean"],
        "speedup_collect": single["collect_s_mean"] / ray["collect_s_mean"],
        "same_answers": answers["1 process"] == answers["2 Ray workers"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ray_collect.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    _write_views(result)
    print(_markdown(result))


def _write_views(result: dict) -> None:
    """ray_collect.md and ray_collect.png (mean wall and collect times, each round as a dot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (RESULTS / "ray_collect.md").write_text(_markdown(result), encoding="utf-8")
    names = list(result["variants"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for offset, key, label in ((-0.2, "wall_s", "whole command"), (0.2, "collect_s", "collect phase")):
        means = [result["variants"][name][f"{key}_mean"] for name in names]
        bars = ax.bar([i + offset for i in range(len(names))], means, width=0.4, label=label)
        for i, name in enumerate(names):
            ax.scatter(
                [i + offset] * len(result["variants"][name][key]), result["variants"][name][key], color="black", s=8
            )
        ax.bar_label(bars, fmt="%.0f s", label_type="center", color="white")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("seconds")
    ax.set_title(
        f"{result['questions']} questions, {result['model']}, 1 thread per model copy, {result['machine']['cpus']} CPUs"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "ray_collect.png", dpi=120)
    plt.close(fig)


def _collect(args: argparse.Namespace, run: Path, extra: list[str]) -> dict:
    command = [
        sys.executable,
        "-c",
        "from metaspider.cli import loom_main; loom_main()",
        "collect",
        "--run",
        str(run),
        "--model",
        args.model,
        "--dataset",
        DATASET,
        "--split",
        SPLIT,
        "--limit",
        str(args.questions),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "COLUMNS": "200"}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return {"wall_s": round(wall, 2), "collect_s": _bar_elapsed(done.stderr)}


def _bar_elapsed(stderr: str) -> float:
    """The elapsed time of the progress bar's last frame (`N/N H:MM:SS`)."""
    found = re.findall(r"(\d+)/\1\s+(\d+):(\d\d):(\d\d)", stderr)
    if not found:
        raise SystemExit(f"no finished progress bar in:\n{stderr}")
    _, hours, minutes, seconds = found[-1]
    return float(int(hours) * 3600 + int(minutes) * 60 + int(seconds))


def _answers(run: Path) -> dict:
    sys.path.insert(0, str(REPO))
    from metaspider.loom.run_folder import RunFolder

    return {r["id"]: (r["answer"], r["correct"]) for r in RunFolder(run).load(DATASET, SPLIT).records}


def _markdown(result: dict) -> str:
    rows = "\n".join(
        f"| {name} | {v['wall_s_mean']:.1f} ({', '.join(f'{x:.1f}' for x in v['wall_s'])}) "
        f"| {v['collect_s_mean']:.1f} ({', '.join(f'{x:.0f}' for x in v['collect_s'])}) |"
        for name, v in result["variants"].items()
    )
    return f"""# Ray collect: 1 process vs 2 Ray workers on one machine

`{result["command"]}`

{result["questions"]} questions of {result["dataset"]} on {result["model"]}, one llama.cpp thread per
model copy, {result["repeats"]} alternating rounds in one run, on a machine with {result["machine"]["cpus"]} CPUs
shared with other jobs (load average at the end: {", ".join(f"{x:.1f}" for x in result["machine"]["load_average_at_end"])}).
Wall time is the whole command (imports, model loading, Ray start-up); collect time is the progress
bar's elapsed time (whole seconds).

| variant | wall time, s (mean; each round) | collect time, s (mean; each round) |
|---|---|---|
{rows}

- speed-up of 2 Ray workers over 1 process: **{result["speedup_wall"]:.2f}x** wall time,
  **{result["speedup_collect"]:.2f}x** collect phase
- the two collects stored the same answers and correctness: {result["same_answers"]}

The 2 workers share the machine's 2 cores with each other and with the other jobs that ran at the same
time, and the Ray run pays a fixed start-up (wall time minus collect time: Ray and two model loads).
Only one machine was measured; docs/scale.md says what to expect on a cluster.
"""


if __name__ == "__main__":
    main()
