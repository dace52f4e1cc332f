"""The topic data sets: size, ids, answers, entity splits and scoring, without a model."""

from __future__ import annotations

import pytest

from metaspider.loom.datasets import Item, is_correct, load_items, split_items, to_messages
from metaspider.loom.scoring import REFUSAL_SENTENCE, normalise
from metaspider.loom.topics import QA_TOPICS

PARTS = ("train", "val", "calib", "test")


@pytest.mark.parametrize("name", QA_TOPICS)
def test_topic_has_300_items_unique_ids_and_answers(name):
    items = load_items(name)
    assert len(items) >= 300
    assert len({item.id for item in items}) == len(items)
    assert all(item.id.startswith(f"{name}:") and item.subject == name for item in items)
    assert all(item.answers and all(normalise(answer) for answer in item.answers) for item in items)
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
        ("calendar:days-in-month:2024-02", "February 2024 has 29 days.", "28 days"),
        ("calendar:next-month:june", "July", "August"),
        ("provinces:country:ca-on", "Ontario is in Canada.", "The United States"),
        ("emoji:name:green-heart", "A green heart.", "A red heart."),
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


@pytest.mark.parametrize("name", QA_TOPICS)
def test_no_question_contains_its_own_answer(name):
    """A reply restating the question must not count as right ("Which country uses the Saint Helena
    Pound?")."""
    assert not [item.id for item in load_items(name) if is_correct(item, item.question)]


def test_open_ended_requests_count_any_non_refusal_as_right():
    items = load_items("open-ended")
    assert len(items) >= 300
    assert len({item.id for item in items}) == len(items)
    assert all(item.kind == "open_ended" and not item.answers for item in items)
    request = items[0]
    assert is_correct(request, "Here is a short poem: the sea is calm tonight.")
    assert not is_correct(request, REFUSAL_SENTENCE)
    assert not is_correct(request, "Sorry. I don't know.")
    assert not is_correct(request, "   ")
    assert to_messages(request) == [{"role": "user", "content": request.question}]


def test_conversations_have_one_to_eight_earlier_turns_rendered_before_the_question():
    items = load_items("conversations")
    assert len(items) >= 300
    assert len({item.id for item in items}) == len(items)
    assert {len(item.history) for item in items} == set(range(1, 9))
    item = max(items, key=lambda item: len(item.history))
    messages = to_messages(item)
    assert len(messages) == 2 * len(item.history) + 1
    assert [m["role"] for m in messages[:-1]] == ["user", "assistant"] * len(item.history)
    assert messages[-1]["role"] == "user" and messages[-1]["content"].startswith(item.question)


def test_a_conversation_keeps_its_final_questions_split():
    for conversation in load_items("conversations")[::37]:
        _, topic, source_id = conversation.id.split(":", 2)
        source = {item.id: item for item in load_items(topic)}[source_id]
        assert conversation.answers == source.answers
        assert conversation in split_items(load_items("conversations"), conversation.split)
        assert source in split_items(load_items(topic), conversation.split)


def test_mixture_holds_every_topic_with_its_own_splits():
    mixture = load_items("mixture")
    assert {item.subject for item in mixture} == {*QA_TOPICS, "countries", "open-ended", "conversations"}
    assert len({item.id for item in mixture}) == len(mixture)
    assert all(item.id.startswith(f"{item.subject}:") for item in mixture)
    mixed_test = {item.id for item in split_items(mixture, "test")}
    for name in ("elements", "countries"):
        alone = {
            item.id if item.id.startswith(f"{name}:") else f"{name}:{item.id}"
            for item in split_items(load_items(name), "test")
        }
        assert alone == {item_id for item_id in mixed_test if item_id.startswith(f"{name}:")}


def test_pinned_splits_override_the_hash():
    pinned = Item(id="x", question="q?", answers=("a",), group="g", split="test")
    free = [Item(id=f"y{i}", question="q?", answers=("a",), group=f"g{i}") for i in range(20)]
    assert pinned in split_items([pinned, *free], "test")
    assert all(pinned not in split_items([pinned, *free], part) for part in ("train", "val", "calib"))


def test_a_possessive_names_its_answer():
    city = {item.id: item for item in load_items("world-cities")}["world-cities:country:wuzhou"]
    assert is_correct(city, "Wuzhou is a city in China's Guangxi region.")
    assert is_correct(city, "It lies in China\u2019s south.")
    assert not is_correct(city, "Wuzhou is a city in Chinasia.")
