"""The `calculator` tool: arithmetic on numbers, evaluated by walking the AST, never by `eval`.

A small model asked "what is 1234 * 5678" guesses; this tool gives it the exact number. Because the
expression comes from a model (and through it from a user), the evaluator accepts only number literals
and arithmetic operators, and refuses results that would take seconds or gigabytes to compute.
"""

import ast
import math
import operator
from collections.abc import Callable

from langchain_core.tools import StructuredTool, ToolException

from metaspider.tools.errors import error_safe_tool

MAX_EXPRESSION_CHARS = 500
MAX_RESULT_BITS = 4096  # about 1233 decimal digits: far beyond any useful answer, instantaneous to compute
MAX_EXPONENT = 10_000

Number = int | float

_BINARY_OPERATORS: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY_OPERATORS: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


class CalculatorError(ValueError):
    """The expression is not plain arithmetic, or its result would be unreasonably large."""


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression such as `(2 + 3) * 4 ** 2 / 7`."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise CalculatorError(f"not an arithmetic expression: {expression!r}") from exc
    try:
        return _evaluate_node(tree.body)
    except ZeroDivisionError as exc:
        raise CalculatorError("division by zero") from exc
    except OverflowError as exc:
        raise CalculatorError("result too large") from exc


def format_number(value: Number) -> str:
    """Whole floats print without `.0` so the model copies `5`, not `5.0`, into its answer."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _evaluate_node(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        return _checked(_literal(node.value))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPERATORS:
        return _UNARY_OPERATORS[type(node.op)](_evaluate_node(node.operand))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return _checked(_power(_evaluate_node(node.left), _evaluate_node(node.right)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPERATORS:
        left, right = _evaluate_node(node.left), _evaluate_node(node.right)
        return _checked(_BINARY_OPERATORS[type(node.op)](left, right))
    raise CalculatorError(f"only numbers and + - * / // % ** are allowed, not {ast.unparse(node)!r}")


def _literal(value: object) -> Number:
    # bool is a subclass of int: `True` must be refused like any other name.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise CalculatorError(f"only numbers are allowed, not {value!r}")


def _power(base: Number, exponent: Number) -> Number:
    """Refuse before computing: `9 ** 9 ** 9` would otherwise run for minutes."""
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent {format_number(exponent)} is larger than {MAX_EXPONENT}")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        if (abs(base).bit_length() - 1) * exponent > MAX_RESULT_BITS:
            raise CalculatorError("result too large")
    result = base**exponent
    if isinstance(result, complex):
        raise CalculatorError("result is not a real number")
    return result


def _checked(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_RESULT_BITS:
        raise CalculatorError("result too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result too large")
    return value


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. `1234 * 5678` or `(17 + 4) / 3`.

    Supports numbers, parentheses and + - * / // % **. No variables or functions.
    """
    try:
        return format_number(evaluate(expression))
    except CalculatorError as exc:
        raise ToolException(str(exc)) from exc


calculator: StructuredTool = error_safe_tool(calculate, name="calculator")
