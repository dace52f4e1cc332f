"""The field's uncertainty baselines that `collect` stores beside the wrapper's inputs.

Before the answer (at the decision point): the max-softmax probability and the entropy of the first
answer token's full distribution (`first_token_stats`, in `metaspider.core.wrapper.support` since a
wrapper's fallback reads them at inference time too). After the answer: P(True) (Kadavath et al., 2022: the model judges
its own answer) and sample consistency (the share of k sampled answers that match the greedy one, as
UQLM's exact-match scorer). The maths is here, free of any backbone, so it can be checked on its own."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import numpy as np

from metaspider.loom.datasets import Item, to_messages
from metaspider.loom.scoring import extract_choice, normalise

TRUE_WORDS = ("True", "true", "Yes", "yes")
FALSE_WORDS = ("False", "false", "No", "no")
CONSISTENCY_SAMPLES = 5
CONSISTENCY_TEMPERATURE = 0.7


def p_true_from_logits(logits: np.ndarray, true_ids: Sequence[int], false_ids: Sequence[int]) -> float:
    """P("true") normalised over the two options: the summed probability of the true tokens divided by
    that of the true and the false tokens. Normalising removes the mass the model puts on anything else
    (a space, "The", ...), which says nothing about its belief."""
    if not true_ids or not false_ids:
        raise ValueError("P(True) needs at least one token for each option")
    x = np.asarray(logits, dtype=np.float64)
    true_lse = _logsumexp(x[list(true_ids)])
    false_lse = _logsumexp(x[list(false_ids)])
    return float(1.0 / (1.0 + math.exp(false_lse - true_lse)))


def option_token_ids(tokenize: Callable[[str], list[int]]) -> tuple[list[int], list[int]]:
    """The first token of each spelling of "true" and "false" (with and without a leading space). A
    token that opens both (a bare space) is dropped: it cannot tell the options apart."""

    def first_tokens(words: Sequence[str]) -> set[int]:
        return {ids[0] for word in words for text in (word, f" {word}") if (ids := tokenize(text))}

    true_ids, false_ids = first_tokens(TRUE_WORDS), first_tokens(FALSE_WORDS)
    shared = true_ids & false_ids
    return sorted(true_ids - shared), sorted(false_ids - shared)


def p_true_messages(item: Item, answer: str) -> list[dict[str, str]]:
    """The question, the model's own answer as its turn, then the question whether that answer is true.
    As a follow-up turn the prompt extends the one just answered, so the backbone's cache evaluates only
    the answer and the follow-up (a fresh "Question: ... Proposed answer: ..." prompt cost twice as much
    as the whole greedy answer on the default model)."""
    return [
        *to_messages(item),
        {"role": "assistant", "content": answer.strip()},
        {"role": "user", "content": "Is your answer true or false? Reply with one word: True or False."},
    ]


def same_answer(item: Item, a: str, b: str) -> bool:
    """Whether two replies give the same answer, as the data set reads answers: the letter of a
    multiple-choice item, otherwise the normalised text (exact match)."""
    if item.is_multiple_choice:
        return extract_choice(a, len(item.choices)) == extract_choice(b, len(item.choices))
    return normalise(a) == normalise(b)


def consistency_share(item: Item, greedy: str, samples: Sequence[str]) -> float:
    """The share of `samples` that give the greedy answer (1 = always the same answer)."""
    if not samples:
        raise ValueError("consistency needs at least one sample")
    return sum(same_answer(item, greedy, sample) for sample in samples) / len(samples)


def sample_seed(item_id: str, index: int) -> int:
    """A seed per item and sample: the same samples on every machine and on a resumed collect."""
    return int.from_bytes(hashlib.sha256(f"{item_id}#{index}".encode()).digest()[:4], "little")


def _logsumexp(x: np.ndarray) -> float:
    top = float(x.max())
    return top + math.log(float(np.exp(x - top).sum()))
