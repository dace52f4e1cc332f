"""`calendar`: month lengths, month order and weekdays, computed with the standard library's `calendar`
and `datetime` (Gregorian calendar), no data.

- "How many days are there in {month} {year}?" (every month of 2000-2024) -> the count in digits or
  words; grouped by month, so every question on one month (and its February leap years) shares a split;
- "What is the {ordinal} month of the year?" and "Which month comes after {month}?" -> the month's name;
  grouped by the month asked about;
- "What day of the week was {date}?" (200 dates of 1950-2025 drawn with a fixed seed) -> the weekday;
  grouped by date.
Answers are matched as whole words after folding case and punctuation."""

from __future__ import annotations

import calendar
import datetime
import random

from metaspider.loom.datasets import Item
from metaspider.loom.topics.numbers import number_answers

NAME = "calendar"
YEARS = range(2000, 2025)
N_DATES = 200
_ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
]


def _item(template: str, entity: str, question: str, answers: tuple[str, ...], group: str) -> Item:
    return Item(id=f"{NAME}:{template}:{entity}", question=question, answers=answers, subject=NAME, group=group)


def build() -> list[Item]:
    """Month lengths, month order and weekdays of dates."""
    months = list(calendar.month_name)[1:]
    items = []
    for number, month in enumerate(months, start=1):
        group = month.lower()
        for year in YEARS:
            days = calendar.monthrange(year, number)[1]
            question = f"How many days are there in {month} {year}?"
            items.append(_item("days-in-month", f"{year}-{number:02d}", question, number_answers(days), group))
        question = f"What is the {_ORDINALS[number - 1]} month of the year?"
        items.append(_item("month-by-position", group, question, (month,), group))
        question = f"Which month comes after {month}?"
        items.append(_item("next-month", group, question, (months[number % 12],), group))
    rng = random.Random(NAME)
    start, span = datetime.date(1950, 1, 1), (datetime.date(2025, 12, 31) - datetime.date(1950, 1, 1)).days
    dates = sorted({start + datetime.timedelta(days=rng.randrange(span + 1)) for _ in range(N_DATES * 2)})
    for date in sorted(rng.sample(dates, N_DATES)):
        question = f"What day of the week was {date.strftime('%B')} {date.day}, {date.year}?"
        weekday = calendar.day_name[date.weekday()]
        items.append(_item("weekday", date.isoformat(), question, (weekday,), date.isoformat()))
    return items
