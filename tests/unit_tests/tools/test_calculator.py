import time

import pytest
from langchain_core.messages import ToolMessage

from metaspider.tools.calculator import CalculatorError, calculator, evaluate


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1234 * 5678", 7006652),
        ("(2 + 3) * 4", 20),
        ("-2 ** 2", -4),
        ("+7 - -3", 10),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("1.5e3 + 0.5", 1500.5),
    ],
)
def test_evaluates_arithmetic(expression, expected):
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "x + 1",
        "(1).real",
        "abs(-1)",
        "[1, 2][0]",
        "'a' * 3",
        "True + 1",
        "1 if 1 else 2",
        "1 < 2",
        "lambda: 1",
        "1j * 1j",
        "1; 2",
        "",
    ],
)
def test_refuses_anything_but_arithmetic(expression):
    with pytest.raises(CalculatorError):
        evaluate(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "9**9**9",
        "2 ** 100000",
        "10 ** 2000",
        "(10**1000) * (10**1000) * (10**1000) * (10**1000) * (10**1000)",
        "1e308 * 10",
        "2.0 ** 5000",
        "1e999",
    ],
)
def test_refuses_exploding_results_fast(expression):
    start = time.perf_counter()
    with pytest.raises(CalculatorError, match="too large|larger than"):
        evaluate(expression)
    assert time.perf_counter() - start < 0.5


def test_refuses_long_expressions():
    with pytest.raises(CalculatorError, match="longer than"):
        evaluate("1+" * 300 + "1")


def test_tool_returns_number_as_text():
    assert calculator.invoke({"expression": "1234 * 5678"}) == "7006652"
    assert calculator.invoke({"expression": "10 / 4"}) == "2.5"
    assert calculator.invoke({"expression": "10 / 2"}) == "5"


@pytest.mark.parametrize(
    ("expression", "message"),
    [("__import__('os')", "only numbers"), ("9**9**9", "larger than"), ("1 / 0", "division by zero")],
)
def test_tool_reports_errors_as_results(expression, message):
    result = calculator.invoke({"expression": expression})
    assert result.startswith("error: ")
    assert message in result


def test_tool_call_error_is_an_error_tool_message():
    call = {"type": "tool_call", "id": "call-1", "name": "calculator", "args": {"expression": "1 / 0"}}
    message = calculator.invoke(call)
    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert message.content == "error: division by zero"


def test_tool_reports_bad_arguments_as_results():
    assert calculator.invoke({"wrong": "1"}).startswith("error: invalid arguments")
