"""`collect`: run the frozen base model over a data set and keep what training and evaluation need.

Per question: the greedy pass-1 answer, whether it is right, the baselines of both moments (before the
answer: max-softmax probability and entropy of the first answer token; after it: mean probability of the
chosen tokens, mean predictive entropy, P(True) and, on a hash-picked subset, sample consistency), the
read-layer outputs at the decision point and at the answer's last token and, for stage B, the output of the block below the lowest injected one at every position of prompt + target.
The target is the model's own answer when it was right and the refusal sentence when it was wrong,
closed by the end-of-turn token, exactly what stage B teaches. llama.cpp does this work: it is the fast
backbone, and its layer outputs agree with the Torch backbone's (cosine ~0.999)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metaspider.core.backbones.base import Backbone, SamplingParams, TokenOut, common_prefix
from metaspider.core.backbones.chat_template import render_chat
from metaspider.core.wrapper.support import first_token_stats
from metaspider.errors import MetaspiderError
from metaspider.loom import baselines
from metaspider.loom.datasets import Item, is_correct, load_items, sample_items, split_items, to_messages
from metaspider.loom.progress import progress_bar
from metaspider.loom.run_folder import RunConfig, RunFolder, dataset_key, write_text
from metaspider.loom.scoring import REFUSAL_SENTENCE, is_refusal

ANSWER_PARAMS = SamplingParams(max_tokens=32, temperature=0.0, stop=("\n",))
"""Short greedy answers, one line: the questions ask for a few words."""
CHUNK_SIZE = 32
TIMES_FILE = "collect_times.json"


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
    """A greedy answer and the confidences read off its own tokens."""

    text: str
    msp: float
    """Mean probability of the chosen tokens (greedy: the max-softmax probability)."""
    entropy: float
    """Mean predictive entropy (nats) over the answer's tokens."""
    msp_first: float = 0.0
    """Max-softmax probability of the first answer token (the full distribution at the decision point)."""
    entropy_first: float = 0.0
    """Entropy (nats) of that distribution."""
    token_ids: tuple[int, ...] = ()


@dataclass
class CollectedItem:
    """What one question adds to a run: its record and its arrays."""

    record: dict
    acts: np.ndarray
    """[R, d] float16: read-layer outputs at the decision point."""
    acts_post: np.ndarray
    """[R, d] float16: read-layer outputs at the answer's last token (the decision point for an empty answer)."""
    prefix: np.ndarray | None = None
    """[T, d] float16: the prefix layer's output at every input position of prompt + target (stage B)."""


def collect(
    run: RunFolder,
    backbone: Backbone,
    config: RunConfig,
    dataset: str,
    split: str,
    limit: int | None = None,
    consistency: int = 0,
) -> CollectSummary:
    """Collect the questions of `split` not yet stored in `run` (a hash-picked sample of `limit` of them).
    Sample consistency costs five generations a question: it runs on a hash-picked `consistency` of the
    split's questions only (0: none)."""
    if backbone.fingerprint != config.fingerprint:
        raise MetaspiderError(
            f"{run.path} was collected with fingerprint {config.fingerprint}, not {backbone.fingerprint}"
        )
    run.save_config(config)
    items = sample_items(split_items(load_items(dataset), split), limit)
    done = run.stored_ids(dataset, split)
    todo = [item for item in items if item.id not in done]
    with_consistency = {item.id for item in sample_items(items, consistency)} if consistency > 0 else set()
    writer = ChunkWriter(run, dataset, split)
    collect_item = ItemCollector(backbone, config)
    started = time.monotonic()
    with progress_bar() as progress:
        task = progress.add_task(
            f"collect {dataset}/{split}", total=len(items), completed=len(items) - len(todo), info=""
        )
        for item in todo:
            writer.add(collect_item(item, consistency=item.id in with_consistency))
            progress.advance(task)
        writer.flush()
    record_time(run, dataset, split, time.monotonic() - started, len(todo))
    stored = run.load(dataset, split)
    return CollectSummary(dataset, split, len(stored.records), len(todo), float(np.mean(stored.labels("correct"))))


