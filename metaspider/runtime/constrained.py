"""Grammar-constrained decoding with llama.cpp's own grammar sampler.

When a tool call is forced or a JSON answer is asked for, every generated token is filtered through a
GBNF grammar, so the text always parses (unless `max_tokens` cuts it short). The sampler only needs the
model's vocabulary, so both backbones use a vocab-only llama.cpp model loaded from the same GGUF: token
ids are the GGUF's ids on Torch and on llama.cpp alike."""

from __future__ import annotations

import ctypes
import json
import threading
from functools import lru_cache
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from metaspider.errors import MetaspiderError

FORBIDDEN = np.float32(-1e30)
"""Finite, so log-softmax and entropy of a masked distribution stay finite."""

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])

_STRUCTURE_TOKENS_PER_FIELD = 6
"""Upper bound on the tokens a key, its quotes, colon and separator take."""
_MIN_STRING_CHARS = 8
_MAX_STRING_CHARS = 500
"""llama.cpp's grammar parser refuses the nested optional form `json_schema_to_gbnf` writes for a longer
bound ("exceeds sane defaults", measured between 512 and 1024), which a large `max_tokens` would ask for."""


class Vocab:
    """A vocab-only llama.cpp model: enough for grammars, no weights in memory."""

    def __init__(self, path: Path):
        if not path.is_file() or path.suffix != ".gguf":
            raise MetaspiderError(f"constrained decoding needs the model as a GGUF file; {path} is not one")
        llama_cpp.llama_log_set(_silent_log, ctypes.c_void_p(0))
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self._model:
            raise MetaspiderError(f"llama.cpp could not read the vocabulary of {path}")
        self.pointer = llama_cpp.llama_model_get_vocab(self._model)
        self.size = llama_cpp.llama_vocab_n_tokens(self.pointer)

    def __del__(self) -> None:
        if getattr(self, "_model", None):
            llama_cpp.llama_model_free(self._model)


_vocab_lock = threading.Lock()


@lru_cache(maxsize=4)
def _cached_vocab(path: Path) -> Vocab:
    return Vocab(path)


def vocab_for(path: Path) -> Vocab:
    """The model's vocabulary for grammar-constrained sampling, loaded once per model file and shared."""
    with _vocab_lock:
        return _cached_vocab(path)


class GrammarConstraint:
    """One request's grammar state: `mask` the logits, then `accept` the chosen token."""

    def __init__(self, vocab: Vocab, grammar: str):
        self._vocab = vocab
        self._sampler = llama_cpp.llama_sampler_init_grammar(vocab.pointer, grammar.encode(), b"root")
        if not self._sampler:
            raise MetaspiderError(f"llama.cpp rejected the grammar:\n{grammar}")
        self._data = np.zeros(vocab.size, dtype=_TOKEN_DATA)
        self._data["id"] = np.arange(vocab.size, dtype=np.int32)

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """The logits with every token the grammar forbids next set to -inf."""
        n = min(len(logits), self._vocab.size)
        self._data["logit"] = FORBIDDEN
        self._data["logit"][:n] = logits[:n]
        self._data["p"] = 0.0
        array = llama_cpp.llama_token_data_array(
            self._data.ctypes.data_as(llama_cpp.llama_token_data_p), self._vocab.size, -1, False
        )
        llama_cpp.llama_sampler_apply(self._sampler, ctypes.byref(array))
        masked = np.full(len(logits), FORBIDDEN, dtype=np.float32)
        allowed = np.maximum(self._data["logit"][:n], FORBIDDEN)
        masked[:n] = allowed
        return masked

    def accept(self, token_id: int) -> None:
        """Advance the grammar past the sampled token."""
        llama_cpp.llama_sampler_accept(self._sampler, token_id)

    def __del__(self) -> None:
        if getattr(self, "_sampler", None):
            llama_cpp.llama_sampler_free(self._sampler)


def json_object_grammar(max_tokens: int) -> str:
    """Any JSON object (json_mode), its strings bounded like `schema_grammar`'s."""
    limit = max(_MIN_STRING_CHARS, max_tokens // 4)
    return JSON_GBNF.replace('  )* "\\"" ws', f'  ){{0,{limit}}} "\\"" ws')


def schema_grammar(schema: dict, max_tokens: int) -> str:
    """GBNF for JSON values matching `schema`, properties in the schema's order.

    Small models loop inside strings ("a cat is a cat, a cat is…") until `max_tokens` cuts the JSON
    off. Every string gets a maxLength (unless it has one) so that all of them plus the structure fit in
    `max_tokens`: a token inside a string adds at least one character, so the object always closes."""
    bounded = _bound_strings(schema, _string_budget(schema, max_tokens))
    order = list(schema.get("properties", {}))
    try:
        return json_schema_to_gbnf(json.dumps(bounded), prop_order=order)
    except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
        raise MetaspiderError(
            f"cannot turn this JSON schema into a grammar ({exc}): {json.dumps(schema)[:300]}"
        ) from None


def _string_budget(schema: dict, max_tokens: int) -> int:
    strings, fields = _count(schema)
    spare = max_tokens - _STRUCTURE_TOKENS_PER_FIELD * (fields + 1)
    return min(_MAX_STRING_CHARS, max(_MIN_STRING_CHARS, spare // max(strings, 1)))


def _count(node: object) -> tuple[int, int]:
    """(string schemas, object properties) anywhere in `node`: an over-count is only more cautious."""
    if isinstance(node, list):
        totals = [_count(item) for item in node]
        return sum(t[0] for t in totals), sum(t[1] for t in totals)
    if not isinstance(node, dict):
        return 0, 0
    strings = 1 if node.get("type") == "string" and "maxLength" not in node else 0
    fields = len(node["properties"]) if isinstance(node.get("properties"), dict) else 0
    for value in node.values():
        sub_strings, sub_fields = _count(value)
        strings, fields = strings + sub_strings, fields + sub_fields
    return strings, fields


def _bound_strings(node: object, limit: int) -> object:
    if isinstance(node, list):
        return [_bound_strings(item, limit) for item in node]
    if not isinstance(node, dict):
        return node
    bounded = {key: _bound_strings(value, limit) for key, value in node.items()}
    if (
        bounded.get("type") == "string"
        and "maxLength" not in bounded
        and "enum" not in bounded
        and "const" not in bounded
    ):
        bounded["maxLength"] = limit
    return bounded


@llama_cpp.llama_log_callback
def _silent_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """Loading a vocabulary logs the whole model header to stderr otherwise."""
