"""Prometheus metrics of one server: requests by status, queue depth, time to first token, decode speed
and the wrapper's decisions.

Each app gets its own registry, so several apps in one process (tests) never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from metaspider.serve.convert import Outcome

_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SPEED_BUCKETS = (1, 2, 5, 10, 20, 40, 60, 80, 100, 150, 200, 400)


class Metrics:
    """The server's instruments; `/metrics` renders them in Prometheus' text format."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "metaspider_requests", "Chat-completion requests by HTTP status.", ["status"], registry=r
        )
        self.queue_depth = Gauge("metaspider_queue_depth", "Requests waiting for the model.", registry=r)
        self.in_progress = Gauge("metaspider_requests_in_progress", "Requests the model is working on.", registry=r)
        self.cancelled = Counter(
            "metaspider_requests_cancelled", "Requests whose client went away before the end.", registry=r
        )
        self.ttft = Histogram(
            "metaspider_time_to_first_token_seconds",
            "From arrival to the first generated text, queueing included.",
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.speed = Histogram(
            "metaspider_tokens_per_second",
            "Generated tokens per second after the first one.",
            buckets=_SPEED_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "metaspider_decisions", "The wrapper's decision on each answer.", ["decision"], registry=r
        )
        self.completion_tokens = Counter("metaspider_completion_tokens", "Generated tokens.", registry=r)
        self.prompt_tokens = Counter("metaspider_prompt_tokens", "Prompt tokens.", registry=r)

    def observe(self, outcome: Outcome, arrived: float) -> None:
        """Record a finished generation (`arrived`: perf_counter at the request's arrival)."""
        if outcome.first_token_at is not None:
            self.ttft.observe(outcome.first_token_at - arrived)
            if outcome.finished_at is not None and outcome.completion_tokens > 1:
                elapsed = outcome.finished_at - outcome.first_token_at
                if elapsed > 0:
                    self.speed.observe((outcome.completion_tokens - 1) / elapsed)
        if outcome.uncertainty is not None:
            self.decisions.labels(decision=str(outcome.uncertainty.get("decision"))).inc()
        self.completion_tokens.inc(outcome.completion_tokens)
        self.prompt_tokens.inc(outcome.prompt_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
