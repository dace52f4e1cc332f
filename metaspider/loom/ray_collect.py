"""`collect` over a Ray cluster: the questions are split over worker actors, each holding its own backbone.

Data path: the workers send their results back to the driver, and only the driver writes the run
folder. The nodes of a cluster rarely share a file system, the run folder's chunk numbering assumes one
writer, and resuming then works exactly as for a single-process collect (the driver skips every question
already stored). What travels is small: per question a record, the read-layer outputs at the decision
point and, for stage B, the prefix layer's outputs over prompt + target (float16, a few hundred kB).

Each worker runs `ItemCollector`, the single-process collect's per-question step, on batches of
consecutive questions (so its shared-prefix cache keeps working), and the driver stores the results in
question order, in chunks, through the same `ChunkWriter`: the run folder cannot tell the two
collects apart. Ray is an optional dependency (`pip install 'metaspider[ray]'`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from metaspider.errors import MetaspiderError
from metaspider.loom.collect import ChunkWriter, CollectedItem, CollectSummary, ItemCollector, record_time
from metaspider.loom.datasets import Item, load_items, sample_items, split_items
from metaspider.loom.progress import progress_bar
from metaspider.loom.run_folder import RunConfig, RunFolder

BATCH_SIZE = 4
"""Questions per task: small enough to balance the workers and move the progress bar, large enough that
the round trip to the driver is noise next to the model's work."""
IN_FLIGHT = 2
"""Batches queued per worker, so a worker never waits for the driver between two batches."""
LOCAL_OBJECT_STORE_BYTES = 512 * 1024**2


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide: `address` None starts a local Ray cluster, otherwise joins that one (an address
    `ray.init` accepts: "auto", "HOST:6379", "ray://HOST:10001"). `threads` is per worker; `workers` None
    fills the cluster's CPUs."""

    address: str | None = None
    workers: int | None = None
    threads: int = 1


def ray_collect(
    run: RunFolder,
    model: str,
    dataset: str,
    split: str,
    limit: int | None = None,
    options: RayOptions = RayOptions(),
    config: RunConfig | None = None,
    consistency: int = 0,
) -> CollectSummary:
    """Collect the questions of `split` not yet stored in `run`, on Ray workers; same result as `collect`.

    `config` None takes the run folder's, or (a new run) the default layers of the model the workers
    loaded. `consistency` samples answers for a hash-picked subset of that size, as `collect` does."""
    ray = _import_ray()
    if options.threads < 1:
        raise MetaspiderError(f"--threads must be at least 1 per Ray worker, not {options.threads}")
    items = sample_items(split_items(load_items(dataset), split), limit)
    if run.has_config() and run.stored_ids(dataset, split) >= {item.id for item in items}:
        return _summary(run, dataset, split, 0)  # nothing to do: no cluster to start
    started = _connect(ray, options)
    workers: list[Any] = []
    try:
        n_workers = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // options.threads)
        worker_class = ray.remote(_CollectWorker).options(num_cpus=options.threads)
        workers = [worker_class.remote(model, options.threads) for _ in range(n_workers)]
        fingerprint, n_layers = _get(ray, workers[0].describe.remote())
        config = config or _run_config(run, model, fingerprint, n_layers)
        if fingerprint != config.fingerprint:
            raise MetaspiderError(f"{run.path} was collected with fingerprint {config.fingerprint}, not {fingerprint}")
        run.save_config(config)
        done = run.stored_ids(dataset, split)
        todo = [item for item in items if item.id not in done]
        with_consistency = {item.id for item in sample_items(items, consistency)} if consistency > 0 else set()
        started_at = time.monotonic()
        _get(ray, [worker.start.remote(config) for worker in workers])
        with progress_bar() as progress:
            task = progress.add_task(
                f"collect {dataset}/{split}",
                total=len(items),
                completed=len(items) - len(todo),
                info=f"{n_workers} Ray workers",
            )
            writer = ChunkWriter(run, dataset, split)
            jobs = [(item, item.id in with_consistency) for item in todo]
            for batch in _ordered_results(ray, workers, jobs, lambda n: progress.advance(task, n)):
                for result in batch:
                    writer.add(result)
            writer.flush()
        record_time(run, dataset, split, time.monotonic() - started_at, len(todo))
    finally:
        for worker in workers:
            ray.kill(worker)
        if started:
            ray.shutdown()
    return _summary(run, dataset, split, len(todo))


