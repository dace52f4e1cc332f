"""`provinces`: "In which country is the {kind} of {name}?" for the top-level subdivisions (states,
provinces, prefectures, regions, cantons, ...) of 22 countries, from `pycountry` (26.2.16,
LGPL-2.1-only; ISO 3166-2). US states are asked in `us-states` instead.

Names are the ISO 3166-2 names ("Ontario", "Jalisco", "Bayern" -> asked as the package writes them;
Chinese provinces without the "Sheng" suffix); a name with brackets or a comma is left out, and so is
one shared by a subdivision of another country at any level ("Punjab", "La Rioja", "Santa Cruz") or equal to a country's
name ("Niger"). The answer is any English name of the country (see `country_names`), matched as whole
words after folding case, accents and punctuation. Grouped by subdivision."""

from __future__ import annotations

from collections import defaultdict

from metaspider.loom.datasets import Item
from metaspider.loom.scoring import normalise
from metaspider.loom.topics.common import country_names, require

NAME = "provinces"
COUNTRIES = (
    "CA", "AU", "IN", "CN", "BR", "MX", "DE", "IT", "ES", "JP", "AR",
    "ZA", "NG", "CO", "PE", "VE", "MY", "CH", "AT", "TR", "TH", "VN",
)  # fmt: skip
_KINDS = {
    "land": "state",
    "autonomous community": "region",
    "autonomous region": "region",
    "union territory": "territory",
    "department": "department",
    "prefecture": "prefecture",
    "canton": "canton",
    "province": "province",
    "state": "state",
    "region": "region",
    "territory": "territory",
}


def _name(subdivision, country: str) -> str:
    name = subdivision.name
    return name.removesuffix(" Sheng") if country == "CN" else name


def build() -> list[Item]:
    """The country of each top-level subdivision whose name is unambiguous."""
    pycountry = require("pycountry", "pycountry==26.2.16")
    chosen = []
    countries_of = defaultdict(set)
    for subdivision in pycountry.subdivisions:  # every country's, at every level: "Santa Cruz" is Bolivian too
        countries_of[normalise(_name(subdivision, subdivision.country_code))].add(subdivision.country_code)
    for country in COUNTRIES:
        for subdivision in pycountry.subdivisions.get(country_code=country):
            kind = _KINDS.get(subdivision.type.lower())
            name = _name(subdivision, country)
            if subdivision.parent_code is None and kind and not any(mark in name for mark in "[](),"):
                chosen.append((country, subdivision.code, kind, name))
    country_keys = {normalise(name) for country in pycountry.countries for name in country_names(country.alpha_2)}
    items = []
    for country, code, kind, name in sorted(chosen, key=lambda row: row[1]):
        key = normalise(name)
        if len(countries_of[key]) > 1 or key in country_keys:
            continue
        items.append(
            Item(
                id=f"{NAME}:country:{code.lower()}",
                question=f"In which country is the {kind} of {name}?",
                answers=country_names(country),
                subject=NAME,
                group=code.lower(),
            )
        )
    return items
