"""Errors in OpenAI's shape, and the mapping of request validation errors to the parameter at fault.

Every failure a client can cause or act on leaves the server as `{"error": {message, type, param,
code}}` with the status OpenAI would use, so SDKs raise their usual exception classes
(`BadRequestError`, `AuthenticationError`, `NotFoundError`, `RateLimitError`, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.responses import JSONResponse

from metaspider.serve.schemas import ErrorBody, ErrorDetail


class ApiError(Exception):
    """An error response: status, OpenAI error fields and extra headers (e.g. `Retry-After`)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.detail = ErrorDetail(message=message, type=type, param=param, code=code)
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return ErrorBody(error=self.detail).model_dump()

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(param: str | None, message: str, code: str | None = None) -> ApiError:
    """400 naming the parameter."""
    return ApiError(400, message, param=param, code=code)


def param_path(loc: Sequence[str | int]) -> str | None:
    """pydantic's error location → OpenAI's `param`: ("body", "messages", 0, "content") → "messages[0].content".

    Union and tagged-union members pydantic inserts into the location (e.g. "user", "str") are dropped."""
    parts = [p for p in loc if p != "body"]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _is_union_tag(part):
            continue
        else:
            path += f".{part}" if path else part
    return path or None


_UNION_TAGS = {"str", "list[...]", "list", "dict", "int", "float", "bool", "none", "literal", "function-after"}


def _is_union_tag(part: str) -> bool:
    return (
        part in _UNION_TAGS
        or part in {"system", "developer", "user", "assistant", "tool"}
        or part.startswith(("literal[", "list[", "function-", "tagged-union["))
        or part[:1].isupper()
    )


def from_validation(errors: Sequence[Mapping[str, Any]]) -> ApiError:
    """The first validation error as a 400 that names its parameter and says what is accepted."""
    if not errors:
        return bad_request(None, "invalid request body")
    error = _most_specific(errors)
    kind = error.get("type", "")
    loc = list(error.get("loc", ()))
    cause = (error.get("ctx") or {}).get("error")
    param = getattr(cause, "param", None) or param_path(loc)
    if kind == "extra_forbidden":
        return bad_request(param, f"Unrecognized request argument supplied: {param}", "unknown_parameter")
    if kind in ("json_invalid", "model_attributes_type") and param is None:
        return bad_request(None, f"The request body is not a valid JSON object: {error.get('msg')}", "invalid_json")
    message = str(cause) if cause is not None else error.get("msg", "invalid value")
    if param and not message.startswith(f"{param}:"):
        message = f"{param}: {message}"
    return bad_request(param, message, "invalid_value" if kind != "missing" else "missing_required_parameter")


def _most_specific(errors: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Prefer a 'missing'/'extra' error over the union alternatives pydantic reports beside it, then the
    deepest location: it names the exact field."""
    rank = {"extra_forbidden": 0, "missing": 1}
    return min(errors, key=lambda e: (rank.get(e.get("type", ""), 2), -len(e.get("loc", ()))))
