"""The split of every item of a data set, so that items built from it elsewhere (a conversation ending
on its question, a mixture) keep it."""

from __future__ import annotations

from metaspider.loom.datasets import Item, split_items

PARTS = ("train", "val", "calib", "test")


def split_of(items: list[Item]) -> dict[str, str]:
    """Item id -> the split `split_items` puts it in."""
    return {item.id: part for part in PARTS for item in split_items(items, part)}
