"""The two-pass mechanism: messages → pass 1 (read, u) → pass 2 (generate with the injection).

This is the one place where a backbone, a wrapper, a modifier and a gain meet; the chat model, the
agent and the evaluation all go through it, so they all report the same u for the same prompt."""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from metaspider.core.backbones.base import Backbone, GenerationEnd, Injection, Priming, SamplingParams, TokenOut
from metaspider.core.backbones.chat_template import Message
from metaspider.core.wrapper.handle import Wrapper, load_wrapper
from metaspider.core.wrapper.modifiers import Modifier
from metaspider.core.wrapper.runtime import Reading, WrapperRuntime
from metaspider.core.wrapper.support import first_token_stats


@dataclass(frozen=True)
class Uncertainty:
    """What a caller needs to act on the doubt: u, the decision it implies and the knobs behind it.

    Without a wrapper, `score` is the pass-1 baseline `first_token_doubt`: 1 − the max softmax probability of
    the first answer token at the decision point, known before anything is generated, so the score an agent
    routes on and the score the answer reports are one number (an empty reply has it too). `decision` is
    then "unassessed"."""

    score: float | None
    decision: str
    threshold: float | None
    modifier: str | None
    gain: float
    support: float | None = None
    """How close the question lies to the wrapper's training data, in [0, 1] (None: the wrapper has no
    support model, or there is no wrapper). Where it is low, `score` has leaned toward the fallback on the
    first token's probabilities."""
    score_post: float | None = None
    """u after the answer (the wrapper's post-answer head on the answer's last token and its token
    probabilities), for deciding on a draft; None before the answer or without a post head. `score` stays
    the one the decision used."""

    def as_dict(self) -> dict:
        """The JSON form the chat model puts into `response_metadata["uncertainty"]`."""
        return asdict(self)


@dataclass
class Assessment:
    """Pass 1 for one prompt; pass 2 continues from the same token ids."""

    ids: list[int]
    reading: Reading | None
    uncertainty: Uncertainty
    injection: Injection | None = None
    """Pass 2's injection as built during pass 1 (the backbone may have applied its first step already),
    for the modifier and gain in `knobs`."""
    knobs: tuple[Modifier | None, float] | None = None


@dataclass
class Result:
    """A whole pass 2: the text, the uncertainty from pass 1, why generation ended, and every token."""

    text: str
    uncertainty: Uncertainty
    end: GenerationEnd
    tokens: list[TokenOut] = field(default_factory=list)


