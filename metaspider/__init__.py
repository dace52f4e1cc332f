"""metaspider: make a frozen LLM say "I'm not sure" instead of answering wrongly.

`from metaspider import MetaSpiderChatModel` imports LangChain only when the name is first used, so
`import metaspider` (and the CLI's start-up) stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metaspider.runtime.chat_model import MetaSpiderChatModel

__all__ = ["MetaSpiderChatModel"]


def __getattr__(name: str) -> Any:
    if name == "MetaSpiderChatModel":
        from metaspider.runtime.chat_model import MetaSpiderChatModel

        return MetaSpiderChatModel
    raise AttributeError(f"module 'metaspider' has no attribute {name!r}")
