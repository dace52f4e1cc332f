"""How an agent spec names its tools: one pydantic model per tool, told apart by `name`.

Paths in a spec are relative to the spec file: `load_spec` passes the spec's folder in the validation
context as `spec_dir`, and `SpecPath` resolves against it.
"""

import importlib
from pathlib import Path
from typing import Annotated, Any, Literal

from langchain_core.tools import BaseTool
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


def resolve_against_spec_dir(path: Path, info: ValidationInfo) -> Path:
    """A relative path in a spec, taken relative to the spec file's folder rather than the working directory."""
    path = path.expanduser()
    spec_dir = (info.context or {}).get("spec_dir")
    if path.is_absolute() or spec_dir is None:
        return path
    return Path(spec_dir) / path


SpecPath = Annotated[Path, AfterValidator(resolve_against_spec_dir)]


class _ToolSpecBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalculatorSpec(_ToolSpecBase):
    """The calculator tool (no settings)."""

    name: Literal["calculator"]


class KnowledgeBaseSpec(_ToolSpecBase):
    """The knowledge-base tool: a folder of text files to search, and how many passages to return."""

    name: Literal["knowledge_base"]
    folder: SpecPath
    top_k: int = Field(3, ge=1)

    @field_validator("folder")
    @classmethod
    def _folder_exists(cls, folder: Path) -> Path:
        if not folder.is_dir():
            raise PydanticCustomError("folder_not_found", "folder not found: {folder}", {"folder": str(folder)})
        return folder


class HttpGetSpec(_ToolSpecBase):
    """The http_get tool: which hosts it may fetch (private addresses only on request), its timeout and size limit."""

    name: Literal["http_get"]
    allow_hosts: list[str] = Field(min_length=1)
    allow_private: bool = False
    timeout: float = Field(10, gt=0)
    max_bytes: int = Field(100_000, gt=0)


class ImportToolSpec(_ToolSpecBase):
    """Any LangChain tool, by import path: `- import: mypackage.tools:search` (the object must be a `BaseTool`,
    e.g. a function decorated with `@tool`). It is imported when the spec is validated, so a wrong path is an
    error naming the spec's line."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    import_path: str = Field(alias="import")

    @field_validator("import_path")
    @classmethod
    def _is_a_tool(cls, path: str) -> str:
        import_tool(path)
        return path

    @property
    def name(self) -> str:
        """The tool's own name (what the model calls it)."""
        return self.load().name

    def load(self) -> BaseTool:
        """The tool object."""
        return import_tool(self.import_path)


def import_tool(path: str) -> BaseTool:
    """The LangChain tool at `package.module:object`; a `PydanticCustomError` that says what is wrong otherwise."""
    module_name, colon, attribute = path.partition(":")
    if not colon or not module_name or not attribute:
        raise PydanticCustomError("import_path", "expected 'package.module:object', got '{path}'", {"path": path})
    try:
        value: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise PydanticCustomError(
            "import_failed",
            "cannot import {module}: {error}",
            {"module": module_name, "error": f"{type(exc).__name__}: {exc}"},
        ) from None
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise PydanticCustomError(
                "import_missing", "{module} has no attribute '{name}'", {"module": module_name, "name": attribute}
            )
        value = getattr(value, part)
    if not isinstance(value, BaseTool):
        raise PydanticCustomError(
            "not_a_tool",
            "{path} is a {kind}, not a LangChain tool (a BaseTool, e.g. a function decorated with @tool)",
            {"path": path, "kind": type(value).__name__},
        )
    return value


def _tool_kind(value: Any) -> str | None:
    """Which spec an entry is: "import" for `- import: ...`, else its built-in `name`."""
    if isinstance(value, dict):
        return "import" if "import" in value else value.get("name")
    return "import" if isinstance(value, ImportToolSpec) else getattr(value, "name", None)


ToolSpec = Annotated[
    Annotated[CalculatorSpec, Tag("calculator")]
    | Annotated[KnowledgeBaseSpec, Tag("knowledge_base")]
    | Annotated[HttpGetSpec, Tag("http_get")]
    | Annotated[ImportToolSpec, Tag("import")],
    Discriminator(_tool_kind),
]
"""A `tools:` entry: a built-in tool by `name`, or any LangChain tool by `import`."""
