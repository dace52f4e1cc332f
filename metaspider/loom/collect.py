"""`collect`: run the frozen base model over a data set and keep what training and evaluation need.

Per question: the greedy pass-1 answer, whether it is right, the baseline confidences (mean probability
of the chosen tokens, mean predictive entropy), the read-layer outputs at the decision point and, for
stage B, the output of the block below the lowest injected one at every position of prompt + target.
The target is the model's own answer when it was right and the refusal sentence when it was wrong,
closed by the end-of-turn token, exactly what stage B teaches. llama.cpp does this work: it is the fast
backbone, and its layer outputs agree with the Torch backbone's (cosine ~0.999)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metaspider.core.backbones.base import Backbone, SamplingParams, TokenOut, common_prefix
from metaspider.core.backbones.chat_template import render_chat
from metaspider.errors import MetaspiderError
from metaspider.loom.datasets import Item, is_correct, load_items, sample_items, split_items, to_messages
from metaspider.loom.progress import progress_bar
from metaspider.loom.run_folder import RunConfig, RunFolder
from metaspider.loom.scoring import REFUSAL_SENTENCE, is_refusal

ANSWER_PARAMS = SamplingParams(max_tokens=32, temperature=0.0, stop=("\n",))
"""Short greedy answers, one line: the questions ask for a few words."""
CHUNK_SIZE = 32


@dataclass(frozen=True)
class CollectSummary:
    """What one collect did: how many items the split has and how many were new (the rest were stored already)."""
    dataset: str
    split: str
    n_items: int
    n_new: int
    accuracy: float


@dataclass(frozen=True)
class Answer:
    """The base model's greedy pass-1 answer with the baselines computed from its tokens."""
    text: str
    msp: float
    """Mean probability of the chosen tokens (greedy: the max-softmax probability)."""
    entropy: float
    """Mean predictive entropy (nats) over the answer's tokens."""


def collect(run: RunFolder, backbone: Backbone, config: RunConfig, dataset: str, split: str, limit: int | None = None) -> CollectSummary:
    """Collect the questions of `split` not yet stored in `run` (a hash-picked sample of `limit` of them)."""
    if backbone.fingerprint != config.fingerprint:
        raise MetaspiderError(f"{run.path} was collected with fingerprint {config.fingerprint}, not {backbone.fingerprint}")
    run.save_config(config)
    items = sample_items(split_items(load_items(dataset), split), limit)
    done = run.stored_ids(dataset, split)
    todo = [item for item in items if item.id not in done]
    records, acts, prefixes = [], [], []
    collect_item = ItemCollector(backbone, config)
    with progress_bar() as progress:
        task = progress.add_task(f"collect {dataset}/{split}", total=len(items), completed=len(items) - len(todo), info="")
        for item in todo:
            record, item_acts, prefix = collect_item(item)
            records.append(record)
            acts.append(item_acts)
            if prefix is not None:
                prefixes.append(prefix)
            if len(records) == CHUNK_SIZE:
                _flush(run, dataset, split, records, acts, prefixes)
            progress.advance(task)
        _flush(run, dataset, split, records, acts, prefixes)
    stored = run.load(dataset, split)
    return CollectSummary(dataset, split, len(stored.records), len(todo), float(np.mean(stored.labels("correct"))))


