"""The interface both backbones share, and the one generation loop they both run.

A backbone only knows how to evaluate tokens (optionally reading and offsetting layer outputs) and how
to turn ids into text. Sampling, stop strings, streaming and end-of-sequence handling live here, once,
so Torch and llama.cpp cannot drift apart in what they generate from the same logits."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from metaspider.core.backbones.chat_template import Message, render_chat
from metaspider.core.backbones.model_lock import ModelLock

Injector = Callable[[int, "object", np.ndarray], "object"]
"""(layer, hidden [T, d], absolute positions [T]) → offsets [T, d] to add to that layer's output.

`hidden` and the returned offsets are the backbone's native arrays: torch tensors on Torch, NumPy on
llama.cpp. The injector is called for every evaluated position at or after `inject_from`."""


@dataclass(frozen=True)
class Injection:
    """What pass 2 adds to the residual stream.

    `injector` runs per evaluated token; `control` is a constant per-layer vector (a llama.cpp control
    vector). Positions before `inject_from` are left alone, which lets pass 2 reuse pass 1's cache."""

    injector: Injector | None = None
    layers: tuple[int, ...] = ()
    """The layers `injector` writes to."""
    control: dict[int, np.ndarray] | None = None
    inject_from: int = 0

    @property
    def written_layers(self) -> tuple[int, ...]:
        """The blocks whose outputs this injection changes: the injector's layers, or the control vector's."""
        return self.layers if self.injector is not None else tuple(sorted(self.control or ()))

    def offsets(self, layer: int, hidden, positions: np.ndarray):
        """What to add to `layer`'s output at `positions`: the injector's offsets, or the control vector."""
        if self.injector is not None:
            return self.injector(layer, hidden, positions)
        assert self.control is not None
        return self.control[layer]


@dataclass(frozen=True)
class Priming:
    """Pass 2's first injected step, folded into pass 1.

    With `generated` positions pass 2 injects from the decision point on, so the decision token would be
    evaluated twice: plain to read, then injected to predict the first answer token. When no injected
    layer lies below the last read layer, a backbone can build the injection inside pass 1, as soon as
    the read layers are done, and add it to the decision token in the same evaluation: pass 2 then starts
    from pass 1's logits, and the first token comes one decode step sooner. The numbers are the same
    either way (the layers below the injection are not touched)."""

    layers: tuple[int, ...]
    """Every layer the built injection may write to."""
    build: Callable[[np.ndarray], Injection | None]
    """Read-layer outputs at the decision point [R, d] → pass 2's injection (None: nothing to inject)."""


class Constraint(Protocol):
    """Restricts which tokens may come next (e.g. a grammar), so constrained output always parses."""

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """The logits with every forbidden token pushed to a very low finite value."""

    def accept(self, token_id: int) -> None:
        """Advance past a generated token (end-of-generation tokens are never passed)."""


@dataclass(frozen=True)
class SamplingParams:
    """How pass 2 samples: token budget, temperature (0 = greedy, the default, so results repeat), seed, stop
    strings and an optional grammar constraint. One type for both backbones, so a request means the same on each."""

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    """Nucleus sampling: draw only from the smallest set of tokens whose probability reaches `top_p`."""
    seed: int | None = None
    stop: tuple[str, ...] = ()
    top_logprobs: int = 0
    ignore_eos: bool = False
    """Keep generating past end-of-sequence tokens (benchmarks that need equal work), as llama.cpp's flag."""
    constraint: Constraint | None = None
    """Stateful and single-use: one per request."""


@dataclass
class TokenOut:
    """One generated token and the text it makes visible (may be empty while a stop string or a
    multi-byte character is still undecided)."""

    token_id: int
    text: str
    logprob: float
    top_logprobs: list[tuple[int, float]] = field(default_factory=list)
    entropy: float = 0.0
    """Predictive entropy (nats) of the distribution this token was drawn from: a baseline signal."""


@dataclass
class GenerationEnd:
    """Why and after how many tokens a generation stopped: the last item a backbone's stream yields."""

    finish_reason: str
    """"stop" (end of sequence or a stop string) or "length"."""
    n_prompt_tokens: int
    n_generated: int


