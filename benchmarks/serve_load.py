"""Bounded load on `metaspider serve` vs llama-cpp-python's own server, side by side in one run.

Three servers on 127.0.0.1, all up at once, same GGUF, same threads, context, batch and `max_tokens`,
greedy, streamed:
- `llama_cpp.server` (`python -m llama_cpp.server`, flash attention on and `logits_all` off: its best
  settings for chat; `interrupt_requests` off, otherwise each new request cuts the running stream short
  and its completions are not the work asked for),
- `metaspider serve` with the shipped default wrapper exported as a `pooled`/`generated` sidecar (the
  mode whose injection is a llama.cpp control vector: the target's configuration),
- `metaspider serve --wrapper default` as shipped (its manifest says `tokens`/`generated`), reported too.

For each concurrency level (default 1, 4 and 16 clients) each server gets the same N requests (default
30, prompts cycled in the same order); the servers take turns per level, and rounds alternate the order,
so background load hits them alike. Measured per request: time to first content token (from sending the
request), tokens (the completion re-tokenised with the model's own tokenizer, the same for all servers),
status, and for metaspider whether `metaspider.uncertainty` came with the answer. Throughput is
completion tokens per second of wall time at that level.

    nice -n 10 python benchmarks/serve_load.py            # writes benchmarks/results/serve_load.{json,md,png}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx

from metaspider.core.models.registry import resolve
from metaspider.core.wrapper.folder import load_manifest, load_weights_numpy
from metaspider.core.wrapper.handle import resolve_wrapper_path
from metaspider.core.wrapper.sidecar import write_sidecar

PROMPTS = [
    "Explain how photosynthesis works.",
    "Give three tips for learning a new language.",
    "Summarize the plot of Romeo and Juliet.",
    "Write a short poem about the sea.",
    "What is the capital of France?",
    "Describe the water cycle.",
]
"""Mostly open requests that run to `max_tokens` on the bare model, plus a factual question."""

TARGETS = {"throughput_min": 0.9, "ttft_p50_max": 1.15}
RESULTS = Path(__file__).parent / "results"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pooled_sidecar(model: str, folder: Path) -> Path:
    """The shipped wrapper's weights as a pooled/generated sidecar (what `deploy export` writes)."""
    source = resolve_wrapper_path("default", model)
    manifest, weights = load_manifest(source), load_weights_numpy(source)
    config = replace(manifest.config, injection="pooled", positions="generated")
    return write_sidecar(
        folder / "pooled_generated.gguf", replace(manifest, config=config), weights, "pooled_generated"
    )


class Server:
    """One server process, its port and the model name it answers to."""

    def __init__(self, name: str, command: list[str], port: int, model_id: str, ready_path: str, log: Path):
        self.name, self.port, self.model_id, self.ready_path = name, port, model_id, ready_path
        self.log = log
        self.process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_servers(args: argparse.Namespace, work: Path) -> list[Server]:
    path = resolve(args.model)
    sidecar = _pooled_sidecar(args.model, work)
    python = sys.executable
    common = ["--n-ctx", str(args.n_ctx), "--threads", str(args.threads), "--log-level", "warning"]
    ms = [str(Path(python).parent / "metaspider"), "serve"]
    servers = []
    port = _free_port()
    servers.append(
        Server(
            "llama_cpp.server",
            [
                python,
                "-m",
                "llama_cpp.server",
                "--model",
                str(path),
                "--model_alias",
                args.model,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                str(args.n_ctx),
                "--n_batch",
                "512",
                "--n_ubatch",
                "512",
                "--n_threads",
                str(args.threads),
                "--n_threads_batch",
                str(args.threads),
                "--flash_attn",
                "true",
                "--logits_all",
                "false",
                "--interrupt_requests",
                "false",
            ],
            port,
            args.model,
            "/v1/models",
            work / "llama_cpp_server.log",
        )
    )
    for name, wrapper in (
        ("metaspider pooled_generated", str(sidecar)),
        ("metaspider default (tokens_generated)", "default"),
    ):
        port = _free_port()
        command = [*ms, "--model", args.model, "--wrapper", wrapper, "--port", str(port), "--max-queue", "16", *common]
        servers.append(Server(name, command, port, args.model, "/health", work / f"{name.split()[1]}.log"))
    for server in servers:
        server.wait_ready()
    return servers


