"""Built-in agent tools, and tools named by import path, made from the `tools:` list of an agent spec."""

from langchain_core.tools import BaseTool

from metaspider.tools.calculator import calculator
from metaspider.tools.http_get import make_http_get_tool
from metaspider.tools.knowledge_base import make_knowledge_base_tool
from metaspider.tools.specs import CalculatorSpec, HttpGetSpec, ImportToolSpec, KnowledgeBaseSpec, ToolSpec

__all__ = ["ToolSpec", "build_tool", "build_tools"]


def build_tool(spec: ToolSpec) -> BaseTool:
    """The LangChain tool a spec entry describes."""
    match spec:
        case CalculatorSpec():
            return calculator
        case KnowledgeBaseSpec(folder=folder, top_k=top_k):
            return make_knowledge_base_tool(folder, top_k=top_k)
        case HttpGetSpec():
            return make_http_get_tool(
                spec.allow_hosts,
                allow_private=spec.allow_private,
                timeout=spec.timeout,
                max_bytes=spec.max_bytes,
            )
        case ImportToolSpec():
            return spec.load()
    raise TypeError(f"unknown tool spec {spec!r}")


def build_tools(specs: list[ToolSpec]) -> list[BaseTool]:
    """One tool per spec, in order. Raises MetaspiderError if a knowledge base folder is unusable."""
    return [build_tool(spec) for spec in specs]