def record_time(run: RunFolder, dataset: str, split: str, seconds: float, n_new: int) -> None:
    """Add one collect's wall time to R/collect_times.json (summed over resumed sessions)."""
    path = run.path / TIMES_FILE
    times = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    entry = times.setdefault(f"{dataset_key(dataset)}/{split}", {"seconds": 0.0, "questions": 0, "sessions": 0})
    entry["seconds"] = round(entry["seconds"] + seconds, 1)
    entry["questions"] += n_new
    entry["sessions"] += 1
    write_text(path, json.dumps(times, indent=2, sort_keys=True) + "\n")


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
        self._options: tuple[list[int], list[int]] | None = None

    def __call__(self, item: Item, consistency: bool = False) -> CollectedItem:
        """Everything the run keeps of one question; `consistency` also samples k answers (5 generations)."""
        backbone, config = self.backbone, self.config
        messages = to_messages(item)
        ids = backbone.chat_ids(messages)
        read = [self.layers.index(layer) for layer in config.read_layers]
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
                "msp_first": answer.msp_first,
                "entropy_first": answer.entropy_first,
                "n_prompt": len(ids),
                "n_answer": len(answer.token_ids),
            }
            acts = states[read, -1, :]
            if answer.token_ids:
                acts_post = backbone.capture([*ids, *answer.token_ids], config.read_layers, positions=(-1,))[:, 0, :]
            else:
                acts_post = acts
            record["p_true"] = self.p_true(item, answer.text)
            if consistency:
                samples = sample_answers(backbone, ids, item.id)
                record["consistency"] = baselines.consistency_share(item, answer.text, samples)
            prefix = None
            if config.prefix_layer is not None:
                target = target_ids(backbone, messages, answer.text.strip() if correct else REFUSAL_SENTENCE)
                prefix = _prefix_states(
                    backbone, ids, target, config.prefix_layer, states[self.layers.index(config.prefix_layer)]
                )
                record["target"] = target
                record["prefix_len"] = len(prefix)
        return CollectedItem(record, acts.astype(np.float16), acts_post.astype(np.float16), prefix)

    def p_true(self, item: Item, answer: str) -> float:
        """P(True): the model shown the question and its own answer, asked whether the answer is true."""
        if self._options is None:
            self._options = baselines.option_token_ids(self.backbone.tokenize)
        logits = self.backbone.next_logits(self.backbone.chat_ids(baselines.p_true_messages(item, answer)))
        return baselines.p_true_from_logits(logits, *self._options)

    def _prompt_states(self, ids: list[int]) -> np.ndarray:
        shared = min(common_prefix(self._ids, ids, len(ids)), len(ids) - 1)
        fresh = self.backbone.capture(ids, self.layers, positions=range(shared, len(ids)))
        states = np.concatenate([self._states[:, :shared], fresh], axis=1)
        self._ids, self._states = list(ids), states
        return states


def greedy_answer(backbone: Backbone, ids: Sequence[int]) -> Answer:
    """The greedy answer with its mean token probability and entropy, and the first token's
    max-softmax probability and entropy (for greedy decoding, the chosen token is the most likely)."""
    tokens = [t for t in backbone.generate(ids, ANSWER_PARAMS) if isinstance(t, TokenOut)]
    scored = [t for t in tokens if t.token_id >= 0]
    text = "".join(t.text for t in tokens)
    if not scored:  # the first token ended the turn: read the decision point's distribution directly
        msp_first, entropy_first = first_token_stats(backbone.next_logits(ids))
        return Answer(text, 0.0, 0.0, msp_first, entropy_first)
    msp = sum(math.exp(t.logprob) for t in scored) / len(scored)
    entropy = sum(t.entropy for t in scored) / len(scored)
    first = scored[0]
    return Answer(
        text,
        float(msp),
        float(entropy),
        math.exp(first.logprob),
        float(first.entropy),
        tuple(t.token_id for t in scored),
    )


def sample_answers(
    backbone: Backbone, ids: Sequence[int], item_id: str, k: int = baselines.CONSISTENCY_SAMPLES
) -> list[str]:
    """k answers sampled at temperature 0.7, seeded per item, otherwise as the greedy answer."""
    texts = []
    for index in range(k):
        params = SamplingParams(
            max_tokens=ANSWER_PARAMS.max_tokens,
            temperature=baselines.CONSISTENCY_TEMPERATURE,
            seed=baselines.sample_seed(item_id, index),
            stop=ANSWER_PARAMS.stop,
        )
        texts.append(backbone.complete(ids, params)[0])
    return texts


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


def _prefix_states(
    backbone: Backbone, ids: list[int], target: list[int], layer: int, prompt_states: np.ndarray
) -> np.ndarray:
    """The layer's output at every input position of prompt + target (the last target token is only a
    label). The prompt part was captured already; only the target tokens are evaluated here."""
    full = ids + target
    rest = range(len(ids), len(full) - 1)
    parts = [prompt_states]
    if len(rest):
        parts.append(backbone.capture(full, [layer], positions=rest)[0])
    return np.concatenate(parts).astype(np.float16)


class ChunkWriter:
    """Buffers collected questions and writes them to the run folder in chunks of `CHUNK_SIZE`, so an
    interrupted collect loses at most one chunk; the single-process and the Ray collect both write here."""

    def __init__(self, run: RunFolder, dataset: str, split: str):
        self.run, self.dataset, self.split = run, dataset, split
        self.items: list[CollectedItem] = []

    def add(self, item: CollectedItem) -> None:
        """Keep one question's results; a full chunk is written at once."""
        self.items.append(item)
        if len(self.items) == CHUNK_SIZE:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered (nothing to do when empty)."""
        if not self.items:
            return
        arrays = {
            "acts": np.stack([item.acts for item in self.items]),
            "acts_post": np.stack([item.acts_post for item in self.items]),
        }
        prefixes = [item.prefix for item in self.items if item.prefix is not None]
        if prefixes:
            arrays["prefix"] = np.concatenate(prefixes)
        self.run.write_chunk(self.dataset, self.split, [item.record for item in self.items], arrays)
        self.items = []