class Backbone(ABC):
    """A frozen base model that can be read from and written into, layer by layer.

    A backbone holds one cache and one injection at a time: callers serialise requests with `lock`."""

    lock: ModelLock

    backend: str
    """"llama_cpp" or "torch": which wrapper runtime (NumPy or Torch) runs on this backbone."""
    name: str
    n_layers: int
    d_model: int
    fingerprint: str
    chat_template: str
    bos_token: str
    eos_token: str
    last_logits: np.ndarray | None = None
    """The bare next-token logits after the ids of the last `capture` (None when it was primed, whose
    logits carry the injection): a wrapper's fallback reads them without another evaluation."""

    @abstractmethod
    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Text to ids, no BOS added beyond what the text holds. `special`: spellings of control tokens
        (`<|im_start|>`) become those tokens; untrusted text must be tokenized with `special=False`."""

    @abstractmethod
    def detokenize(self, ids: Sequence[int]) -> str:
        """Token ids back to text, special tokens kept, so the chat template round-trips."""

    @abstractmethod
    def is_end_of_generation(self, token_id: int) -> bool:
        """Whether this token ends the model's turn (end of sequence or end of turn)."""

    @abstractmethod
    def capture(
        self,
        ids: Sequence[int],
        layers: Sequence[int],
        positions: Sequence[int] = (-1,),
        priming: Priming | None = None,
    ) -> np.ndarray:
        """Layer outputs (DESIGN "layer L output") at `positions` of `ids`, float32 [layers, positions, d].

        Leaves the model's cache holding `ids` without injection, so a following `generate` on the same
        ids only has to evaluate from `inject_from` on. With `priming` (and positions (-1,)), a backbone
        that can also applies the built injection to the last token: a following `generate` given that
        very `Injection` object on the same ids then evaluates nothing before its first token. A backbone
        may ignore `priming` (Torch does)."""

    @abstractmethod
    def _evaluate(self, ids: Sequence[int], injection: Injection | None) -> np.ndarray:
        """Bring the cache to `ids` (reusing what it can) and return the float32 logits of the last one."""

    @abstractmethod
    def _accept(self, token_id: int, injection: Injection | None) -> np.ndarray:
        """Evaluate one more token on top of the cache and return its logits."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the cache: the next request starts cold."""

    @abstractmethod
    def _finish(self, injection: Injection | None) -> None:
        """Drop injected positions from the cache: a later request may inject something else."""

    def chat_ids(self, messages: list[Message], tools: list[dict] | None = None) -> list[int]:
        """The prompt's ids: the template's markers are control tokens, message contents never are."""
        from metaspider.core.backbones.untrusted import safe_chat_ids

        return safe_chat_ids(messages, lambda m: self.render(m, tools), self.tokenize)

    def render(self, messages: list[Message], tools: list[dict] | None = None) -> str:
        """The prompt text of `messages` in the model's chat template, ending with the assistant header."""
        return render_chat(
            self.chat_template, messages, bos_token=self.bos_token, eos_token=self.eos_token, tools=tools
        )

    def next_logits(self, ids: Sequence[int], injection: Injection | None = None) -> np.ndarray:
        """Logits of the token after `ids`, with `injection` applied: the parity checks compare backbones with it."""
        try:
            return self._evaluate(ids, injection)
        finally:
            self._finish(injection)

    def generate(
        self, ids: Sequence[int], params: SamplingParams, injection: Injection | None = None
    ) -> Iterator[TokenOut | GenerationEnd]:
        """Yields tokens as they are decided, then one `GenerationEnd`. If the model is taken from this
        stream while it sits unread (see `ModelLock`), its clean-up is skipped: the model is no longer its."""
        lease = self.lock.holder
        try:
            yield from self._generate(ids, params, injection)
        finally:
            if lease is None or not lease.revoked:
                self._finish(injection)

    def abandon(self) -> None:
        """Drop every trace of an unfinished request (cache, injection) so another may use the model."""
        self.reset()

    def _generate(
        self, ids: Sequence[int], params: SamplingParams, injection: Injection | None
    ) -> Iterator[TokenOut | GenerationEnd]:
        rng = np.random.default_rng(params.seed)
        text = _StreamedText(self, params.stop)
        logits = self._evaluate(ids, injection)
        finish, n = "length", 0
        while n < params.max_tokens:
            if params.constraint is not None:
                logits = params.constraint.mask(logits)
            token, logprobs, entropy = _sample(logits, params.temperature, rng, params.top_p)
            n += 1
            if self.is_end_of_generation(token) and not params.ignore_eos:
                finish = "stop"
                break
            if params.constraint is not None:
                params.constraint.accept(token)
            visible, stopped = text.push(token)
            yield TokenOut(token, visible, float(logprobs[token]), _top(logprobs, params.top_logprobs), entropy)
            if stopped:
                finish = "stop"
                break
            if n < params.max_tokens:
                logits = self._accept(token, injection)
        tail = "" if text.stopped else text.flush()
        if tail:
            yield TokenOut(-1, tail, 0.0)
        yield GenerationEnd(finish, len(ids), n)

    def complete(
        self, ids: Sequence[int], params: SamplingParams, injection: Injection | None = None
    ) -> tuple[str, GenerationEnd]:
        """Non-streamed generation: by construction the concatenation of the streamed pieces."""
        pieces: list[str] = []
        end: GenerationEnd | None = None
        for item in self.generate(ids, params, injection):
            if isinstance(item, TokenOut):
                pieces.append(item.text)
            else:
                end = item
        assert end is not None
        return "".join(pieces), end


