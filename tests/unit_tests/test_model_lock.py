"""The model lock: no re-entry, a wait limit, abandoned streams lose the model, release from any thread."""

from __future__ import annotations

import threading
import time

import pytest

from metaspider.core.backbones.model_lock import (
    ModelBusyError,
    ModelLock,
    ModelReentryError,
    StreamAbandonedError,
)


def test_reentry_from_the_holding_thread_is_refused() -> None:
    lock = ModelLock("m")
    with lock, pytest.raises(ModelReentryError, match="already holds m"):
        lock.acquire(timeout=1)
    lease = lock.acquire(timeout=0)  # released by the `with`
    lock.release(lease)


def _hold_in_thread(lock: ModelLock, on_revoke=None) -> tuple[threading.Event, list]:
    taken, out = threading.Event(), []

    def hold() -> None:
        out.append(lock.acquire(on_revoke=on_revoke))
        taken.set()

    threading.Thread(target=hold, daemon=True).start()
    assert taken.wait(5)
    return taken, out


def test_waiting_has_a_limit() -> None:
    lock = ModelLock("m", wait_limit=0.2)
    _hold_in_thread(lock)
    start = time.monotonic()
    with pytest.raises(ModelBusyError, match="stayed busy") as caught:
        lock.acquire()
    assert isinstance(caught.value, TimeoutError)
    assert 0.15 < time.monotonic() - start < 2


def test_a_lease_is_released_from_another_thread() -> None:
    lock = ModelLock("m")
    _, out = _hold_in_thread(lock)
    lock.release(out[0])
    lock.release(lock.acquire(timeout=0))


def test_a_parked_stream_loses_the_model_to_a_waiter() -> None:
    lock = ModelLock("m", wait_limit=5, idle_limit=0.2)
    resets = []
    _, out = _hold_in_thread(lock, on_revoke=lambda: resets.append(1))
    abandoned = out[0]
    abandoned.park()
    mine = lock.acquire()
    assert resets == [1] and abandoned.revoked and lock.holder is mine
    lock.release(abandoned)  # the abandoned stream's late clean-up changes nothing
    assert lock.holder is mine
    with pytest.raises(StreamAbandonedError):
        abandoned.resume()
    lock.release(mine)


def test_a_busy_holder_is_never_revoked() -> None:
    lock = ModelLock("m", wait_limit=0.5, idle_limit=0.05)
    _, out = _hold_in_thread(lock, on_revoke=lambda: None)  # not parked: it is computing
    with pytest.raises(ModelBusyError):
        lock.acquire()
    assert not out[0].revoked
