"""A backbone without a model: a character vocabulary and a scripted reply, so the chat model's handling
of what a model writes (tool-call parsing, finish reasons, the score) is tested as pure logic."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from metaspider.core.backbones.base import Backbone, Injection
from metaspider.core.backbones.model_lock import ModelLock
from metaspider.core.models.model_files import CHATML_TEMPLATE
from metaspider.runtime import engine as engine_module

NATIVE_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools: {% for t in tools %}{{ t | tojson }}{% endfor %}"
    " Call one as <tool_call>{json}</tool_call><|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n"
)
"""A Qwen-like template that renders tools itself (`has_native_tool_calls` is true for it)."""

VOCAB = 512
EOS = 0
SURE = 5.0
"""The logit of the scripted next token; every other token has 0."""


class ScriptedBackbone(Backbone):
    """Answers every prompt with `reply`, one character per token, then the end-of-turn token; with
    `no_tools_reply`, a prompt that offers no tools is answered with that instead, and with `folded_reply`,
    a prompt whose question carries the turn's tool results as text (`fold_tool_results`)."""

    backend = "llama_cpp"
    name = "scripted"
    n_layers = 2
    d_model = 4
    fingerprint = "scripted"
    bos_token = ""
    eos_token = "<|im_end|>"

    def __init__(
        self,
        reply: str,
        chat_template: str = CHATML_TEMPLATE,
        no_tools_reply: str | None = None,
        folded_reply: str | None = None,
    ):
        self.lock = ModelLock("scripted")
        self.chat_template = chat_template
        self.reply = self.tools_reply = reply
        self.no_tools_reply = no_tools_reply
        self.folded_reply = folded_reply
        self._vocab: list[str] = ["<eos>"]
        self._ids: dict[str, int] = {}
        self._step = 0
        self.evaluated: list[int] = []
        """How many prompt tokens each `_evaluate` was given."""
        self.tokenize(reply + (no_tools_reply or "") + (folded_reply or ""))
        self.prompts: list[str] = []
        """The text of every prompt evaluated."""

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        return [self._id(c) for c in text]

    def _id(self, char: str) -> int:
        if char not in self._ids:
            self._ids[char] = len(self._vocab) % VOCAB
            self._vocab.append(char)
        return self._ids[char]

    def detokenize(self, ids: Sequence[int]) -> str:
        return "".join(self._vocab[i] for i in ids if i != EOS)

    def is_end_of_generation(self, token_id: int) -> bool:
        return token_id == EOS

    def capture(self, ids, layers, positions=(-1,), priming=None) -> np.ndarray:
        raise NotImplementedError("the scripted backbone has no activations")

    def _evaluate(self, ids: Sequence[int], injection: Injection | None) -> np.ndarray:
        self.evaluated.append(len(ids))
        prompt = self.detokenize(ids)
        self.prompts.append(prompt)
        offers_tools = "Tools:" in prompt or "You can call these tools" in prompt
        self.reply = self.tools_reply if offers_tools or self.no_tools_reply is None else self.no_tools_reply
        if self.folded_reply is not None and "Tool results:" in prompt:
            self.reply = self.folded_reply
        self._step = 0
        return self._logits()

    def _accept(self, token_id: int, injection: Injection | None) -> np.ndarray:
        self._step += 1
        return self._logits()

    def _logits(self) -> np.ndarray:
        logits = np.zeros(VOCAB, dtype=np.float32)
        logits[self._ids[self.reply[self._step]] if self._step < len(self.reply) else EOS] = SURE
        return logits

    def reset(self) -> None:
        self._step = 0

    def _finish(self, injection: Injection | None) -> None:
        return None


def install(monkeypatch: pytest.MonkeyPatch, backbone: ScriptedBackbone, model: str = "scripted") -> str:
    """Make `MetaSpiderChatModel(model=model)` run on `backbone` (for this test only)."""
    engine = engine_module.Engine(model, "llama_cpp", 2048, 1)
    engine._backbone = backbone
    monkeypatch.setitem(engine_module._engines, (model, "llama_cpp", 2048), engine)
    return model
