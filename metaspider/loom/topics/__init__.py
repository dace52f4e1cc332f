"""Topic data sets for Meta-Loom: open questions built at load time from data shipped in PyPI packages
or computed with the standard library, open-ended requests, conversations, and their mixture.

Every topic's items have `subject` = the topic's name and ids prefixed by it, and are grouped by the
entity asked about, so that `split_items` puts every question on one entity in one split. The cards
(source package, version, license, templates, matching) are the builders' module docstrings and
docs/topics.md."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from metaspider.errors import MetaspiderError
from metaspider.loom.topics.registry import CONVERSATIONS, MIXTURE, OPEN_ENDED, QA_TOPICS, TOPIC_NAMES

__all__ = ["CONVERSATIONS", "MIXTURE", "OPEN_ENDED", "QA_TOPICS", "TOPIC_NAMES", "load_topic"]


def _builders() -> dict[str, Callable]:
    """Topic name -> builder; imported on first use, so that naming a topic loads no package."""
    from metaspider.loom.topics import codes, dates, elements, emoji_names, geography, numbers, provinces, us_states

    return {
        "elements": elements.build,
        "us-states": us_states.build,
        "world-cities": geography.build_world_cities,
        "airports": geography.build_airports,
        "calling-codes": codes.build_calling_codes,
        "country-codes": codes.build_country_codes,
        "currencies": codes.build_currencies,
        "languages": codes.build_languages,
        "roman-numerals": numbers.build_roman_numerals,
        "number-words": numbers.build_number_words,
        "arithmetic": numbers.build_arithmetic,
        "calendar": dates.build,
        "provinces": provinces.build,
        "emoji": emoji_names.build,
    }


@cache
def _load(name: str) -> tuple:
    if name == OPEN_ENDED:
        from metaspider.loom.topics.open_ended import build

        return tuple(build())
    if name == CONVERSATIONS:
        from metaspider.loom.topics.conversations import build

        return tuple(build())
    if name == MIXTURE:
        from metaspider.loom.topics.mixture import build

        return tuple(build())
    builders = _builders()
    if name not in builders:
        raise MetaspiderError(f"unknown topic {name!r}: expected one of {', '.join(TOPIC_NAMES)}")
    return tuple(item for item in builders[name]() if not answered_by_its_question(item))


def answered_by_its_question(item) -> bool:
    """Whether the question itself contains an accepted answer ("Which country uses the Saint Helena
    Pound?" -> Saint Helena): a reply that merely restates it would count as right, so such items are
    left out of every topic."""
    from metaspider.loom.datasets import is_correct

    return is_correct(item, item.question)


def load_topic(name: str) -> list:
    """The items of one topic data set (built once per process, then served from memory)."""
    return list(_load(name))