async def one_request(client: httpx.AsyncClient, server: Server, prompt: str, max_tokens: int) -> dict:
    body = {
        "model": server.model_id,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    start = time.perf_counter()
    first = None
    text: list[str] = []
    extra = None
    status = 0
    error = None
    try:
        async with client.stream("POST", server.url + "/v1/chat/completions", json=body) as response:
            status = response.status_code
            if status != 200:
                error = (await response.aread()).decode()[:300]
            else:
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        error = json.dumps(chunk["error"])[:300]
                        continue
                    for choice in chunk.get("choices", []):
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            first = first or time.perf_counter()
                            text.append(piece)
                    if chunk.get("metaspider"):
                        extra = chunk["metaspider"]
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    end = time.perf_counter()
    return {
        "status": status,
        "error": error,
        "ttft_s": (first - start) if first else None,
        "total_s": end - start,
        "text": "".join(text),
        "uncertainty": (extra or {}).get("uncertainty"),
    }


async def run_level(server: Server, clients: int, n_requests: int, max_tokens: int) -> tuple[list[dict], float]:
    """`clients` workers share `n_requests` requests; each sends its next one when the last is done."""
    todo = list(range(n_requests))
    results: list[dict] = [{}] * n_requests
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as client:

        async def worker() -> None:
            while todo:
                i = todo.pop(0)
                results[i] = await one_request(client, server, PROMPTS[i % len(PROMPTS)], max_tokens)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - start
    return results, wall


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarize(results: list[dict], wall: float, count_tokens, is_metaspider: bool) -> dict:
    ok = [r for r in results if r["status"] == 200 and r["error"] is None]
    deliberate_429 = sum(1 for r in results if r["status"] == 429)
    missing_u = sum(1 for r in ok if is_metaspider and not (r["uncertainty"] and r["uncertainty"].get("decision")))
    failures = len(results) - len(ok) - deliberate_429 + missing_u
    tokens = [count_tokens(r["text"]) for r in ok]
    ttfts = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]
    return {
        "requests": len(results),
        "ok": len(ok),
        "rejected_429": deliberate_429,
        "failures": failures,
        "missing_uncertainty": missing_u,
        "wall_s": wall,
        "completion_tokens": sum(tokens),
        "mean_tokens": sum(tokens) / len(tokens) if tokens else 0.0,
        "throughput_tok_s": sum(tokens) / wall if wall > 0 else 0.0,
        "requests_per_s": len(ok) / wall if wall > 0 else 0.0,
        "ttft_p50_s": _percentile(ttfts, 50),
        "ttft_p95_s": _percentile(ttfts, 95),
        "errors": sorted({r["error"] for r in results if r["error"]})[:3],
    }


