"""The lock that gives one request at a time the model's KV cache and injection.

A backbone holds one cache and one injection, so requests must not overlap. The lock is deliberately
*not* re-entrant: a second request started by the thread that already holds the model (two streams
interleaved in one loop) would share the cache and have its clean-up drop the first one's injection,
so it is refused with `ModelReentryError` instead. Waiting has a limit by default (`ModelBusyError`,
a `TimeoutError`), and a stream left suspended at a yield for longer than `idle_limit` (abandoned by
its consumer) loses the model to the next waiter: the backbone is reset, and the stream raises
`StreamAbandonedError` if it is ever resumed. A lease can be released from any thread, so a stream
closed by the garbage collector elsewhere still frees the model."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from metaspider.errors import MetaspiderError

DEFAULT_WAIT_LIMIT = 120.0
"""Seconds a request waits for a busy model before `ModelBusyError`."""
DEFAULT_IDLE_LIMIT = 30.0
"""Seconds a stream may sit unread at a yield while others wait, before it loses the model."""


class ModelBusyError(MetaspiderError, TimeoutError):
    """The model stayed busy with other requests for longer than the caller would wait."""


class ModelReentryError(MetaspiderError):
    """This thread already holds the model: finish or close its earlier request first."""


class StreamAbandonedError(MetaspiderError):
    """A stream was left unread for too long while other requests waited; the model went to them."""


class Lease:
    """One holding of the model: who took it, and whether it sits suspended at a yield."""

    def __init__(self, thread: int, on_revoke: Callable[[], None] | None):
        self.thread = thread
        self.revoked = False
        self._on_revoke = on_revoke
        self._parked_since: float | None = None

    def park(self) -> None:
        """The holder is about to hand a result to its consumer and wait for it."""
        self._parked_since = time.monotonic()

    def resume(self) -> None:
        """The consumer asked for more; raises if the model was taken away in the meantime."""
        self._parked_since = None
        if self.revoked:
            raise StreamAbandonedError(
                "this stream was left unread while other requests waited and lost the model; start a new request"
            )

    def idle_for(self) -> float:
        return 0.0 if self._parked_since is None else time.monotonic() - self._parked_since


class ModelLock:
    """Non-re-entrant, with a default wait limit and revocation of abandoned streams (module doc)."""

    def __init__(self, name: str, wait_limit: float = DEFAULT_WAIT_LIMIT, idle_limit: float = DEFAULT_IDLE_LIMIT):
        self.name = name
        self.wait_limit = wait_limit
        self.idle_limit = idle_limit
        self._cond = threading.Condition(threading.Lock())
        self._holder: Lease | None = None

    @property
    def holder(self) -> Lease | None:
        return self._holder

    def acquire(self, timeout: float | None = None, on_revoke: Callable[[], None] | None = None) -> Lease:
        """Take the model, waiting at most `timeout` seconds (None: `wait_limit`). `on_revoke` makes the
        holding revocable once parked for `idle_limit`; it is called (by the waiter) to reset the model."""
        limit = self.wait_limit if timeout is None else timeout
        deadline = time.monotonic() + limit
        me = threading.get_ident()
        with self._cond:
            while self._holder is not None:
                holder = self._holder
                if holder.thread == me:
                    raise ModelReentryError(
                        f"this thread already holds {self.name} (an earlier request or stream is still open): "
                        "finish or close it before starting another request on the same model"
                    )
                if holder._on_revoke is not None and holder.idle_for() >= self.idle_limit:
                    self._revoke(holder)
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ModelBusyError(f"{self.name} stayed busy with other requests for more than {limit:g} s")
                wait = remaining
                if holder._on_revoke is not None:
                    wait = min(wait, max(0.01, self.idle_limit - holder.idle_for()) if holder.idle_for() else 0.5)
                self._cond.wait(wait)
            lease = self._holder = Lease(me, on_revoke)
            return lease

    def release(self, lease: Lease) -> None:
        """Give the model back; a no-op for a lease that was revoked (its model already went on)."""
        with self._cond:
            if self._holder is lease:
                self._holder = None
                self._cond.notify()

    def _revoke(self, holder: Lease) -> None:
        holder.revoked = True
        self._holder = None
        if holder._on_revoke is not None:
            holder._on_revoke()

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        holder = self._holder
        if holder is not None and holder.thread == threading.get_ident():
            self.release(holder)
