"""The JSON grammars' bounds, and a model that cannot be constrained (no model file needed)."""

from __future__ import annotations

import pytest

from metaspider.errors import MetaspiderError
from metaspider.runtime.constrained import json_object_grammar, schema_grammar, vocab_for

JOKE = {
    "type": "object",
    "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}},
    "required": ["setup", "punchline"],
}


def test_strings_are_bounded_so_the_object_closes_within_max_tokens():
    grammar = schema_grammar(JOKE, 100)
    # (100 tokens - 6 per field for 2 fields + the object) // 2 strings = at most 41 characters each
    assert grammar.count("(char") == 2 * 41


def test_json_mode_grammar_bounds_strings():
    assert "{0,25}" in json_object_grammar(100)


def test_a_folder_model_cannot_be_constrained(tmp_path):
    with pytest.raises(MetaspiderError, match="GGUF"):
        vocab_for(tmp_path)
