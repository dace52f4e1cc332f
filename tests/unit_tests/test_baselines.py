"""The baseline maths collect stores: first-token MSP and entropy, P(True) normalisation, consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metaspider.core.wrapper.support import first_token_stats
from metaspider.loom import baselines
from metaspider.loom.datasets import Item


def test_first_token_stats_of_a_uniform_and_a_peaked_distribution():
    msp, entropy = first_token_stats(np.zeros(8))
    assert msp == pytest.approx(1 / 8)
    assert entropy == pytest.approx(math.log(8))
    msp, entropy = first_token_stats(np.array([10.0, 0.0, 0.0]))
    p = math.exp(10) / (math.exp(10) + 2)
    assert msp == pytest.approx(p)
    assert entropy == pytest.approx(-(p * math.log(p) + 2 * (1 - p) / 2 * math.log((1 - p) / 2)))


def test_first_token_stats_are_shift_invariant_and_stable_for_large_logits():
    logits = np.array([1.0, 2.0, 3.0])
    assert first_token_stats(logits + 1000) == pytest.approx(first_token_stats(logits))


def test_p_true_is_normalised_over_the_two_options_only():
    logits = np.full(6, -5.0)
    logits[[0, 1]] = [math.log(3), math.log(1)]  # True (twice as likely as the rest ignored)
    logits[2] = math.log(1)  # False
    logits[5] = 20.0  # a token outside both options: ignored by the normalisation
    assert baselines.p_true_from_logits(logits, [0, 1], [2]) == pytest.approx(4 / 5)
    assert baselines.p_true_from_logits(logits, [2], [0, 1]) == pytest.approx(1 / 5)


def test_p_true_is_a_half_when_the_options_tie():
    assert baselines.p_true_from_logits(np.array([2.0, 2.0, 9.0]), [0], [1]) == pytest.approx(0.5)


def test_option_tokens_drop_a_token_shared_by_both_options():
    vocab = {
        "True": [1],
        " True": [9, 1],
        "true": [2],
        " true": [9, 2],
        "Yes": [3],
        " Yes": [9, 3],
        "yes": [3],
        " yes": [9, 3],
        "False": [4],
        " False": [9, 4],
        "false": [5],
        " false": [9, 5],
        "No": [6],
        " No": [9, 6],
        "no": [6],
        " no": [9, 6],
    }
    true_ids, false_ids = baselines.option_token_ids(lambda text: vocab[text])
    assert true_ids == [1, 2, 3]
    assert false_ids == [4, 5, 6]


def test_p_true_prompt_shows_the_question_and_the_models_own_answer():
    item = Item(id="x", question="What is the capital of France?", answers=("Paris",))
    messages = baselines.p_true_messages(item, " Paris\n")
    assert messages[0]["content"].startswith("What is the capital of France?")
    assert messages[1] == {"role": "assistant", "content": "Paris"}
    assert "true or false" in messages[2]["content"].lower()


def test_consistency_share_counts_samples_matching_the_greedy_answer_after_normalising():
    item = Item(id="x", question="Capital of France?", answers=("Paris",))
    share = baselines.consistency_share(item, "Paris.", ["paris", "The Paris", "Lyon", "PARIS!", "Marseille"])
    assert share == pytest.approx(3 / 5)
    assert baselines.consistency_share(item, "Lyon", ["Paris"] * 5) == 0.0


def test_consistency_of_multiple_choice_compares_the_letter():
    item = Item(id="x", question="?", choices=("a", "b", "c", "d"), answer="B")
    assert baselines.consistency_share(item, "B", ["B. b", "(B)", "C", "The answer is B", "D"]) == pytest.approx(3 / 5)


def test_sample_seeds_differ_per_sample_and_are_reproducible():
    seeds = [baselines.sample_seed("countries:1", i) for i in range(5)]
    assert len(set(seeds)) == 5
    assert seeds == [baselines.sample_seed("countries:1", i) for i in range(5)]
