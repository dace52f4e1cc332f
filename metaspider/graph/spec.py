"""The agent spec (`agents/*.yaml`): which model, wrapper, policy, tools and escalation an agent uses.

A spec is written by hand, so a mistake must point at its line: `load_spec` keeps the YAML node tree
next to the parsed data and maps each pydantic error location back to the line it came from.
"""

from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from metaspider.core.names import Backend, ModifierName
from metaspider.errors import MetaspiderError
from metaspider.tools.specs import SpecPath, ToolSpec

MemoryLocation = Annotated[
    Annotated[str, Field(pattern=r"^postgres(ql)?://")] | SpecPath, Field(union_mode="left_to_right")
]
"""A PostgreSQL URL stays as written; anything else is a SQLite file, relative to the spec."""
Probability = Annotated[float, Field(ge=0, le=1)]

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly and exactly."


class _SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Policy(_SpecModel):
    """How the uncertainty u routes a question.

    Answer when u < answer_below; use a tool when answer_below <= u < tool_below (if the agent has
    tools); escalate when u >= escalate_above (if escalation is configured); refuse otherwise.
    `max_risk` replaces `answer_below` with the wrapper's calibrated threshold for that risk
    (selective risk <= max_risk with probability >= 1 - delta).
    """

    answer_below: Probability | None = None
    tool_below: Probability | None = None
    escalate_above: Probability | None = None
    max_risk: Annotated[float, Field(gt=0, lt=1)] | None = None
    delta: Annotated[float, Field(gt=0, lt=1)] = 0.1

    @model_validator(mode="after")
    def _check_thresholds(self) -> "Policy":
        if (self.answer_below is None) == (self.max_risk is None):
            raise PydanticCustomError(
                "policy_answer", "give exactly one of answer_below (a threshold on u) or max_risk"
            )
        if "delta" in self.model_fields_set and self.max_risk is None:
            raise PydanticCustomError("policy_delta", "delta only applies together with max_risk")
        given = [
            (name, value)
            for name in ("answer_below", "tool_below", "escalate_above")
            if (value := getattr(self, name)) is not None
        ]
        for (low_name, low), (high_name, high) in pairwise(given):
            if low > high:
                raise PydanticCustomError(
                    "policy_order",
                    "{low_name} ({low}) must not be above {high_name} ({high})",
                    {"low_name": low_name, "low": low, "high_name": high_name, "high": high},
                )
        return self


class HumanEscalation(_SpecModel):
    """Escalate to a person: the agent pauses and waits for their reply."""

    kind: Literal["human"]


class ModelEscalation(_SpecModel):
    """Escalate to another (usually bigger) model, with its own wrapper, modifier and gain."""

    kind: Literal["model"]
    model: str
    backend: Backend = "llama_cpp"


Escalation = Annotated[HumanEscalation | ModelEscalation, Field(discriminator="kind")]


class AgentSpec(_SpecModel):
    """An agent spec (`agents/*.yaml`): the model and wrapper, the routing policy on u, the tools, the escalation,
    memory and prompt. Validated strictly, so a typo is an error that names its line."""

    model: str
    backend: Backend = "llama_cpp"
    wrapper: str | None = "default"
    modifier: ModifierName | None = None
    gain: float = 1.0
    policy: Policy
    tools: list[ToolSpec] = []
    escalation: Escalation | None = None
    memory: MemoryLocation | None = None  # SQLite file or postgresql:// URL keeping the conversation threads
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_steps: int = Field(6, ge=1)
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(256, ge=1)
    n_ctx: int = Field(2048, ge=256, le=131072)  # nodes.N_CTX
    """The model's context window in tokens: system prompt, kept history, tool results and the answer."""
    tool_result_tokens: int = Field(512, ge=16)
    """A tool result longer than this many tokens is cut, with a visible marker."""
    tool_hints: bool = False
    """For tiny models: offer a built-in tool only when the question shows it is needed, and read the
    calculator's expression and the knowledge base's query from the question (graph/tool_hints.py). Off: every
    tool is offered and the model's own tool choice and arguments are used."""

    @field_validator("tools")
    @classmethod
    def _tool_names_are_unique(cls, tools: list[ToolSpec]) -> list[ToolSpec]:
        names = [tool.name for tool in tools]
        if duplicates := sorted({name for name in names if names.count(name) > 1}):
            raise PydanticCustomError("duplicate_tool", "tool listed twice: {names}", {"names": ", ".join(duplicates)})
        return tools