class Pipeline:
    """A backbone with (optionally) a wrapper: `assess` runs pass 1 and gives u and the decision, `stream`/`run`
    generate pass 2 with the injection. The modifier, gain and answer threshold default to the wrapper's
    manifest. `wrapper` is a runtime, or anything `load_wrapper` opens: a folder, a sidecar, "default" or a
    `Wrapper` (loaded for this backbone, fingerprint checked)."""

    def __init__(
        self,
        backbone: Backbone,
        wrapper: WrapperRuntime | Wrapper | str | Path | None = None,
        modifier: Modifier | None = None,
        gain: float | None = None,
        threshold: float | None = None,
    ):
        if isinstance(wrapper, (str, Path, Wrapper)):
            wrapper = load_wrapper(backbone, wrapper)
        self.backbone = backbone
        self.wrapper: WrapperRuntime | None = wrapper
        manifest = wrapper.manifest if wrapper else None
        self.modifier = modifier or (manifest.modifier if manifest else None)
        self.gain = gain if gain is not None else (manifest.gain if manifest else 1.0)
        self.threshold = threshold if threshold is not None else (manifest.answer_below if manifest else None)

    def assess(self, messages: list[Message], tools: list[dict] | None = None, u: float | None = None) -> Assessment:
        """Pass 1: the prompt's ids, u and the decision, and the injection pass 2 will use. Without a wrapper, u is
        the baseline `first_token_doubt` of the next-token logits. Either way the cache is left holding the
        prompt, so a following `stream` on these ids re-evaluates at most the decision token.

        `u`: a u already assessed for this turn on another view of it (`UncertaintyMiddleware` reads u on the
        question and its tool results, without the tools' instructions the wrapper was not trained on); the
        decision and the injection then use it, and this prompt's pass 1 gives the cognitive tokens only."""
        ids = self.backbone.chat_ids(messages, tools)
        if self.wrapper is None:
            baseline = first_token_doubt(self.backbone.next_logits(ids))
            return Assessment(ids, None, self._uncertainty(None, baseline if u is None else float(u)))
        wrapper = self.wrapper
        if wrapper.config.reads_first_token and u is None:
            # The blend and the hybrid head need the bare first-token distribution before u is known, so the
            # decision token is not primed: pass 2 re-evaluates it, as on Torch.
            acts = self.backbone.capture(ids, wrapper.config.read_layers, positions=(-1,))
            logits = self.backbone.last_logits
            first = first_token_stats(logits) if logits is not None else None
            return self._assessment(ids, wrapper.read(acts[:, 0, :], first))
        built: dict[str, Any] = {}

        def given(reading: Reading) -> Reading:
            return reading if u is None else replace(reading, u=float(u))

        def build(acts) -> Injection | None:
            built["reading"] = reading = given(wrapper.read(acts))
            built["injection"] = injection = self._injection(reading, len(ids) - 1)
            return injection

        priming = Priming(wrapper.config.inject_layers, build)
        acts = self.backbone.capture(ids, wrapper.config.read_layers, positions=(-1,), priming=priming)
        if "reading" not in built:
            return self._assessment(ids, given(wrapper.read(acts[:, 0, :])))
        return self._assessment(ids, built["reading"], built["injection"])

    def stream(self, assessment: Assessment, params: SamplingParams) -> Generator[TokenOut | GenerationEnd, None, None]:
        """Pass 2. With no wrapper, the watchdog, or gain 0, nothing is injected: the bare model's text."""
        injection = assessment.injection
        if injection is None or assessment.knobs != self._knobs():
            injection = self._injection(assessment.reading, len(assessment.ids) - 1)
        yield from self.backbone.generate(assessment.ids, params, injection)

    def after_answer(self, assessment: Assessment, tokens: list[TokenOut]) -> Uncertainty:
        """The assessment's `Uncertainty` with `score_post` filled in from the generated `tokens`, for a
        wrapper with a post-answer head (one more evaluation of the answer's last token; the cache holds the
        rest). Unchanged without a post head or an answer. The head was trained on the bare model's greedy
        answers: on an answer written with the injection it reads slightly different activations."""
        scored = [t for t in tokens if t.token_id >= 0]
        wrapper, reading = self.wrapper, assessment.reading
        if wrapper is None or reading is None or not wrapper.config.post_layers or not scored:
            return assessment.uncertainty
        ids = [*assessment.ids, *(t.token_id for t in scored)]
        acts = self.backbone.capture(ids, wrapper.config.post_layers, positions=(-1,))[:, 0, :]
        msp = math.fsum(math.exp(t.logprob) for t in scored) / len(scored)
        entropy = math.fsum(t.entropy for t in scored) / len(scored)
        score_post = wrapper.read_post(acts, msp, entropy, reading.support)
        return replace(assessment.uncertainty, score_post=score_post)

    def _assessment(self, ids: list[int], reading: Reading, injection: Injection | None = None) -> Assessment:
        return Assessment(ids, reading, self._uncertainty(reading.u, support=reading.support), injection, self._knobs())

    def _knobs(self) -> tuple[Modifier | None, float]:
        return self.modifier, self.gain

    def _injection(self, reading: Reading | None, decision_point: int) -> Injection | None:
        if self.wrapper is None or reading is None or self.modifier is None or self.gain == 0:
            return None
        u_mod = self.modifier.apply(reading.u)
        if u_mod is None:
            return None
        return self.wrapper.injection(reading, float(u_mod), self.gain, decision_point)

    def run(self, messages: list[Message], params: SamplingParams, tools: list[dict] | None = None) -> Result:
        """Pass 1 and pass 2 to the end: the reply text with its uncertainty."""
        assessment = self.assess(messages, tools)
        tokens: list[TokenOut] = []
        end: GenerationEnd | None = None
        for item in self.stream(assessment, params):
            if isinstance(item, TokenOut):
                tokens.append(item)
            else:
                end = item
        assert end is not None
        return Result("".join(t.text for t in tokens), self.after_answer(assessment, tokens), end, tokens)

    def _uncertainty(self, u: float | None, baseline: float | None = None, support: float | None = None) -> Uncertainty:
        modifier = self.modifier.name if self.modifier else None
        if u is None:
            return Uncertainty(baseline, "unassessed", None, modifier, self.gain)
        decision = "answer" if self.threshold is None or u < self.threshold else "refuse"
        return Uncertainty(u, decision, self.threshold, modifier, self.gain, support)


def first_token_doubt(logits: np.ndarray) -> float:
    """1 − max softmax probability of the next token: the baseline u before generating (raw logits, no
    temperature), the same for every backbone."""
    shifted = logits.astype(np.float64) - float(np.max(logits))
    return 1.0 - 1.0 / math.fsum(np.exp(shifted))
