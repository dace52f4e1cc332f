"""`tool_hints:` for tiny models: which built-in tool a question needs, and its arguments, read from the question.

A 135M model asked to pick a tool freely calls the calculator for everything, and copying "1234 * 5678"
into a tool call it drops or changes digits. With `tool_hints: true` in the spec, a built-in tool is
offered only when the question shows it is needed (arithmetic for the calculator, a passage match for the
knowledge base, a URL for http_get), the calculator's expression is the question's own, and the knowledge
base's query is the question unless the model's query is made of the question's words. Tools imported
from a package are always offered. Off (the default), every tool is offered at every step and the model's
choice and arguments are used as written: that is what a model able to call tools should get.

Reading arithmetic from text: numbers may have thousands separators ("1,234") and exponents ("1e3");
"x" and "×" between numbers multiply, "^" is a power; phone numbers ("555-1234", "555-123-4567",
"(555) 123-4567") and dates ("12/25/2024", "2024-12-25", "25.12.1990") are not arithmetic (so "100-2000"
written without spaces reads as a phone number: write "100 - 2000")."""

from __future__ import annotations

import re
from typing import Any

_NUMBER = r"(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
_OPERATOR = r"(?:\*\*|[-+*/%^×x])"
_ARITHMETIC = re.compile(rf"[-+(]*{_NUMBER}[\s)]*(?:{_OPERATOR}[\s(]*[-+]?{_NUMBER}[\s)]*)+")
_PHONE = re.compile(r"(?:\(\d{3}\)\s*|\b\d{3}[-.])?\b\d{3}-\d{4}\b")
_DATE = re.compile(r"\b(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|\d{4}[/.-]\d{1,2}[/.-]\d{1,2})\b")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3})")
_TIMES = re.compile(r"\s*[x×]\s*")
URL = re.compile(r"https?://\S+")


def arithmetic_in(question: str) -> str | None:
    """The arithmetic expression written in a question, in the calculator's syntax ("What is 1,234 x 5?" →
    "1234 * 5"); None when there is none (phone numbers and dates are not arithmetic)."""
    masked = _DATE.sub(" ", _PHONE.sub(" ", question))
    match = _ARITHMETIC.search(masked)
    if match is None:
        return None
    expression = match.group(0).strip()
    while expression.endswith(")") and expression.count(")") > expression.count("("):
        expression = expression[:-1].rstrip()
    while expression.startswith("(") and expression.count("(") > expression.count(")"):
        expression = expression[1:].lstrip()
    expression = _THOUSANDS.sub("", expression).replace("^", "**")
    return _TIMES.sub(" * ", expression)


def expression_from_question(args: dict[str, Any], question: str) -> dict[str, Any]:
    """The question's own expression: a 135M model copying "1234 * 5678" drops or changes digits."""
    expression = arithmetic_in(question)
    return {**args, "expression": expression} if expression else args


def query_from_question(args: dict[str, Any], question: str) -> dict[str, Any]:
    """The model's query if it is made of the question's words ("Lumen Dial"), else the question: a
    135M model's own queries are often garbled ("The CEO of Orrě") or off the topic."""
    query = str(args.get("query", "")).strip()
    if query and set(_words(query)) <= set(_words(question)):
        return {**args, "query": query}
    return {**args, "query": question}


def has_url(question: str) -> bool:
    """Whether the question names a web address (http_get's hint)."""
    return bool(URL.search(question))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())
