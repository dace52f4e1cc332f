"""Rebuild the shipped Doubter for smollm2-135m from nothing, timing each step.

    python benchmarks/rebuild_default_wrapper.py [--run runs/countries_smollm2]

The run folder must not exist. Steps are the `metaloom` commands of benchmarks/README.md, each in its
own process, with --threads 1 (llama.cpp threads spin-wait: on a shared 2-core machine one thread is
faster than two). Writes benchmarks/results/rebuild_default_wrapper.json; the wrapper and its report
stay in the run folder (copy them into the package by hand, as the README says)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "rebuild_default_wrapper.json"
TARGET_SECONDS = 20 * 60


def steps(run: Path) -> dict[str, list[str]]:
    collect = ["collect", "--model", "smollm2-135m", "--dataset", "countries", "--run", str(run), "--threads", "1"]
    return {
        "collect_train": [*collect, "--split", "train"],
        "collect_val": [*collect, "--split", "val"],
        "collect_test": [*collect, "--split", "test"],
        "train": ["train", "--run", str(run), "--threads", "1"],
        "eval": ["eval", "--run", str(run), "--split", "test", "--threads", "1"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "countries_smollm2")
    args = parser.parse_args()
    if args.run.exists():
        sys.exit(f"{args.run} exists: give a new --run folder")
    metaloom = Path(sys.executable).with_name("metaloom")
    load_before = os.getloadavg()[0]
    seconds = {}
    for name, command in steps(args.run).items():
        start = time.perf_counter()
        subprocess.run([str(metaloom), *command], check=True)
        seconds[name] = round(time.perf_counter() - start, 1)
    total = round(sum(seconds.values()), 1)
    result = {
        "command": "python benchmarks/rebuild_default_wrapper.py",
        "seconds": seconds,
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