def _tokenizer(model: str):
    """The model's own tokenizer (vocab only), to count every server's completion the same way."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    vocab = LlamaModel(path_model=str(resolve(model)), params=params, verbose=False)
    return lambda text: len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load")
    parser.add_argument("--render-only", action="store_true", help="Rewrite the .md and .png from the .json.")
    args = parser.parse_args()
    if args.render_only:
        report = json.loads(args.out.with_suffix(".json").read_text())
        args.out.with_suffix(".md").write_text(markdown(report))
        plot(report, args.out.with_suffix(".png"))
        return
    levels = [int(x) for x in args.levels.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the servers
    count_tokens = _tokenizer(args.model)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        servers = start_servers(args, Path(tmp))
        try:
            for server in servers:  # warm-up, not measured
                asyncio.run(run_level(server, 1, 2, args.max_tokens))
            raw: dict[str, dict[int, list[tuple[list[dict], float]]]] = {
                s.name: {c: [] for c in levels} for s in servers
            }
            for round_ in range(args.rounds):
                order = servers if round_ % 2 == 0 else servers[::-1]
                for clients in levels:
                    for server in order:
                        results, wall = asyncio.run(run_level(server, clients, args.requests, args.max_tokens))
                        raw[server.name][clients].append((results, wall))
                        print(f"round {round_} clients {clients:2d} {server.name}: {wall:.1f} s", flush=True)
        finally:
            for server in servers:
                server.stop()
    load_after = os.getloadavg()[0]
    report = build_report(args, levels, raw, count_tokens, (load_before, load_after))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    plot(report, args.out.with_suffix(".png"))
    print(markdown(report))


def build_report(args, levels, raw, count_tokens, load) -> dict:
    summary: dict[str, dict[str, dict]] = {}
    for name, by_level in raw.items():
        summary[name] = {}
        for clients, runs in by_level.items():
            results = [r for run, _ in runs for r in run]
            wall = sum(w for _, w in runs)
            summary[name][str(clients)] = summarize(results, wall, count_tokens, name.startswith("metaspider"))
    base = summary["llama_cpp.server"]
    ratios: dict[str, dict[str, dict]] = {}
    for name in summary:
        if name == "llama_cpp.server":
            continue
        ratios[name] = {}
        for clients in map(str, levels):
            ours, theirs = summary[name][clients], base[clients]
            ratios[name][clients] = {
                "throughput": ours["throughput_tok_s"] / theirs["throughput_tok_s"]
                if theirs["throughput_tok_s"]
                else None,
                "requests_per_s": ours["requests_per_s"] / theirs["requests_per_s"]
                if theirs["requests_per_s"]
                else None,
                "ttft_p50": ours["ttft_p50_s"] / theirs["ttft_p50_s"]
                if ours["ttft_p50_s"] and theirs["ttft_p50_s"]
                else None,
                "ttft_p95": ours["ttft_p95_s"] / theirs["ttft_p95_s"]
                if ours["ttft_p95_s"] and theirs["ttft_p95_s"]
                else None,
            }
    target = "metaspider pooled_generated"
    met = {
        clients: {
            "throughput": (ratios[target][clients]["throughput"] or 0) >= TARGETS["throughput_min"],
            "ttft_p50": (ratios[target][clients]["ttft_p50"] or 99) <= TARGETS["ttft_p50_max"],
            "no_failures": all(summary[n][clients]["failures"] == 0 for n in summary),
        }
        for clients in map(str, levels)
    }
    return {
        "command": " ".join(["python", "benchmarks/serve_load.py", *sys.argv[1:]]),
        "settings": {
            "model": args.model,
            "threads": args.threads,
            "n_ctx": args.n_ctx,
            "max_tokens": args.max_tokens,
            "requests_per_level": args.requests,
            "rounds": args.rounds,
            "levels": levels,
            "prompts": PROMPTS,
            "temperature": 0,
            "stream": True,
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_before_after": load},
        "summary": summary,
        "ratios_vs_llama_cpp_server": ratios,
        "targets": TARGETS,
        "targets_met": met,
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = [
        "# Serve load: `metaspider serve` vs `llama_cpp.server`",
        "",
        f"Command: `nice -n 10 {report['command']}`",
        "",
        (
            f"{s['model']}, {s['threads']} thread(s), n_ctx {s['n_ctx']}, max_tokens {s['max_tokens']}, greedy, streamed; "
            f"{s['requests_per_level']} requests per server per concurrency level per round, {s['rounds']} rounds (server "
            f"order alternating), same {len(s['prompts'])} prompts cycled. Tokens are the completions re-tokenised with the "
            "model's tokenizer. TTFT: from sending the request to the first content token, queueing included. "
            f"{report['machine']['cpus']} cores shared with other jobs (load average before/after: "
            f"{report['machine']['load_before_after'][0]:.2f} / {report['machine']['load_before_after'][1]:.2f})."
        ),
        "",
        "| server | clients | ok | 429 | failures | mean tokens | tok/s | req/s | TTFT p50 (s) | TTFT p95 (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_level in report["summary"].items():
        for clients, r in by_level.items():
            lines.append(
                f"| {name} | {clients} | {r['ok']} | {r['rejected_429']} | {r['failures']} | {r['mean_tokens']:.1f} | "
                f"{r['throughput_tok_s']:.1f} | {r['requests_per_s']:.2f} | {_fmt(r['ttft_p50_s'])} | {_fmt(r['ttft_p95_s'])} |"
            )
    lines += [
        "",
        (
            "The wrapper's injection changes the text, so completions differ in length (mean tokens); throughput "
            "counts the tokens each server actually generated. With 1 client TTFT is the server's own latency; with "
            "4 and 16 it is mostly waiting for the requests ahead (every server runs one request at a time)."
        ),
        "",
        "Ratios to llama_cpp.server (throughput: higher is better; TTFT: lower is better):",
        "",
    ]
    lines += ["| server | clients | throughput | req/s | TTFT p50 | TTFT p95 |", "|---|---|---|---|---|---|"]
    for name, by_level in report["ratios_vs_llama_cpp_server"].items():
        for clients, r in by_level.items():
            lines.append(
                f"| {name} | {clients} | {_fmt(r['throughput'])} | {_fmt(r['requests_per_s'])} | {_fmt(r['ttft_p50'])} | "
                f"{_fmt(r['ttft_p95'])} |"
            )
    t = report["targets"]
    lines += [
        "",
        (
            f"Targets (metaspider pooled_generated): throughput >= {t['throughput_min']}x, TTFT p50 <= "
            f"{t['ttft_p50_max']}x, no failure but deliberate 429s, uncertainty on every metaspider answer."
        ),
        "",
    ]
    for clients, met in report["targets_met"].items():
        verdict = ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in met.items())
        lines.append(f"- {clients} client(s): {verdict}")
    lines.append("")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["summary"])
    levels = list(next(iter(report["summary"].values())))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        xs = [i + k * width for i in range(len(levels))]
        by_level = report["summary"][name]
        axes[0].bar(xs, [by_level[c]["throughput_tok_s"] for c in levels], width, label=name)
        axes[1].bar(xs, [by_level[c]["ttft_p50_s"] or 0 for c in levels], width, label=name)
        axes[1].scatter(xs, [by_level[c]["ttft_p95_s"] or 0 for c in levels], marker="_", s=200, color="black")
    for ax, title in zip(axes, ("throughput (completion tok/s)", "TTFT p50 (bars) and p95 (ticks), s"), strict=False):
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(levels))], [f"{c} client(s)" for c in levels])
        ax.set_title(title)
    axes[1].set_yscale("log")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(names), fontsize=9)
    fig.suptitle(
        f"metaspider serve vs llama_cpp.server, {report['settings']['model']}, {report['settings']['threads']} thread"
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
