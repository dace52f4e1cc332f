"""Rebuild a mixture-trained wrapper from nothing, timing each step.

    python benchmarks/rebuild_mixture_wrapper.py --model smollm2-135m --run /work/runs/mixture_smollm2 --hybrid

The recipe of the topic collect (`benchmarks/collect_all_topics.sh`'s first pass, without the test
splits, which only score): each of the 17 topics' train split (50 hash-picked questions) and val split
(20), then `metaloom train --run R` (stage A, the fitted parts, with `--hybrid` the hybrid head before
the answer, then stage B). The collects run in two lanes at once, one llama.cpp thread each (its threads
spin-wait), the topics dealt alternately between them; train then uses both cores. The run folder must
not exist; the model is fetched first, untimed. Writes benchmarks/results/rebuild_MODEL_mixture.json;
the wrapper stays in the run folder (copy it into the package by hand, as benchmarks/README.md says)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rebuild_default_wrapper import run_steps

from metaspider.loom.topics.registry import CONVERSATIONS, OPEN_ENDED, QA_TOPICS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
METALOOM = Path(sys.executable).with_name("metaloom")
TOPICS = ("countries", *QA_TOPICS, OPEN_ENDED, CONVERSATIONS)
LIMITS = {"val": 20, "train": 50}
TARGET_MINUTES = {"smollm2-135m": 30}


def lanes(model: str, run: Path) -> list[dict[str, list[str]]]:
    """Two lanes of collect steps, the topics dealt alternately."""
    out: list[dict[str, list[str]]] = [{}, {}]
    for index, topic in enumerate(TOPICS):
        for split, limit in LIMITS.items():
            out[index % 2][f"{topic}/{split}"] = [
                *("collect", "--model", model, "--dataset", topic, "--split", split),
                *("--limit", str(limit), "--run", str(run), "--threads", "1"),
            ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--hybrid", action="store_true", help="Train with the hybrid head before the answer")
    parser.add_argument("--threads", type=int, default=2, help="Torch threads for train")
    args = parser.parse_args()
    if args.run.exists():
        sys.exit(f"{args.run} exists: give a new --run folder")
    subprocess.run([str(METALOOM.with_name("metaspider")), "models", "pull", args.model], check=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        lane_seconds = list(pool.map(run_steps, lanes(args.model, args.run)))
    collect_wall = round(time.perf_counter() - start, 1)
    train = ["train", "--run", str(args.run), "--threads", str(args.threads), *(["--hybrid"] if args.hybrid else [])]
    seconds = {name: value for lane in lane_seconds for name, value in lane.items()}
    seconds |= run_steps({"train": train})
    total = round(time.perf_counter() - start, 1)
    target = TARGET_MINUTES.get(args.model)
    result = {
        "command": "python benchmarks/rebuild_mixture_wrapper.py " + " ".join(sys.argv[1:]),
        "model": args.model,
        "commands": [
            f"metaloom collect --model {args.model} --dataset TOPIC --split train --limit 50 --run R --threads 1",
            f"metaloom collect --model {args.model} --dataset TOPIC --split val --limit 20 --run R --threads 1",
            "metaloom " + " ".join(train).replace(str(args.run), "R"),
        ],
        "seconds": seconds,
        "collect_wall_seconds": collect_wall,
        "train_seconds": seconds["train"],
        "total_seconds": total,
        "total_minutes": round(total / 60, 1),
        "target_minutes": target,
        "met": None if target is None else total <= target * 60,
        "load_average_before_after": [load_before, os.getloadavg()[0]],
        "cores": os.cpu_count(),
        "run": str(args.run),
    }
    out = RESULTS / f"rebuild_{args.model}_mixture.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