def common_prefix(cached: Sequence[int], ids: Sequence[int], limit: int) -> int:
    """How many leading cached positions can be reused for `ids` (at most `limit`)."""
    n = 0
    for a, b in zip(cached[:limit], ids[:limit], strict=False):
        if a != b:
            break
        n += 1
    return n


def _sample(
    logits: np.ndarray, temperature: float, rng: np.random.Generator, top_p: float = 1.0
) -> tuple[int, np.ndarray, float]:
    """The next token, the log-probabilities of the untempered distribution and its entropy (nats)."""
    logprobs, entropy = _distribution(logits)
    if temperature <= 0:
        return int(np.argmax(logits)), logprobs, entropy
    probs = np.exp(_log_softmax(logits.astype(np.float64) / temperature))  # float64: choice() checks p sums to 1
    if top_p < 1.0:
        order = np.argsort(-probs)
        keep = order[: int(np.searchsorted(np.cumsum(probs[order]), top_p)) + 1]
        nucleus = np.zeros_like(probs)
        nucleus[keep] = probs[keep]
        probs = nucleus / nucleus.sum()
    return int(rng.choice(len(probs), p=probs)), logprobs, entropy


def _distribution(logits: np.ndarray) -> tuple[np.ndarray, float]:
    """Log-softmax and entropy in float32 with one exp: this runs once per generated token, and a
    float64 version with two exps cost a few % of a decode step on the default model."""
    shifted = logits.astype(np.float32, copy=False) - logits.max()
    exp = np.exp(shifted)
    total = float(exp.sum(dtype=np.float64))
    logprobs = shifted - np.float32(math.log(total))
    return logprobs, float(-np.dot(exp, logprobs) / total)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max()
    return shifted - math.log(np.exp(shifted).sum())


def _top(logprobs: np.ndarray, k: int) -> list[tuple[int, float]]:
    if k <= 0:
        return []
    best = np.argpartition(-logprobs, k)[:k]
    best = best[np.argsort(-logprobs[best])]
    return [(int(i), float(logprobs[i])) for i in best]


class _StreamedText:
    """Incremental detokenization with stop strings.

    Text is released only when it can no longer become part of a stop string and does not end in an
    unfinished UTF-8 character, so streaming and non-streaming produce the same text."""

    def __init__(self, backbone: Backbone, stop: tuple[str, ...]):
        self._backbone = backbone
        self._stop = stop
        self._ids: list[int] = []
        self._released = 0
        self.stopped = False

    def push(self, token_id: int) -> tuple[str, bool]:
        self._ids.append(token_id)
        text = self._backbone.detokenize(self._ids)
        for stop in self._stop:
            at = text.find(stop)
            if at != -1:
                self.stopped = True
                return self._release(text[:at]), True
        if text.endswith("\ufffd"):
            return "", False
        return self._release(text[: len(text) - self._held_back(text)]), False

    def flush(self) -> str:
        return self._release(self._backbone.detokenize(self._ids).rstrip("\ufffd"))

    def _held_back(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a prefix of some stop string."""
        longest = 0
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if stop.startswith(text[-size:]):
                    longest = size
                    break
        return longest

    def _release(self, text: str) -> str:
        if len(text) <= self._released:
            return ""
        piece, self._released = text[self._released :], len(text)
        return piece
