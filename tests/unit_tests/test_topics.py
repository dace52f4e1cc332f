"""The topic data sets: size, ids, answers, entity splits and scoring, without a model."""

from __future__ import annotations

import pytest

from metaspider.loom.datasets import is_correct, load_items, split_items
from metaspider.loom.topics import QA_TOPICS

PARTS = ("train", "val", "calib", "test")


@pytest.mark.parametrize("name", QA_TOPICS)
def test_topic_has_300_items_unique_ids_and_answers(name):
    items = load_items(name)
    assert len(items) >= 300
    assert len({item.id for item in items}) == len(items)
    assert all(item.id.startswith(f"{name}:") and item.subject == name for item in items)
    assert all(item.answers and all(answer.strip() for answer in item.answers) for item in items)
    assert all(item.group for item in items)


@pytest.mark.parametrize("name", QA_TOPICS)
def test_topic_splits_are_stable_and_disjoint_by_entity(name):
    items = load_items(name)
    parts = {split: split_items(items, split) for split in PARTS}
    assert sum(len(part) for part in parts.values()) == len(items)
    assert all(parts[split] for split in PARTS)
    groups = {split: {item.group for item in parts[split]} for split in PARTS}
    for a in PARTS:
        for b in PARTS:
            assert a == b or not groups[a] & groups[b]
    reversed_items = list(reversed(items))
    assert {item.id for item in split_items(reversed_items, "test")} == {item.id for item in parts["test"]}


@pytest.mark.parametrize(
    ("item_id", "right", "wrong"),
    [
        ("elements:symbol:iron", "The symbol is Fe.", "It is Ir."),
        ("elements:name-of-number:gold", "Gold", "Silver"),
        ("elements:name-of-symbol:aluminum", "Aluminium", "Argon"),
        ("us-states:capital:texas", "Austin, Texas", "Dallas"),
        ("world-cities:country:munich", "Germany", "Austria"),
        ("calling-codes:code:france", "+33", "+34"),
        ("country-codes:alpha-3:germany", "DEU", "GER"),
        ("currencies:currency:japan", "The Japanese yen", "Won"),
        ("languages:language-of-code:de", "German", "Danish"),
        ("roman-numerals:to-roman:1994", "MCMXCIV", "MCMXCVI"),
        ("roman-numerals:from-roman:14", "fourteen", "16"),
        ("number-words:to-digits:1685", "1,685", "1865"),
    ],
)
def test_accepted_spellings_match_and_wrong_answers_do_not(item_id, right, wrong):
    topic = item_id.split(":")[0]
    by_id = {item.id: item for item in load_items(topic)}
    assert is_correct(by_id[item_id], right)
    assert not is_correct(by_id[item_id], wrong)


def test_codes_that_read_as_english_words_are_never_answers():
    codes = {item.id: item for item in load_items("country-codes")}
    assert "country-codes:alpha-2:india" not in codes  # "IN"
    assert "country-codes:alpha-3:canada" not in codes  # "CAN"
    elements = {item.id for item in load_items("elements")}
    assert "elements:symbol:iodine" not in elements  # "I"