class ItemCollector:
    """Collects one question at a time, reusing the previous prompt's layer outputs for the positions the
    prompts share (the system prompt and the chat header): causal attention makes them identical, and
    the backbone's cache then only evaluates the new tokens."""

    def __init__(self, backbone: Backbone, config: RunConfig):
        self.backbone = backbone
        self.config = config
        self.layers = sorted(set(config.read_layers) | ({config.prefix_layer} - {None}))
        self._ids: list[int] = []
        self._states = np.zeros((len(self.layers), 0, backbone.d_model), dtype=np.float32)

    def __call__(self, item: Item) -> tuple[dict, np.ndarray, np.ndarray | None]:
        backbone, config = self.backbone, self.config
        messages = to_messages(item)
        ids = backbone.chat_ids(messages)
        with backbone.lock:
            states = self._prompt_states(ids)  # [L, P, d]
            answer = greedy_answer(backbone, ids)
            correct = is_correct(item, answer.text)
            record = {
                "id": item.id,
                "subject": item.subject,
                "answer": answer.text,
                "correct": bool(correct),
                "refused": is_refusal(answer.text),
                "msp": answer.msp,
                "entropy": answer.entropy,
                "n_prompt": len(ids),
            }
            acts = states[[self.layers.index(layer) for layer in config.read_layers], -1, :]
            prefix = None
            if config.prefix_layer is not None:
                target = target_ids(backbone, messages, answer.text.strip() if correct else REFUSAL_SENTENCE)
                prefix = _prefix_states(backbone, ids, target, config.prefix_layer, states[self.layers.index(config.prefix_layer)])
                record["target"] = target
                record["prefix_len"] = len(prefix)
        return record, acts.astype(np.float16), prefix

    def _prompt_states(self, ids: list[int]) -> np.ndarray:
        shared = min(common_prefix(self._ids, ids, len(ids)), len(ids) - 1)
        fresh = self.backbone.capture(ids, self.layers, positions=range(shared, len(ids)))
        states = np.concatenate([self._states[:, :shared], fresh], axis=1)
        self._ids, self._states = list(ids), states
        return states


def greedy_answer(backbone: Backbone, ids: Sequence[int]) -> Answer:
    """The base model's own greedy answer to `ids` and its max-softmax and entropy baselines."""
    tokens = [t for t in backbone.generate(ids, ANSWER_PARAMS) if isinstance(t, TokenOut)]
    scored = [t for t in tokens if t.token_id >= 0]
    text = "".join(t.text for t in tokens)
    if not scored:
        return Answer(text, 0.0, 0.0)
    msp = sum(math.exp(t.logprob) for t in scored) / len(scored)
    entropy = sum(t.entropy for t in scored) / len(scored)
    return Answer(text, float(msp), float(entropy))


def target_ids(backbone: Backbone, messages: list[dict], reply: str) -> list[int]:
    """The reply's tokens as the chat template writes an assistant turn, up to and including the first
    end-of-turn token: without it the model would learn to refuse and then ramble on."""
    prompt = backbone.render(messages)
    full = render_chat(
        backbone.chat_template,
        [*messages, {"role": "assistant", "content": reply}],
        bos_token=backbone.bos_token,
        eos_token=backbone.eos_token,
        add_generation_prompt=False,
    )
    if not full.startswith(prompt):
        raise MetaspiderError(f"{backbone.name}'s chat template does not extend the prompt with the assistant turn")
    ids = backbone.tokenize(full[len(prompt) :])
    for index, token in enumerate(ids):
        if backbone.is_end_of_generation(token):
            return ids[: index + 1]
    raise MetaspiderError(f"{backbone.name}'s chat template closes an assistant turn with no end-of-turn token")


def _prefix_states(backbone: Backbone, ids: list[int], target: list[int], layer: int, prompt_states: np.ndarray) -> np.ndarray:
    """The layer's output at every input position of prompt + target (the last target token is only a
    label). The prompt part was captured already; only the target tokens are evaluated here."""
    full = ids + target
    rest = range(len(ids), len(full) - 1)
    parts = [prompt_states]
    if len(rest):
        parts.append(backbone.capture(full, [layer], positions=rest)[0])
    return np.concatenate(parts).astype(np.float16)


def _flush(run: RunFolder, dataset: str, split: str, records: list, acts: list, prefixes: list) -> None:
    if not records:
        return
    arrays = {"acts": np.stack(acts)}
    if prefixes:
        arrays["prefix"] = np.concatenate(prefixes)
    run.write_chunk(dataset, split, list(records), arrays)
    records.clear()
    acts.clear()
    prefixes.clear()
