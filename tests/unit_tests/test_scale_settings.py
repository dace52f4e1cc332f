"""The pure logic around Ray collects and PostgreSQL memory: URL handling, spec parsing, CLI checks and
the order in which Ray results are stored (no model, no server, no cluster)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from metaspider.errors import MetaspiderError
from metaspider.graph.memory import Memory, open_memory
from metaspider.graph.postgres_memory import is_postgres_url, redact
from metaspider.graph.spec import AgentSpec
from metaspider.loom.cli import _ray_options
from metaspider.loom.datasets import Item
from metaspider.loom.ray_collect import BATCH_SIZE, RayOptions, _ordered_results


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bob:hunter2@db:5432/agents", "postgresql://bob:***@db:5432/agents"),
        ("postgres://bob@db/agents", "postgres://bob@db/agents"),
        ("postgresql://db/agents?user=bob&password=hunter2", "postgresql://db/agents?user=bob&password=***"),
        ("postgresql://bob:p%40ss@db/agents", "postgresql://bob:***@db/agents"),
    ],
)
def test_redact_hides_the_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_only_postgres_urls_are_postgres() -> None:
    assert is_postgres_url("postgresql://h/db") and is_postgres_url("postgres://h/db")
    assert not is_postgres_url("memory.sqlite") and not is_postgres_url(Path("postgresql://x"))
    assert not is_postgres_url("sqlite:///x.db") and not is_postgres_url(None)


def _spec(memory: str) -> AgentSpec:
    data = {"model": "m", "policy": {"answer_below": 0.5}, "memory": memory}
    return AgentSpec.model_validate(data, context={"spec_dir": Path("/specs")})


def test_spec_memory_keeps_a_url_and_resolves_a_file() -> None:
    assert _spec("postgresql://bob@db/agents").memory == "postgresql://bob@db/agents"
    assert _spec("threads.sqlite").memory == Path("/specs/threads.sqlite")
    assert _spec("/var/lib/threads.sqlite").memory == Path("/var/lib/threads.sqlite")


def test_sqlite_memory_is_still_sqlite(tmp_path: Path) -> None:
    memory = open_memory(tmp_path / "threads.sqlite")
    try:
        assert isinstance(memory, Memory)
        memory.touch("t1")
        with memory.thread_lock("t1"):
            assert memory.last_thread() == "t1"
    finally:
        memory.close()


def test_ray_options_from_the_cli() -> None:
    assert _ray_options(False, None, None, 4) is None
    assert _ray_options(True, None, None, None) == RayOptions(address=None, workers=None, threads=1)
    assert _ray_options(False, "auto", 3, 2) == RayOptions(address="auto", workers=3, threads=2)
    with pytest.raises(MetaspiderError, match="--workers applies to Ray"):
        _ray_options(False, None, 2, None)
    with pytest.raises(MetaspiderError, match="at least 1"):
        _ray_options(True, None, 0, None)


class _Ref:
    def __init__(self, value: list) -> None:
        self.value = value


class _Worker:
    def __init__(self) -> None:
        self.collect = self
        self.batches: list[list[Item]] = []

    def remote(self, batch: list[Item]) -> _Ref:
        self.batches.append(batch)
        return _Ref([item.id for item in batch])


class _ShuffledRay:
    """Finishes the submitted batches in a random order, as workers of unequal speed would."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def wait(self, refs: list[_Ref], num_returns: int) -> tuple[list[_Ref], list[_Ref]]:
        chosen = self.random.choice(refs)
        return [chosen], [ref for ref in refs if ref is not chosen]

    def get(self, ref: _Ref) -> list:
        return ref.value


@pytest.mark.parametrize("seed", range(5))
def test_results_are_stored_in_question_order_whatever_finishes_first(seed: int) -> None:
    items = [Item(id=f"q{i}", question="?") for i in range(37)]
    workers = [_Worker(), _Worker()]
    advanced: list[int] = []
    batches = list(_ordered_results(_ShuffledRay(seed), workers, items, advanced.append))
    assert [item_id for batch in batches for item_id in batch] == [item.id for item in items]
    assert sum(advanced) == len(items)
    assert all(len(batch) <= BATCH_SIZE for batch in batches)
    assert all(worker.batches for worker in workers)


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [(None, pytest.skip.Exception), ("false", pytest.skip.Exception), ("true", pytest.fail.Exception)],
)
def test_postgres_fixture_skips_without_a_server_only_outside_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str | None, outcome: type
) -> None:
    import postgres_server

    monkeypatch.setattr(postgres_server, "find_bin_dir", lambda: None)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="apt-get install -y postgresql"):
        postgres_server.server_binaries()
