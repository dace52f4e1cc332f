"""LangChain's standard integration suite on the real default model (or METASPIDER_TEST_MODEL).

Runs with the shipped Doubter wrapper when the package has one for the model, else on the bare model."""

from __future__ import annotations

import os
from importlib import resources

from langchain_tests.integration_tests import ChatModelIntegrationTests

from metaspider import MetaSpiderChatModel
from metaspider.core.pipeline import SHIPPED_WRAPPERS
from metaspider.core.registry import DEFAULT_MODEL, resolve

MODEL = os.environ.get("METASPIDER_TEST_MODEL", DEFAULT_MODEL)


def shipped_wrapper(model: str) -> str | None:
    name = SHIPPED_WRAPPERS.get(model)
    return "default" if name and (resources.files("metaspider") / "wrappers" / name).is_dir() else None


class TestMetaSpiderChatModelIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[MetaSpiderChatModel]:
        return MetaSpiderChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model": MODEL, "wrapper": shipped_wrapper(MODEL), "n_threads": 1}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        """Anthropic-style text, tool_use and thinking blocks and tool definitions are all understood."""
        return True

    @property
    def model_override_value(self) -> str:
        """The same weights named by their file path: a second engine, reported under that name."""
        return str(resolve(MODEL))
