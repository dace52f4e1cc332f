"""`mixture`: every open-question topic, `countries`, `open-ended` and `conversations` in one data set.

Each item's id is prefixed by its data set's name, its `subject` is that name (per-topic scores of a
mixed run group by it), its group is prefixed too, and its split is pinned to the one it has in its
own data set: a topic's test split in the mixture is exactly its test split alone."""

from __future__ import annotations

from dataclasses import replace

from metaspider.loom.datasets import Item, load_items
from metaspider.loom.topics.registry import CONVERSATIONS, OPEN_ENDED, QA_TOPICS
from metaspider.loom.topics.splits import split_of

SOURCES = (*QA_TOPICS, "countries", OPEN_ENDED, CONVERSATIONS)


def build() -> list[Item]:
    """All the sources, in the order of SOURCES."""
    mixed = []
    for name in SOURCES:
        items = load_items(name)
        splits = split_of(items)
        for item in items:
            mixed.append(
                replace(
                    item,
                    id=item.id if item.id.startswith(f"{name}:") else f"{name}:{item.id}",
                    subject=name,
                    group=f"{name}:{item.group}" if item.group is not None else None,
                    split=splits[item.id],
                )
            )
    return mixed
