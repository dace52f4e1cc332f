"""Speed of the wrapper on llama.cpp vs plain llama-cpp-python, on the same model and prompts.

Plain: `Llama.create_chat_completion(stream=True)`. Ours: `Pipeline` on `LlamaCppBackbone` with a
sidecar, in the four modes (pooled/tokens injection × generated/all positions). Same 20 prompts, 64 new
tokens, greedy, the systems interleaved prompt by prompt so load drift hits all alike; `--repeats R`
goes over the prompts R times (3 by default: one pass is about 3 s of TTFT per system, too little to
read a 10 % target on a shared machine).
Both sides use the same threads, batch size, context size and flash attention (on: what llama.cpp's
"auto" picks on a CPU, and what the backbone's default context gets).

- TTFT: request start → first generated token (ours includes pass 1: reading the prompt and the wrapper).
- decode: generated tokens after the first / time after the first.
Ratios are ours / plain over the 20 prompts (summed times). The four sidecars share one wrapper's
weights (the weights do not depend on the mode), so speed differences are the modes' own.

    PYTHONPATH=. python benchmarks/deploy_speed.py [--wrapper FOLDER] [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from metaspider.core.backbones.base import GenerationEnd, SamplingParams, TokenOut
from metaspider.core.backbones.llama_cpp import LlamaCppBackbone
from metaspider.core.pipeline import Pipeline
from metaspider.core.wrapper.folder import load_manifest, load_weights_numpy
from metaspider.core.wrapper.handle import SHIPPED_WRAPPERS, resolve_wrapper_path
from metaspider.core.wrapper.runtime import NumpyRuntime
from metaspider.core.wrapper.sidecar import write_sidecar

MODEL = "smollm2-135m"
MAX_TOKENS = 64
N_CTX = 2048
N_BATCH = 512
MODES = ("pooled_generated", "pooled_all", "tokens_generated", "tokens_all")
TARGETS = {"pooled_generated": {"ttft_max": 1.10, "decode_min": 0.90}, "tokens_generated": {"decode_min": 0.80}}
SIDECAR_FRACTION_MAX = 0.03
RESULTS = Path(__file__).parent / "results"

PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a bicycle stays upright while moving.",
    "Describe a busy market in the morning.",
    "Write a letter to a friend about a trip to the mountains.",
    "Explain why the sky is blue to a ten-year-old.",
    "Give advice to someone starting to learn the guitar.",
    "Describe how bread is made, step by step.",
    "Write a poem about the sea in winter.",
    "Explain what a computer's memory does.",
    "Tell the story of a cat that wanted to fly.",
    "Describe the life cycle of a butterfly.",
    "Write a product description for a new kind of umbrella.",
    "Explain how rain forms.",
    "Describe a walk through an old forest.",
    "Write a short speech for a school graduation.",
    "Explain how to plant a tree.",
    "Describe what a city looks like at night.",
    "Write a diary entry of a sailor on a long voyage.",
    "Explain the rules of chess in simple words.",
    "Describe your ideal weekend.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wrapper", default="default", help="wrapper folder (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the prompts")
    args = parser.parse_args()
    load_before = os.getloadavg()
    folder = resolve_wrapper_path(args.wrapper, MODEL)
    pipelines = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, path in _sidecars(folder, Path(tmp)).items():
            # One context per system, like plain's: a shared one would lose its prompt cache to the `all` modes.
            backbone = LlamaCppBackbone(MODEL, n_ctx=N_CTX, n_threads=args.threads, n_batch=N_BATCH)
            pipelines[mode] = Pipeline(backbone, NumpyRuntime(path, backbone.fingerprint))
        shipped_size = (Path(tmp) / f"{_mode_of(folder)}.gguf").stat().st_size
    plain = _plain_llama(backbone.path, args.threads)
    _run_plain(plain, PROMPTS[0])  # warm-up, not counted
    for pipeline in pipelines.values():
        _run_ours(pipeline, PROMPTS[0])
    runs: dict[str, list[dict]] = {"plain": [], **{mode: [] for mode in MODES}}
    for prompt in PROMPTS * args.repeats:
        runs["plain"].append(_run_plain(plain, prompt))
        for mode, pipeline in pipelines.items():
            runs[mode].append(_run_ours(pipeline, prompt))
    report = _report(runs, args.threads, args.repeats, folder, shipped_size, backbone.path.stat().st_size, load_before)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "deploy_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "deploy_speed.md").write_text(_markdown(report))
    print(_markdown(report))


def _plain_llama(path: Path, threads: int):
    import llama_cpp

    return llama_cpp.Llama(
        str(path),
        n_ctx=N_CTX,
        n_batch=N_BATCH,
        n_ubatch=N_BATCH,
        n_threads=threads,
        n_threads_batch=threads,
        flash_attn=True,
        verbose=False,
    )


def _mode_of(folder: Path) -> str:
    config = load_manifest(folder).config
    return f"{config.injection}_{config.positions}"


def _sidecars(folder: Path, tmp: Path) -> dict[str, Path]:
    """One sidecar per mode, all from the wrapper's weights (q8_0, as `deploy export` writes them)."""
    manifest, weights = load_manifest(folder), load_weights_numpy(folder)
    sidecars = {}
    for mode in MODES:
        injection, positions = mode.split("_")
        config = manifest.config.replace(injection=injection, positions=positions)
        sidecars[mode] = write_sidecar(tmp / f"{mode}.gguf", manifest.replace(config=config), weights, mode)
    return sidecars


