"""How an agent spec names its tools: one pydantic model per tool, told apart by `name`.

Paths in a spec are relative to the spec file: `load_spec` passes the spec's folder in the validation
context as `spec_dir`, and `SpecPath` resolves against it.
"""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
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


ToolSpec = Annotated[CalculatorSpec | KnowledgeBaseSpec | HttpGetSpec, Field(discriminator="name")]
