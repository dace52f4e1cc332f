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

`--threads 1,2` measures each thread count in the same run (all systems rebuilt per count). `--modes`
picks the modes (all four by default; on a 1.5B model one mode keeps the run under half an hour). The
wrapper's own mode (its `injection`_`positions`, what `deploy export` writes) is the "default mode" and
carries the tighter targets (TTFT <= 1.05x, decode >= 0.97x).

    PYTHONPATH=. python benchmarks/deploy_speed.py [--model M] [--wrapper FOLDER] [--threads 1,2]
        [--modes tokens_generated,...] [--repeats R]

Results: `results/deploy_speed.{json,md}` for smollm2-135m, `results/deploy_speed_<model>.{json,md}` otherwise.
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

DEFAULT_MODEL = "smollm2-135m"
MAX_TOKENS = 64
N_CTX = 2048
N_BATCH = 512
MODES = ("pooled_generated", "pooled_all", "tokens_generated", "tokens_all")
TARGETS = {"pooled_generated": {"ttft_max": 1.10, "decode_min": 0.90}, "tokens_generated": {"decode_min": 0.80}}
DEFAULT_MODE_TARGETS = {"ttft_max": 1.05, "decode_min": 0.97}
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
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--wrapper", default="default", help="wrapper folder (default: the shipped one)")
    parser.add_argument("--threads", default=str(os.cpu_count() or 1), help="thread counts, comma-separated")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {','.join(MODES)}")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the prompts")
    args = parser.parse_args()
    modes = [m for m in MODES if m in args.modes.split(",")]
    folder = resolve_wrapper_path(args.wrapper, args.model)
    by_threads = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        by_threads[str(threads)] = _measure(args.model, folder, threads, modes, args.repeats)
    report = _report(args.model, folder, modes, args.repeats, by_threads)
    RESULTS.mkdir(exist_ok=True)
    stem = "deploy_speed" if args.model == DEFAULT_MODEL else f"deploy_speed_{args.model}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(_markdown(report))
    print(_markdown(report))


def _measure(model: str, folder: Path, threads: int, modes: list[str], repeats: int) -> dict:
    """All systems at one thread count, interleaved prompt by prompt."""
    load_before = os.getloadavg()
    pipelines = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, path in _sidecars(folder, Path(tmp), modes).items():
            # One context per system, like plain's: a shared one would lose its prompt cache to the `all` modes.
            backbone = LlamaCppBackbone(model, n_ctx=N_CTX, n_threads=threads, n_batch=N_BATCH)
            pipelines[mode] = Pipeline(backbone, NumpyRuntime(path, backbone.fingerprint))
        sidecar_bytes = next(iter(_sidecars(folder, Path(tmp), [_mode_of(folder)]).values())).stat().st_size
    plain = _plain_llama(backbone.path, threads)
    _run_plain(plain, PROMPTS[0])  # warm-up, not counted
    for pipeline in pipelines.values():
        _run_ours(pipeline, PROMPTS[0])
    runs: dict[str, list[dict]] = {"plain": [], **{mode: [] for mode in modes}}
    for prompt in PROMPTS * repeats:
        runs["plain"].append(_run_plain(plain, prompt))
        for mode, pipeline in pipelines.items():
            runs[mode].append(_run_ours(pipeline, prompt))
    summaries, ratios = _compare(runs, modes)
    del pipelines, plain
    return {
        "ratios": ratios,
        "summaries": summaries,
        "sidecar_bytes": sidecar_bytes,
        "base_bytes": backbone.path.stat().st_size,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "per_prompt": runs,
    }


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


def _sidecars(folder: Path, tmp: Path, modes: list[str]) -> dict[str, Path]:
    """One sidecar per mode, all from the wrapper's weights (q8_0, as `deploy export` writes them)."""
    manifest, weights = load_manifest(folder), load_weights_numpy(folder)
    sidecars = {}
    for mode in modes:
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


def _compare(runs: dict[str, list[dict]], modes: list[str]) -> tuple[dict, dict]:
    """Summaries per system, and each mode's ratios to plain: TTFT summed over the prompts where both
    produced a token, decode per token."""
    summaries = {name: _summary(r) for name, r in runs.items()}
    ratios = {}
    for mode in modes:
        pairs = [(o["ttft_s"], p["ttft_s"]) for o, p in zip(runs[mode], runs["plain"], strict=True)]
        pairs = [(o, p) for o, p in pairs if o == o and p == p]
        ratios[mode] = {
            "ttft": sum(o for o, _ in pairs) / sum(p for _, p in pairs),
            "decode": summaries[mode]["decode_tok_s"] / summaries["plain"]["decode_tok_s"],
        }
    return summaries, ratios


def _summary(runs: list[dict]) -> dict:
    """Means over the prompts; TTFT over those that produced a token (a reply may end at once)."""
    ttfts = [r["ttft_s"] for r in runs if r["ttft_s"] == r["ttft_s"]]
    decode_s = sum(r["decode_s"] for r in runs)
    decode_tokens = sum(r["decode_tokens"] for r in runs)
    summary = {
        "ttft_s_mean": sum(ttfts) / len(ttfts) if ttfts else float("nan"),
        "no_token": len(runs) - len(ttfts),
        "decode_tok_s": decode_tokens / decode_s if decode_s else float("nan"),
        "tokens_mean": sum(r["tokens"] for r in runs) / len(runs),
    }
    if "pass1_s" in runs[0]:
        summary["pass1_s_mean"] = sum(r["pass1_s"] for r in runs) / len(runs)
    return summary