def _run_plain(llm, prompt: str) -> dict:
    start = time.perf_counter()
    stamps = []
    stream = llm.create_chat_completion(
        [{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS, temperature=0.0, stream=True
    )
    for chunk in stream:
        if chunk["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter())
    return _timing(start, stamps, len(stamps))


def _run_ours(pipeline: Pipeline, prompt: str) -> dict:
    start = time.perf_counter()
    stamps = []
    n = 0
    assessment = pipeline.assess([{"role": "user", "content": prompt}])
    assessed = time.perf_counter()
    for item in pipeline.stream(assessment, SamplingParams(max_tokens=MAX_TOKENS)):
        if isinstance(item, TokenOut) and item.token_id >= 0:
            stamps.append(time.perf_counter())
        elif isinstance(item, GenerationEnd):
            n = item.n_generated
    return {**_timing(start, stamps, n), "pass1_s": assessed - start}


def _timing(start: float, stamps: list[float], n_tokens: int) -> dict:
    return {
        "ttft_s": stamps[0] - start if stamps else float("nan"),
        "decode_s": stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0,
        "decode_tokens": max(len(stamps) - 1, 0),
        "tokens": n_tokens,
    }


def _summary(runs: list[dict]) -> dict:
    ttft = sum(r["ttft_s"] for r in runs)
    decode_s = sum(r["decode_s"] for r in runs)
    decode_tokens = sum(r["decode_tokens"] for r in runs)
    summary = {
        "ttft_s_mean": ttft / len(runs),
        "decode_tok_s": decode_tokens / decode_s if decode_s else float("nan"),
        "tokens_mean": sum(r["tokens"] for r in runs) / len(runs),
    }
    if "pass1_s" in runs[0]:
        summary["pass1_s_mean"] = sum(r["pass1_s"] for r in runs) / len(runs)
    return summary


def _report(
    runs: dict[str, list[dict]],
    threads: int,
    repeats: int,
    folder: Path,
    sidecar_bytes: int,
    base_bytes: int,
    load_before: tuple[float, float, float],
) -> dict:
    summaries = {name: _summary(r) for name, r in runs.items()}
    plain = summaries["plain"]
    ratios = {
        mode: {
            "ttft": summaries[mode]["ttft_s_mean"] / plain["ttft_s_mean"],
            "decode": summaries[mode]["decode_tok_s"] / plain["decode_tok_s"],
        }
        for mode in MODES
    }
    fraction = sidecar_bytes / base_bytes
    met = {
        "pooled_generated_ttft": ratios["pooled_generated"]["ttft"] <= TARGETS["pooled_generated"]["ttft_max"],
        "pooled_generated_decode": ratios["pooled_generated"]["decode"] >= TARGETS["pooled_generated"]["decode_min"],
        "tokens_generated_decode": ratios["tokens_generated"]["decode"] >= TARGETS["tokens_generated"]["decode_min"],
        "sidecar_fraction": fraction <= SIDECAR_FRACTION_MAX,
    }
    return {
        "ratios": ratios,
        "sidecar_fraction": fraction,
        "sidecar_bytes": sidecar_bytes,
        "base_bytes": base_bytes,
        "targets": {**TARGETS, "sidecar_fraction_max": SIDECAR_FRACTION_MAX},
        "targets_met": met,
        "summaries": summaries,
        "model": MODEL,
        "wrapper": str(folder),
        "shipped_wrapper": folder.name == SHIPPED_WRAPPERS.get(MODEL),
        "n_prompts": len(PROMPTS),
        "max_new_tokens": MAX_TOKENS,
        "sampling": "greedy",
        "runs": repeats,
        "n_threads": threads,
        "n_batch": N_BATCH,
        "n_ctx": N_CTX,
        "flash_attn": True,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "per_prompt": runs,
    }


def _markdown(report: dict) -> str:
    lines = [
        "# Deploy speed: metaspider on llama.cpp vs plain llama-cpp-python",
        "",
        f"{report['model']}, {report['n_prompts']} prompts, {report['max_new_tokens']} new tokens, greedy, {report['runs']} run(s); "
        f"{report['n_threads']} threads, flash attention on, batch {report['n_batch']}. Wrapper: `{report['wrapper']}`"
        f"{' (shipped)' if report['shipped_wrapper'] else ' (not the shipped wrapper)'}. "
        f"Load average before/after: {report['load_average_before'][0]:.2f} / {report['load_average_after'][0]:.2f} "
        f"on {report['cpu_count']} cores.",
        "",
        "| system | TTFT mean (s) | of which pass 1 (s) | decode tok/s | tokens mean | TTFT ratio | decode ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    plain = report["summaries"]["plain"]
    lines.append(
        f"| plain | {plain['ttft_s_mean']:.4f} | | {plain['decode_tok_s']:.1f} | {plain['tokens_mean']:.1f} | 1 | 1 |"
    )
    for mode in MODES:
        s, r = report["summaries"][mode], report["ratios"][mode]
        lines.append(
            f"| {mode} | {s['ttft_s_mean']:.4f} | {s['pass1_s_mean']:.4f} | {s['decode_tok_s']:.1f} | "
            f"{s['tokens_mean']:.1f} | {r['ttft']:.3f} | {r['decode']:.3f} |"
        )
    met = report["targets_met"]
    lines += [
        "",
        "Generations stop early at end of sequence (the Doubter's refusals are short), so decode is compared "
        "per token; TTFT includes pass 1 for metaspider.",
        "",
        f"Sidecar: {report['sidecar_bytes'] / 1e6:.2f} MB = {100 * report['sidecar_fraction']:.2f} % of the base GGUF "
        f"({report['base_bytes'] / 1e6:.1f} MB).",
        "",
        "Targets: pooled_generated TTFT <= 1.10x "
        f"({'met' if met['pooled_generated_ttft'] else 'missed'}), decode >= 0.90x "
        f"({'met' if met['pooled_generated_decode'] else 'missed'}); tokens_generated decode >= 0.80x "
        f"({'met' if met['tokens_generated_decode'] else 'missed'}); sidecar <= 3 % "
        f"({'met' if met['sidecar_fraction'] else 'missed'}).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