def load_spec(path: Path | str) -> AgentSpec:
    """Read and validate an agent spec; paths inside it are relative to the spec file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MetaspiderError(f"{path}: cannot read agent spec: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise MetaspiderError(f"{path}: an agent spec must be UTF-8 text (byte {exc.start}: {exc.reason})") from None
    data, root = _parse_yaml(path, text)
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise MetaspiderError(f"{path}:1: an agent spec must be a YAML mapping (model: ..., policy: ...)")
    try:
        return AgentSpec.model_validate(data, context={"spec_dir": path.resolve().parent})
    except ValidationError as exc:
        raise MetaspiderError(_describe_errors(path, root, exc)) from None


def line_of(path: Path, field: str) -> int:
    """The 1-based line of a (dotted) field of a spec file: errors found after validation (a wrapper or model
    that does not exist) point at their line like schema errors do."""
    _, root = _parse_yaml(path, path.read_text(encoding="utf-8"))
    return _locate(root, tuple(field.split(".")))[0] if root is not None else 1


def _parse_yaml(path: Path, text: str) -> tuple[object, yaml.Node | None]:
    """The data and the node tree of one YAML document, from a single parse."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        message = exc.problem or exc.context
        if exc.problem and exc.context and exc.context_mark:
            message += f" ({exc.context} started at line {exc.context_mark.line + 1})"
        raise MetaspiderError(f"{path}{line}: invalid YAML: {message}") from None
    except yaml.YAMLError as exc:
        raise MetaspiderError(f"{path}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _describe_errors(path: Path, root: yaml.Node, error: ValidationError) -> str:
    located = [(*_locate(root, tuple(detail["loc"])), detail["msg"]) for detail in error.errors()]
    return "\n".join(
        f"{path}:{line}: {field}: {message}" if field else f"{path}:{line}: {message}"
        for line, field, message in sorted(located, key=lambda item: item[0])
    )


def _locate(root: yaml.Node, loc: tuple[str | int, ...]) -> tuple[int, str]:
    """The 1-based line and the dotted field name of a pydantic error location.

    A field the YAML lacks (missing field) is reported at the line of the mapping that should hold it.
    Pydantic puts the tag of a discriminated union (a tool's `name`, an escalation's `kind`) into the
    location; it is not a field, so it is skipped.
    """
    node: yaml.Node | None = root
    line = root.start_mark.line
    field = ""
    tag_skipped_in: yaml.Node | None = None
    for step in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            if tag_skipped_in is not node and _is_union_tag(node, step):
                tag_skipped_in = node
                continue
            key_node, node = _lookup(node, step)
            if key_node is not None:
                line = key_node.start_mark.line
            field = f"{field}.{step}" if field else step
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line
            field = f"{field}[{step}]"
        else:
            node = None
            field = f"{field}.{step}" if field else str(step)
    return line + 1, field


def _lookup(mapping: yaml.MappingNode, key: str) -> tuple[yaml.Node | None, yaml.Node | None]:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None, None


def _is_union_tag(mapping: yaml.MappingNode, step: str) -> bool:
    if step == "import":  # a `- import: ...` tool entry: the tag is the key itself
        return _lookup(mapping, "import")[0] is not None
    for discriminator in ("name", "kind"):
        _, value = _lookup(mapping, discriminator)
        if isinstance(value, yaml.ScalarNode) and value.value == step:
            return True
    return False
