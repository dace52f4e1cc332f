"""What does reading and writing activations cost on llama.cpp?

Plain llama-cpp-python (`Llama.create_completion` on the same token ids) against `LlamaCppBackbone`
with no capture, with a 4-layer capture at the decision point (pass 1) before generating, with callback
injection at 4 layers, and with a control vector at 4 layers. Same 20 prompts, 64 new tokens (end of
sequence suppressed everywhere so every run does the same work), greedy, interleaved in one run.

    python benchmarks/core_overhead.py [--model smollm2-135m] [--prompts 20] [--tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from llama_cpp import Llama

from metaspider.core.backbones.base import Injection, SamplingParams
from metaspider.core.backbones.doctor import constant_offset
from metaspider.core.backbones.llama_cpp import LlamaCppBackbone
from metaspider.core.models.registry import resolve

RESULTS = Path(__file__).parent / "results"
TOPICS = (
    "a lighthouse keeper",
    "a lost robot",
    "the first day of spring",
    "a city under the sea",
    "an old clock",
    "a dragon who cannot fly",
    "a train across the desert",
    "a library at night",
    "a garden on Mars",
    "a fisherman and a storm",
    "a cat that learns to read",
    "the last tree in a forest",
    "a paper boat",
    "a mountain village",
    "a violin maker",
    "a comet",
    "a bakery at dawn",
    "a snowman in summer",
    "a forgotten map",
    "two rival chess players",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args()

    ours = LlamaCppBackbone(args.model, n_threads=args.threads)
    plain = Llama(
        str(resolve(args.model)),
        n_ctx=2048,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        flash_attn=True,
        verbose=False,
    )
    plain_ours_settings_note = "both: flash attention on, same threads, n_batch 512, n_ctx 2048"
    no_eos = {t: -1e9 for t in range(plain.n_vocab()) if ours.is_end_of_generation(t)}
    layers = _four_layers(ours.n_layers)
    prompts = [
        ours.chat_ids([{"role": "user", "content": f"Write a long story about {t}."}]) for t in TOPICS[: args.prompts]
    ]
    offset = constant_offset(ours.capture(prompts[0], [layers[0]])[0, 0]) * 0.1

    variants = {
        "plain": lambda ids: _plain(plain, ids, args.tokens, no_eos),
        "no_capture": lambda ids: _ours(ours, ids, args.tokens, None),
        "capture": lambda ids: (ours.capture(ids, layers), _ours(ours, ids, args.tokens, None))[1],
        "callback_injection": lambda ids: _ours(
            ours,
            ids,
            args.tokens,
            Injection(
                injector=lambda _l, h, _p: np.broadcast_to(offset, h.shape),
                layers=tuple(layers),
                inject_from=len(ids) - 1,
            ),
        ),
        "control_vector": lambda ids: _ours(
            ours, ids, args.tokens, Injection(control=dict.fromkeys(layers, offset), inject_from=len(ids) - 1)
        ),
    }
    for run in variants.values():  # warm-up: first loads, page cache
        run(prompts[0])
    seconds = dict.fromkeys(variants, 0.0)
    cpu_seconds = dict.fromkeys(variants, 0.0)
    generated = dict.fromkeys(variants, 0)
    for ids in prompts:
        for name, run in variants.items():
            _reset(ours, plain)
            start, start_cpu = time.perf_counter(), time.process_time()
            generated[name] += run(ids)
            seconds[name] += time.perf_counter() - start
            cpu_seconds[name] += time.process_time() - start_cpu
    ratios = {name: round(seconds[name] / seconds["plain"], 3) for name in variants if name != "plain"}
    cpu_ratios = {name: round(cpu_seconds[name] / cpu_seconds["plain"], 3) for name in variants if name != "plain"}
    report = {
        "ratios": ratios,
        "cpu_time_ratios": cpu_ratios,
        "targets": {"capture": 1.10, "callback_injection": 1.15, "control_vector": 1.05},
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "cpu_seconds": {k: round(v, 3) for k, v in cpu_seconds.items()},
        "generated_tokens": generated,
        "model": args.model,
        "prompts": len(prompts),
        "new_tokens": args.tokens,
        "layers": layers,
        "threads": args.threads,
        "load_average": os.getloadavg(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "settings": plain_ours_settings_note,
        "command": f"python benchmarks/core_overhead.py --model {args.model} --prompts {args.prompts} --tokens {args.tokens}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "core_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "core_overhead.md").write_text(_markdown(report))
    print(json.dumps(report, indent=2))


def _four_layers(n_layers: int) -> list[int]:
    return [n_layers // 2, (2 * n_layers) // 3, n_layers - 3, n_layers - 2]


def _plain(llm: Llama, ids: list[int], tokens: int, no_eos: dict[int, float]) -> int:
    out = llm.create_completion(ids, max_tokens=tokens, temperature=0.0, logit_bias=no_eos)
    return int(out["usage"]["completion_tokens"])


def _ours(backbone: LlamaCppBackbone, ids: list[int], tokens: int, injection: Injection | None) -> int:
    params = SamplingParams(max_tokens=tokens, ignore_eos=True)
    end = None
    for end in backbone.generate(ids, params, injection):  # noqa: B007 (the last event is the summary)
        pass
    return end.n_generated


def _reset(ours: LlamaCppBackbone, plain: Llama) -> None:
    """Every request starts cold: no prefix reuse across prompts for either side."""
    ours.reset()
    plain.reset()
    plain._ctx.kv_cache_clear()


def _markdown(report: dict) -> str:
    rows = "\n".join(
        f"| {name} | {ratio:.3f} | {report['cpu_time_ratios'][name]:.3f} | {report['targets'].get(name, '')} |"
        for name, ratio in report["ratios"].items()
    )
    return (
        "# Core overhead: plain llama-cpp-python vs `LlamaCppBackbone`\n\n"
        f"Model `{report['model']}`, {report['prompts']} prompts, {report['new_tokens']} new tokens, greedy, "
        f"{report['threads']} threads, layers {report['layers']}, one interleaved run "
        f"(load average at the end: {', '.join(f'{x:.1f}' for x in report['load_average'])}).\n\n"
        "Wall time and process CPU time as ratios to plain llama-cpp-python (lower is better). With one "
        "decode thread, CPU time is the work done and does not depend on what else the machine runs; wall "
        "time is what a user sees on a quiet machine:\n\n"
        "| variant | wall ratio | CPU-time ratio | target |\n|---|---|---|---|\n"
        f"{rows}\n\n"
        f"Seconds: {report['seconds']}. Generated tokens: {report['generated_tokens']}.\n\n"
        f"Command: `{report['command']}`\n"
    )


if __name__ == "__main__":
    main()
