"""LangChain's standard unit suite for MetaSpiderChatModel (no model is loaded: construction is lazy)."""

from __future__ import annotations

from langchain_tests.unit_tests import ChatModelUnitTests

from metaspider import MetaSpiderChatModel


class TestMetaSpiderChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[MetaSpiderChatModel]:
        return MetaSpiderChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model": "smollm2-135m", "n_threads": 1}

    @property
    def supports_json_mode(self) -> bool:
        return True
