"""Is a reply correct, which letter did it pick, and did it refuse.

Training targets and evaluation use these same functions, so a reply counted as a refusal in the
report is exactly what the model was taught to say."""

from __future__ import annotations

import re
import string
import unicodedata

REFUSAL_SENTENCE = "I'm not sure, so I won't guess."

# Whole refusal sentences, not hedge words: "I'm not sure, but it is Paris" answers, it does not refuse.
_REFUSAL_PATTERNS = (
    REFUSAL_SENTENCE,
    "I'm not sure, so I will not guess.",
    "I am not sure, so I won't guess.",
    "I am not sure, so I will not guess.",
    "I don't know.",
    "I do not know.",
    "I don't know the answer.",
    "I do not know the answer.",
)

_JOINERS = re.compile(r"[-\u2010-\u2015/_]")
# Any punctuation except a decimal point between digits, which must survive so that "3.5" != "35".
_PUNCTUATION = re.compile(r"[^\w\s.]|(?<!\d)\.|\.(?!\d)")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_SENTENCE_END = re.compile(r"[.!?\n]+")


def normalise(text: str) -> str:
    """Fold accents, case, punctuation and articles so that spellings of one answer compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    folded = _PUNCTUATION.sub("", _JOINERS.sub(" ", folded))
    return " ".join(_ARTICLES.sub(" ", folded).split())


def _contains_phrase(haystack: str, phrase: str) -> bool:
    """Whole-word match on normalised text: "28" is not in "128" nor in "28.5"."""
    return re.search(rf"(?<![\w.]){re.escape(phrase)}(?!\w|\.\d)", haystack) is not None


_POSSESSIVE = re.compile(r"(?<=\w)['\u2019]s\b")


def is_correct_open(text: str, answers: tuple[str, ...] | list[str]) -> bool:
    """True when any accepted answer appears as whole words in the reply, also as a possessive
    ("China's Fujian province" names China)."""
    replies = {normalise(text), normalise(_POSSESSIVE.sub("", text))}
    return any(phrase and _contains_phrase(reply, phrase) for phrase in map(normalise, answers) for reply in replies)


def extract_choice(text: str, n_choices: int) -> str | None:
    """The answer letter of a multiple-choice reply, or None when the reply names none.

    A lowercase letter counts only in brackets ("(b)", "b)") or alone, so that the article "a" in a
    sentence is never read as choice A."""
    letters = string.ascii_uppercase[:n_choices]
    either = letters + letters.lower()
    reply = text.replace("*", "").strip()
    bracketed = rf"\(([{either}])\)|([{either}])\)"
    patterns = (
        rf"^\(?([{either}])\)?[.:]?$",  # the whole reply is a letter
        rf"^(?:{bracketed}|([{letters}])(?:[.:]|\s+[-\u2013]|\s*\n))",  # "B. Paris", "(b) Paris", "B - Paris"
        rf"\b(?i:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*(?:{bracketed}|([{letters}])\b|([{either}])\W*$)",
    )
    for pattern in patterns:
        if match := re.search(pattern, reply):
            return next(group for group in match.groups() if group).upper()
    named = {letter.upper() for letter in re.findall(rf"\(([{either}])\)", reply)}
    return named.pop() if len(named) == 1 else None  # "Paris (b)": one bracketed letter anywhere


_NORMALISED_REFUSALS = tuple(normalise(pattern) for pattern in _REFUSAL_PATTERNS)


def is_refusal(text: str) -> bool:
    """True when a sentence of the reply ends with one of the fixed refusal sentences.

    "Sorry, I don't know." refuses; "I don't know much about it, but Paris." does not."""
    for sentence in _SENTENCE_END.split(text):
        said = normalise(sentence)
        if any(said == refusal or said.endswith(" " + refusal) for refusal in _NORMALISED_REFUSALS):
            return True
    return False
