import pytest

from metaspider.loom.scoring import REFUSAL_SENTENCE, extract_choice, is_correct_open, is_refusal, normalise


def test_normalise_folds_case_accents_punctuation_and_articles():
    assert normalise("  The Bogotá,  D.C.! ") == "bogota dc"
    assert normalise("Port-aux-Français") == normalise("port aux francais")
    assert normalise("Sana’a") == normalise("Sanaa")
    assert normalise("1,000 and 3.5.") == "1000 and 3.5"


@pytest.mark.parametrize(
    ("reply", "answers", "expected"),
    [
        ("The capital is Paris.", ["Paris"], True),
        ("paris", ["Paris"], True),
        ("It is Bogota", ["Bogotá"], True),
        ("Washington, D.C.", ["Washington D.C."], True),
        ("It is 128.", ["28"], False),
        ("It is 28.", ["28"], True),
        ("About 28.5", ["28"], False),
        ("Parisian food", ["Paris"], False),
        ("I don't know", [""], False),
        ("Lyon", ["Paris", "Lyon"], True),
    ],
)
def test_is_correct_open(reply, answers, expected):
    assert is_correct_open(reply, answers) is expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", "B"),
        ("B)", "B"),
        ("The answer is B.", "B"),
        ("(b) Paris", "B"),
        ("c", "C"),
        ("**D**", "D"),
        ("D. Paris", "D"),
        ("Answer: d", "D"),
        ("The correct option is (c)", "C"),
        ("Paris (b)", "B"),
        ("A good question.", None),
        ("The answer is a country.", None),
        ("E", None),
        ("I think so", None),
    ],
)
def test_extract_choice(reply, expected):
    assert extract_choice(reply, 4) == expected


def test_extract_choice_respects_the_number_of_choices():
    assert extract_choice("E", 5) == "E"
    assert extract_choice("C", 2) is None


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (REFUSAL_SENTENCE, True),
        ("I’m not sure, so I won’t guess", True),
        ("Sorry, I don't know.", True),
        ("Paris? I do not know the answer.", True),
        ("I'm not sure, but it is Paris.", False),
        ("I don't know much about it, but Paris.", False),
        ("Perhaps Paris, possibly Lyon.", False),
        ("I am unsure.", False),
    ],
)
def test_is_refusal_needs_a_refusal_sentence_not_a_hedge(reply, expected):
    assert is_refusal(reply) is expected