def _report(model: str, folder: Path, modes: list[str], repeats: int, by_threads: dict[str, dict]) -> dict:
    default_mode = _mode_of(folder)
    met: dict[str, dict[str, bool]] = {}
    for threads, measured in by_threads.items():
        ratios = measured["ratios"]
        checks = {}
        if default_mode in ratios:
            checks["default_mode_ttft"] = ratios[default_mode]["ttft"] <= DEFAULT_MODE_TARGETS["ttft_max"]
            checks["default_mode_decode"] = ratios[default_mode]["decode"] >= DEFAULT_MODE_TARGETS["decode_min"]
        for mode, bounds in TARGETS.items():
            if mode in ratios and "ttft_max" in bounds:
                checks[f"{mode}_ttft"] = ratios[mode]["ttft"] <= bounds["ttft_max"]
            if mode in ratios:
                checks[f"{mode}_decode"] = ratios[mode]["decode"] >= bounds["decode_min"]
        checks["sidecar_fraction"] = measured["sidecar_bytes"] / measured["base_bytes"] <= SIDECAR_FRACTION_MAX
        met[threads] = checks
    return {
        "model": model,
        "wrapper": str(folder),
        "shipped_wrapper": folder.name == SHIPPED_WRAPPERS.get(model),
        "default_mode": default_mode,
        "modes": modes,
        "targets": {"default_mode": DEFAULT_MODE_TARGETS, **TARGETS, "sidecar_fraction_max": SIDECAR_FRACTION_MAX},
        "targets_met": met,
        "by_threads": by_threads,
        "n_prompts": len(PROMPTS),
        "max_new_tokens": MAX_TOKENS,
        "sampling": "greedy",
        "runs": repeats,
        "n_batch": N_BATCH,
        "n_ctx": N_CTX,
        "flash_attn": True,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def _markdown(report: dict) -> str:
    threads = ",".join(report["by_threads"])
    lines = [
        "# Deploy speed: metaspider on llama.cpp vs plain llama-cpp-python",
        "",
        "```",
        f"PYTHONPATH=. python benchmarks/deploy_speed.py --model {report['model']} --threads {threads} "
        f"--modes {','.join(report['modes'])} --repeats {report['runs']}",
        "```",
        "",
        f"{report['model']}, {report['n_prompts']} prompts, {report['max_new_tokens']} new tokens, greedy, "
        f"{report['runs']} run(s); flash attention on, batch {report['n_batch']}, {report['cpu_count']} cores. "
        f"Wrapper: `{Path(report['wrapper']).name}`"
        f"{' (shipped)' if report['shipped_wrapper'] else ' (not the shipped wrapper)'}, "
        f"whose own (default) mode is `{report['default_mode']}`.",
        "",
    ]
    for n, measured in report["by_threads"].items():
        plain = measured["summaries"]["plain"]
        load = measured["load_average_before"][0], measured["load_average_after"][0]
        lines += [
            f"## {n} thread(s)",
            "",
            f"Load average before/after: {load[0]:.2f} / {load[1]:.2f}.",
            "",
            "| system | TTFT mean (s) | of which pass 1 (s) | decode tok/s | tokens mean | TTFT ratio | decode ratio |",
            "|---|---|---|---|---|---|---|",
            f"| plain | {plain['ttft_s_mean']:.4f} | | {plain['decode_tok_s']:.1f} | {plain['tokens_mean']:.1f} | 1 | 1 |",
        ]
        for mode in report["modes"]:
            s, r = measured["summaries"][mode], measured["ratios"][mode]
            mark = " (default)" if mode == report["default_mode"] else ""
            lines.append(
                f"| {mode}{mark} | {s['ttft_s_mean']:.4f} | {s['pass1_s_mean']:.4f} | {s['decode_tok_s']:.1f} | "
                f"{s['tokens_mean']:.1f} | {r['ttft']:.3f} | {r['decode']:.3f} |"
            )
        checks = report["targets_met"][n]
        lines += ["", "Targets: " + ", ".join(f"{k} {'met' if v else 'missed'}" for k, v in checks.items()) + ".", ""]
    first = next(iter(report["by_threads"].values()))
    lines += [
        "Generations stop early at end of sequence (the Doubter's refusals are short), so decode is compared "
        "per token; TTFT includes pass 1 for metaspider, and its ratio is taken over the prompts where both "
        "systems produced a token. Targets: the default mode TTFT <= "
        f"{DEFAULT_MODE_TARGETS['ttft_max']}x and decode >= {DEFAULT_MODE_TARGETS['decode_min']}x; pooled_generated "
        "TTFT <= 1.10x and decode >= 0.90x; tokens_generated decode >= 0.80x; sidecar <= 3 % of the base GGUF.",
        "",
        f"Sidecar (the default mode): {first['sidecar_bytes'] / 1e6:.2f} MB = "
        f"{100 * first['sidecar_bytes'] / first['base_bytes']:.2f} % of the base GGUF ({first['base_bytes'] / 1e6:.1f} MB).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
