"""A bounded, first-come first-served queue in front of the one model.

The model works on one request at a time (one KV cache, one injection). Requests wait here, on the
event loop, not in a thread blocked on the model's lock: a waiting request whose client goes away is
simply dropped, and a full queue answers 429 at once with a `Retry-After` estimated from recent
request durations."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from metaspider.serve.errors import ApiError
from metaspider.serve.metrics import Metrics


class RequestQueue:
    """At most one request runs; at most `max_waiting` more wait, in arrival order."""

    def __init__(self, max_waiting: int, metrics: Metrics):
        if max_waiting < 0:
            raise ValueError("max_waiting must be >= 0")
        self.max_waiting = max_waiting
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self._pending = 0
        """Admitted and not yet finished: waiting plus running."""
        self._mean_seconds = 1.0

    @property
    def pending(self) -> int:
        return self._pending

    def admit(self) -> Ticket:
        """Take a place in the queue, or raise the 429 a client should back off on."""
        if self._pending > self.max_waiting:
            retry = max(1, math.ceil(self._mean_seconds * self._pending))
            raise ApiError(
                429,
                f"The server is busy: {self._pending - 1} request(s) already wait for the model "
                f"(--max-queue {self.max_waiting}). Retry after about {retry} s.",
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": str(retry)},
            )
        self._pending += 1
        self._metrics.queue_depth.set(self._waiting())
        return Ticket(self)

    def _waiting(self) -> int:
        return max(0, self._pending - (1 if self._lock.locked() else 0))

    def _done(self, seconds: float | None) -> None:
        self._pending -= 1
        if seconds is not None:
            self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * seconds
        self._metrics.queue_depth.set(self._waiting())


class Ticket:
    """One admitted request's place: `turn()` waits for the model; `release()` (idempotent) leaves."""

    def __init__(self, queue: RequestQueue):
        self._queue = queue
        self._released = False
        self._started: float | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the model for the body of the `async with`; cancelling while waiting just leaves."""
        queue = self._queue
        try:
            async with queue._lock:
                self._started = time.perf_counter()
                queue._metrics.queue_depth.set(queue._waiting())
                queue._metrics.in_progress.inc()
                try:
                    yield
                finally:
                    queue._metrics.in_progress.dec()
        finally:
            self.release()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        seconds = time.perf_counter() - self._started if self._started is not None else None
        self._queue._done(seconds)
