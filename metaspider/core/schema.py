"""The base of every record metaspider reads from or writes to a file: a frozen pydantic model.

Validation and (de)serialisation come from pydantic; this base adds what the files and the CLI need:
positional construction in field order as on a dataclass (`Modifier("doubter", 2.0)`), `replace` as on dataclasses,
and errors as `MetaspiderError` messages that name the record and the field, never a pydantic traceback."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from metaspider.errors import MetaspiderError

S = TypeVar("S", bound="Schema")


class Schema(BaseModel):
    """A frozen record with strict fields: unknown fields are refused, so a typo in a file is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    _title: ClassVar[str] = "record"
    """How error messages name this record ("wrapper config", "modifier", ...)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Fields by keyword, or positionally in their declared order as on a dataclass."""
        names = tuple(type(self).model_fields)
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional arguments")
        kwargs.update(zip(names, args, strict=False))
        try:
            super().__init__(**kwargs)
        except ValidationError as exc:
            raise MetaspiderError(describe(exc, self._title)) from None

    @classmethod
    def parse(cls: type[S], data: Any) -> S:
        """Validate loaded JSON/YAML data; errors are `MetaspiderError`s naming the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise MetaspiderError(describe(exc, cls._title)) from None

    def replace(self: S, **changes: Any) -> S:
        """A copy with `changes`, validated like a new record."""
        return type(self)(**(dict(self) | changes))


def describe(error: ValidationError, title: str) -> str:
    """One line per problem: `title: field.path: message (got value)`."""
    lines = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(record)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            lines.append(f"{title}: missing field {where!r}")
        elif item["type"] == "extra_forbidden":
            lines.append(f"{title}: unknown field {where!r}")
        else:
            lines.append(f"{title}: {where}: {message} (got {item.get('input')!r})")
    return "; ".join(lines)
