"""The names of the topic data sets, importable without loading any of their source packages."""

from __future__ import annotations

QA_TOPICS = (
    "elements",
    "us-states",
    "world-cities",
    "airports",
    "calling-codes",
    "country-codes",
    "currencies",
    "languages",
    "roman-numerals",
    "number-words",
    "arithmetic",
    "calendar",
    "provinces",
    "emoji",
)
"""Open-question topics, each built from one PyPI package or the standard library."""
OPEN_ENDED = "open-ended"
CONVERSATIONS = "conversations"
MIXTURE = "mixture"
TOPIC_NAMES = (*QA_TOPICS, OPEN_ENDED, CONVERSATIONS, MIXTURE)
"""Every data set name `load_items` resolves through `metaspider.loom.topics`."""
