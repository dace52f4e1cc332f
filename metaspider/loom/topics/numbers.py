"""`roman-numerals`, `number-words` and `arithmetic`: computed with the Python standard library, no data.

`roman-numerals` (1-120, every 25 up to 1000, and the years 1900-2030), grouped by number:
- "What is {n} in Roman numerals?" -> the numeral ("MCMXCIV"), left out where it is one letter or an
  English word ("I", "MIX");
- "What number is the Roman numeral {numeral}?" -> the number in digits or in words.

`number-words` (200 numbers drawn with a fixed seed: 0-100, hundreds, thousands, up to 9,999,999),
grouped by number:
- "How do you write {n} in words?" -> the English words, with or without "and" ("three hundred
  forty-seven", "three hundred and forty-seven"; hyphens fold to spaces);
- "Write "{words}" as a number in digits." -> the digits (a thousands separator folds away).

`arithmetic` (100 sums, differences, products and exact quotients each, drawn with a fixed seed; the
result never equals an operand, so restating the question is never counted as the answer), grouped by
the calculation: "What is {a} plus {b}?" -> the result in digits or in words.

Answers are matched as whole words after folding case and punctuation: "28" does not match "128"."""

from __future__ import annotations

import random

from metaspider.loom.datasets import Item
from metaspider.loom.scoring import normalise
from metaspider.loom.topics.common import ENGLISH_WORDS, unique

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ROMAN = (
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
)


def roman(n: int) -> str:
    """The Roman numeral of 1 <= n <= 3999."""
    if not 1 <= n <= 3999:
        raise ValueError(f"no Roman numeral for {n}")
    out = []
    for value, letters in _ROMAN:
        count, n = divmod(n, value)
        out.append(letters * count)
    return "".join(out)


def _below_thousand(n: int, conjunction: bool) -> str:
    hundreds, rest = divmod(n, 100)
    parts = []
    if hundreds:
        parts.append(f"{_ONES[hundreds]} hundred")
    if rest:
        if hundreds and conjunction:
            parts.append("and")
        parts.append(_ONES[rest] if rest < 20 else _TENS[rest // 10] + (f"-{_ONES[rest % 10]}" if rest % 10 else ""))
    return " ".join(parts)


def number_words(n: int, conjunction: bool = False) -> str:
    """English words of 0 <= n < 10**9; `conjunction` adds the British "and" after hundreds."""
    if not 0 <= n < 10**9:
        raise ValueError(f"number_words covers 0 to 999,999,999, not {n}")
    if n == 0:
        return "zero"
    parts = []
    for scale, word in ((10**6, "million"), (10**3, "thousand"), (1, "")):
        chunk, n = divmod(n, scale)
        if chunk:
            parts.append((_below_thousand(chunk, conjunction) + f" {word}").strip())
    if conjunction and len(parts) > 1 and 0 < n % 1000 < 100 and "hundred" not in parts[-1]:
        parts.insert(-1, "and")  # "one thousand and five"
    return " ".join(parts)


def number_answers(n: int) -> tuple[str, ...]:
    """A number in digits and in words, with and without "and"."""
    return unique((str(n), number_words(n), number_words(n, conjunction=True)))


def build_roman_numerals() -> list[Item]:
    """Roman numerals both ways."""
    numbers = sorted(set(range(1, 121)) | set(range(125, 1001, 25)) | set(range(1900, 2031)))
    items = []
    for n in numbers:
        numeral = roman(n)
        if len(numeral) > 1 and normalise(numeral) not in ENGLISH_WORDS:
            items.append(
                Item(
                    id=f"roman-numerals:to-roman:{n}",
                    question=f"What is {n} in Roman numerals?",
                    answers=(numeral,),
                    subject="roman-numerals",
                    group=str(n),
                )
            )
        question = f"What number is the Roman numeral {numeral}?"
        items.append(
            Item(
                id=f"roman-numerals:from-roman:{n}",
                question=question,
                answers=number_answers(n),
                subject="roman-numerals",
                group=str(n),
            )
        )
    return items


def build_number_words() -> list[Item]:
    """Numbers to English words and back."""
    rng = random.Random("number-words")
    numbers = set(range(0, 21, 3)) | {rng.randrange(21, 100) for _ in range(40)}
    for low, high, count in ((100, 1000, 60), (1000, 10_000, 50), (10_000, 10_000_000, 60)):
        while len([n for n in numbers if low <= n < high]) < count:
            numbers.add(rng.randrange(low, high))
    items = []
    for n in sorted(numbers):
        words = number_words(n)
        group = str(n)
        answers = unique((words, number_words(n, conjunction=True)))
        items.append(
            Item(
                id=f"number-words:to-words:{n}",
                question=f"How do you write {n:,} in words?",
                answers=answers,
                subject="number-words",
                group=group,
            )
        )
        items.append(
            Item(
                id=f"number-words:to-digits:{n}",
                question=f'Write "{words}" as a number in digits.',
                answers=(str(n),),
                subject="number-words",
                group=group,
            )
        )
    return items


def build_arithmetic() -> list[Item]:
    """Sums, differences, products and exact quotients of small numbers."""
    rng = random.Random("arithmetic")
    draws = {
        "plus": lambda: (rng.randrange(2, 500), rng.randrange(2, 500)),
        "minus": lambda: (rng.randrange(50, 1000), rng.randrange(2, 50)),
        "times": lambda: (rng.randrange(2, 30), rng.randrange(2, 30)),
        "divided-by": lambda: (rng.randrange(2, 30) * (b := rng.randrange(2, 13)), b),
    }
    compute = {"plus": int.__add__, "minus": int.__sub__, "times": int.__mul__, "divided-by": int.__floordiv__}
    items = []
    for operation, draw in draws.items():
        seen: set[tuple[int, int]] = set()
        while len(seen) < 100:
            a, b = draw()
            result = compute[operation](a, b)
            if (a, b) in seen or result in (a, b):
                continue
            seen.add((a, b))
            entity = f"{a}-{operation}-{b}"
            question = f"What is {a} {operation.replace('-', ' ')} {b}?"
            items.append(
                Item(
                    id=f"arithmetic:{entity}",
                    question=question,
                    answers=number_answers(result),
                    subject="arithmetic",
                    group=entity,
                )
            )
    return items
