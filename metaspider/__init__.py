"""metaspider: make a frozen LLM say "I'm not sure" instead of answering wrongly.

The public API is the names below. Each is imported on first use, so `import metaspider` (and the CLI's
start-up) loads no torch, llama.cpp or LangChain:

    from metaspider import Pipeline, SamplingParams, load_backbone

    backbone = load_backbone("smollm2-135m")            # llama.cpp; "torch" as second argument to train
    pipeline = Pipeline(backbone, "default")            # the wrapper shipped for this model
    result = pipeline.run([{"role": "user", "content": "What is the capital of Peru?"}], SamplingParams(max_tokens=32))
    result.text, result.uncertainty.score, result.uncertainty.decision

`MetaSpiderChatModel` is the same as a LangChain chat model, `UncertaintyMiddleware` routes a LangChain
`create_agent` agent on its u; `Wrapper` opens, saves and exports wrapper files."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metaspider.core.backbones import load_backbone
    from metaspider.core.backbones.base import Backbone, SamplingParams
    from metaspider.core.pipeline import Pipeline, Result, Uncertainty
    from metaspider.core.wrapper.handle import Wrapper, load_wrapper
    from metaspider.core.wrapper.modifiers import Modifier
    from metaspider.errors import MetaspiderError
    from metaspider.runtime.chat_model import MetaSpiderChatModel
    from metaspider.runtime.middleware import UncertaintyMiddleware

_PUBLIC = {
    "Backbone": "metaspider.core.backbones.base",
    "MetaSpiderChatModel": "metaspider.runtime.chat_model",
    "MetaspiderError": "metaspider.errors",
    "Modifier": "metaspider.core.wrapper.modifiers",
    "Pipeline": "metaspider.core.pipeline",
    "Result": "metaspider.core.pipeline",
    "SamplingParams": "metaspider.core.backbones.base",
    "Uncertainty": "metaspider.core.pipeline",
    "UncertaintyMiddleware": "metaspider.runtime.middleware",
    "Wrapper": "metaspider.core.wrapper.handle",
    "load_backbone": "metaspider.core.backbones",
    "load_wrapper": "metaspider.core.wrapper.handle",
}

__all__ = [
    "Backbone",
    "MetaSpiderChatModel",
    "MetaspiderError",
    "Modifier",
    "Pipeline",
    "Result",
    "SamplingParams",
    "Uncertainty",
    "UncertaintyMiddleware",
    "Wrapper",
    "load_backbone",
    "load_wrapper",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562), so `import metaspider` stays cheap."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'metaspider' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names alongside the module's own, for completion in a REPL."""
    return sorted(set(globals()) | set(_PUBLIC))
