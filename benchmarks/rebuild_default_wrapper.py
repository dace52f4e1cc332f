"""Rebuild the shipped Doubter for smollm2-135m from nothing, timing each step.

    python benchmarks/rebuild_default_wrapper.py [--run runs/countries_smollm2]

The run folder must not exist. Steps are the `metaloom` commands of benchmarks/README.md, each in its
own process. The collects run in two lanes at once, one llama.cpp thread each (its threads spin-wait,
so two single-thread processes use a 2-core machine better than one process with two threads): train
in one lane, val, test and calib in the other. Then train (Torch, both cores), eval and calibrate.
The model is fetched first, untimed. Writes benchmarks/results/rebuild_default_wrapper.json; the
wrapper and its report stay in the run folder (copy them into the package by hand, as the README says)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "rebuild_default_wrapper.json"
TARGET_SECONDS = 20 * 60
METALOOM = Path(sys.executable).with_name("metaloom")


def collect_lanes(run: Path) -> list[dict[str, list[str]]]:
    collect = ["collect", "--model", "smollm2-135m", "--dataset", "countries", "--run", str(run), "--threads", "1"]
    return [
        {"collect_train": [*collect, "--split", "train"]},
        {f"collect_{split}": [*collect, "--split", split] for split in ("val", "test", "calib")},
    ]


def final_steps(run: Path) -> dict[str, list[str]]:
    return {
        "train": ["train", "--run", str(run), "--threads", "2"],
        "eval": ["eval", "--run", str(run), "--split", "test", "--threads", "1", "--record"],
        "calibrate": ["calibrate", "--run", str(run), "--max-risk", "0.7", "--delta", "0.1"],
    }


def run_steps(steps: dict[str, list[str]]) -> dict[str, float]:
    """Each step in turn, its wall time in seconds."""
    seconds = {}
    for name, command in steps.items():
        start = time.perf_counter()
        subprocess.run([str(METALOOM), *command], check=True)
        seconds[name] = round(time.perf_counter() - start, 1)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "countries_smollm2")
    args = parser.parse_args()
    if args.run.exists():
        sys.exit(f"{args.run} exists: give a new --run folder")
    # Fetched once, untimed: two collect lanes starting on an empty cache would both download it.
    subprocess.run([str(METALOOM.with_name("metaspider")), "models", "pull", "smollm2-135m"], check=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    lanes = collect_lanes(args.run)
    with ThreadPoolExecutor(len(lanes)) as pool:
        lane_seconds = list(pool.map(run_steps, lanes))
    collect_wall = round(time.perf_counter() - start, 1)
    seconds = {name: value for lane in lane_seconds for name, value in lane.items()}
    seconds.update(run_steps(final_steps(args.run)))
    total = round(time.perf_counter() - start, 1)
    result = {
        "command": "python benchmarks/rebuild_default_wrapper.py",
        "seconds": seconds,
        "collect_wall_seconds": collect_wall,
        "total_seconds": total,
        "target_seconds": TARGET_SECONDS,
        "met": total <= TARGET_SECONDS,
        "load_average_before_after": [load_before, os.getloadavg()[0]],
        "cores": os.cpu_count(),
        "run": str(args.run),
    }
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
