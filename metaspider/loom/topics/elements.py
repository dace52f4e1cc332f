"""`elements`: the periodic table, from the `periodictable` package (2.1.0, public domain).

Four questions per element, all grouped by the element so they share a split:
- "What is the chemical symbol of {name}?" -> the symbol ("Fe");
- "Which chemical element has the symbol {symbol}?" -> the name and its British/American spellings;
- "What is the atomic number of {name}?" -> the number in digits;
- "Which chemical element has the atomic number {n}?" -> the name.
Answers are matched as whole words after folding case, accents and punctuation (`is_correct_open`).
Symbols that read as English words once case is folded ("I", "In", "As", "He", "No", ...) are never
accepted answers, so their symbol question is left out."""

from __future__ import annotations

from metaspider.loom.datasets import Item
from metaspider.loom.scoring import normalise
from metaspider.loom.topics.common import ENGLISH_WORDS, require, unique

NAME = "elements"
PACKAGE = "periodictable==2.1.0"
_SPELLINGS = {
    "aluminum": ("aluminium",),
    "cesium": ("caesium",),
    "sulfur": ("sulphur",),
}


def build() -> list[Item]:
    """Questions on the 118 elements' symbols and atomic numbers."""
    periodictable = require("periodictable", PACKAGE)
    items: list[Item] = []
    for element in periodictable.elements:
        if element.number < 1:  # the package's free neutron
            continue
        name = element.name
        names = unique((name.capitalize(), *_SPELLINGS.get(name, ())))

        def item(template: str, question: str, answers: tuple[str, ...], name: str = name) -> Item:
            return Item(id=f"{NAME}:{template}:{name}", question=question, answers=answers, subject=NAME, group=name)

        if normalise(element.symbol) not in ENGLISH_WORDS:
            items.append(item("symbol", f"What is the chemical symbol of {name}?", (element.symbol,)))
        items.append(item("name-of-symbol", f"Which chemical element has the symbol {element.symbol}?", names))
        items.append(item("number", f"What is the atomic number of {name}?", (str(element.number),)))
        items.append(item("name-of-number", f"Which chemical element has the atomic number {element.number}?", names))
    return items
