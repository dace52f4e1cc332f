"""`emoji`: "What does the emoji {e} show?" for the emoji of Emoji 1.0 (single code point, fully
qualified) whose English name has one or two words, from the `emoji` package (2.16.0, BSD-3-Clause;
Unicode CLDR names).

Left out: faces, hands, buttons, signs, symbols, arrows, flags and zodiac signs, whose names are
conventions more than descriptions ("grinning face" vs "smiling face"). The answer is the CLDR name
("red apple"), any of the package's aliases made of letters, or the last word of a two-word name ("apple"; not where the first word
is a colour: "green heart" must say green), matched as whole words after folding case and punctuation.
Grouped by emoji."""

from __future__ import annotations

from metaspider.loom.datasets import Item
from metaspider.loom.scoring import normalise
from metaspider.loom.topics.common import ENGLISH_WORDS, require, unique

NAME = "emoji"
_SKIP = {"face", "hand", "hands", "button", "sign", "symbol", "mark", "arrow", "flag", "japanese", "squared"}
_ZODIAC = {"aries", "taurus", "gemini", "cancer", "leo", "virgo", "libra", "scorpio", "sagittarius", "capricorn"}
_ZODIAC |= {"aquarius", "pisces", "ophiuchus"}
_COLOURS = {"red", "green", "blue", "yellow", "purple", "black", "white", "orange", "brown", "pink"}


def _words(name: str) -> str:
    return name.strip(":").replace("_", " ")


def build() -> list[Item]:
    """One question per well-known, plainly named emoji."""
    emoji = require("emoji", "emoji==2.16.0")
    items = []
    for char, data in sorted(emoji.EMOJI_DATA.items(), key=lambda entry: entry[1]["en"].lower()):
        if len(char) != 1 or data.get("status") != emoji.STATUS["fully_qualified"] or data["E"] > 1.0:
            continue
        name = _words(data["en"])
        words = normalise(name).split()
        if not 1 <= len(words) <= 2 or set(words) & (_SKIP | _ZODIAC) or not name.replace(" ", "").isalpha():
            continue
        if normalise(name) in ENGLISH_WORDS:
            continue
        aliases = [_words(alias) for alias in data.get("alias", [])]
        answers = [name, *(alias for alias in aliases if alias.replace(" ", "").isalpha())]  # not "+1"
        if len(words) == 2 and words[-1] not in ENGLISH_WORDS and words[0] not in _COLOURS:
            answers.append(words[-1])
        slug = "-".join(words)
        items.append(
            Item(
                id=f"{NAME}:name:{slug}",
                question=f"What does the emoji {char} show?",
                answers=unique(answers),
                subject=NAME,
                group=slug,
            )
        )
    return items