def _summary(run: RunFolder, dataset: str, split: str, n_new: int) -> CollectSummary:
    stored = run.load(dataset, split)
    return CollectSummary(dataset, split, len(stored.records), n_new, float(np.mean(stored.labels("correct"))))


class _CollectWorker:
    """A Ray actor: one backbone with its own thread count, collecting the batches it is given in order."""

    def __init__(self, model: str, threads: int):
        from metaspider.loom.backbones import llama_backbone

        self.backbone = llama_backbone(model, threads)
        self.collector: ItemCollector | None = None

    def describe(self) -> tuple[str, int]:
        """(fingerprint, number of blocks) of the loaded model: the driver builds a new run's config from them."""
        return self.backbone.fingerprint, self.backbone.n_layers

    def start(self, config: RunConfig) -> None:
        """Take the run's config (layers to read); called once before the first batch."""
        self.collector = ItemCollector(self.backbone, config)

    def collect(self, jobs: list[tuple[Item, bool]]) -> list[CollectedItem]:
        """The per-question results of one batch of (question, sample consistency?), in the batch's order."""
        assert self.collector is not None, "start() first"
        return [self.collector(item, consistency=consistency) for item, consistency in jobs]


def _ordered_results(ray: Any, workers: list[Any], items: list[tuple[Item, bool]], advance: Any) -> Iterator[list]:
    """Batches of results in question order, while every worker keeps `IN_FLIGHT` batches queued.
    Results that finish early wait in the driver until the batches before them are in."""
    batches = [items[start : start + BATCH_SIZE] for start in range(0, len(items), BATCH_SIZE)]
    pending: dict[Any, tuple[int, Any]] = {}
    finished: dict[int, list] = {}
    next_batch = next_out = 0

    def submit(worker: Any) -> None:
        nonlocal next_batch
        if next_batch < len(batches):
            pending[worker.collect.remote(batches[next_batch])] = (next_batch, worker)
            next_batch += 1

    for _ in range(IN_FLIGHT):
        for worker in workers:
            submit(worker)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        index, worker = pending.pop(ready[0])
        finished[index] = _get(ray, ready[0])
        advance(len(finished[index]))
        submit(worker)
        while next_out in finished:
            yield finished.pop(next_out)
            next_out += 1


def _run_config(run: RunFolder, model: str, fingerprint: str, n_layers: int) -> RunConfig:
    """The run folder's config, or a new one with the model's default layers (as the single-process CLI)."""
    from metaspider.core.wrapper.config import default_layers

    if run.has_config():
        config = run.config()
        if config.model != model:
            raise MetaspiderError(
                f"{run.path} was collected with --model {config.model}, not {model}: use another --run folder"
            )
        return config
    read, inject = default_layers(n_layers)
    return RunConfig(model, fingerprint, read, inject, min(inject) - 1)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MetaspiderError("--ray needs Ray: pip install 'metaspider[ray]'") from None
    return ray


def _connect(ray: Any, options: RayOptions) -> bool:
    """Join the cluster at `options.address`, or start a quiet local one (no dashboard, workers' logs
    kept in Ray's session folder). True when this call started Ray, so the caller shuts it down."""
    if ray.is_initialized():
        return False
    if options.address is None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        cpus = (options.workers or os.cpu_count() or 1) * options.threads
        ray.init(
            num_cpus=cpus,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
        return True
    try:
        ray.init(address=options.address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MetaspiderError(f"cannot join the Ray cluster at {options.address}: {first_line}") from None
    return True


def _get(ray: Any, refs: Any) -> Any:
    """`ray.get`, with a worker's own error (a missing model file, a bad run folder) shown as the error."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(getattr(exc, "cause", None), Exception) else None
        if isinstance(cause, MetaspiderError):
            raise MetaspiderError(f"Ray worker: {cause}") from None
        raise
    except ray.exceptions.ActorDiedError as exc:
        line = _first_error_line(str(exc))
        prefix = f"{MetaspiderError.__module__}.{MetaspiderError.__name__}: "
        if line.startswith(prefix):
            raise MetaspiderError(f"Ray worker: {line.removeprefix(prefix)}") from None
        raise MetaspiderError(f"a Ray collect worker died: {line}") from None


def _first_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line and not line.startswith("File ")]
    return errors[-1] if errors else (lines[0] if lines else "no message")
