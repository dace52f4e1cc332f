"""Stage B: the meta-attention heads and the doubt-token embeddings learn to speak the doubt.

Language-model loss through the frozen base model, teacher-forced on the targets `collect` stored: the
model's own answer where it was right, the refusal sentence where it was wrong, each closed by the
end-of-turn token. The prompt is masked out of the loss. Positions are injected exactly as pass 2 does in
`generated` mode: the decision point (re-evaluated with the injection) and every token after it. The
encoder and the confidence head stay as stage A left them.

The doubt token must steer the reply, or the Doubter's bias and the runtime gain would do nothing:
trained on right/wrong alone, the heads read correctness straight from the cognitive tokens and ignore
u' (measured: the same refusals at every bias). So each training example draws a Doubter bias b, feeds
u' = sigmoid(logit(u) + b), and the target follows u' where u' and the truth disagree: refuse when
u' >= 1/2 (the refusal's first token), answer with the model's own first token when u' < 1/2. Where they
agree the full stored target is used. The heads learn "refuse iff u' >= 1/2", so a bias picks the
operating point: answer when u < sigmoid(-b)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from metaspider.core.wrapper.modifiers import Modifier, doubt
from metaspider.core.wrapper.torch_module import MetaWrapper
from metaspider.errors import MetaspiderError
from metaspider.loom.frozen_tail import FrozenTail
from metaspider.loom.run_folder import Collected


@dataclass(frozen=True)
class StageBSettings:
    """Stage B's optimiser, schedule, Doubter-bias range and early-stopping settings (recorded in the manifest)."""

    bias_range: float = 3.0
    """Training biases are drawn uniformly from [-bias_range, bias_range]."""
    lr: float = 2e-4
    gate_lr_scale: float = 5.0
    weight_decay: float = 0.01
    warmup: float = 0.05
    clip: float = 1.0
    batch_size: int = 8
    epochs: int = 5
    """Several epochs because the data sets are a few hundred questions, not thousands; early stopping keeps
    the best."""
    seed: int = 0


@dataclass(frozen=True)
class StageBResult:
    """How stage B ended: epochs run, the best epoch kept, and the validation loss before and after."""

    epochs: int
    best_epoch: int
    val_loss_before: float
    val_loss: float


@dataclass
class _Example:
    acts: Tensor  # [R, d]
    states: Tensor  # [T, d]: the tail's input at every input position
    decision: int  # index of the decision point (last prompt token)
    labels: Tensor  # [T]: next-token targets, -100 where masked
    wrong: bool
    switch_first: int  # first token of the other reply: the refusal if right, its own answer if wrong


def head_parameters(wrapper: MetaWrapper) -> list[torch.nn.Parameter]:
    """The parameters stage B trains: the meta-attention heads and the doubt/sure embeddings."""
    return [*wrapper.heads.parameters(), wrapper.e_doubt, wrapper.e_sure]


def examples(data: Collected, first_token: Callable[[str], int], refusal_first: int) -> list[_Example]:
    """`first_token(text)`: the first token of an assistant reply; `refusal_first`: the refusal's."""
    if data.prefix is None:
        raise MetaspiderError("stage B needs the activations collected with the run's prefix layer")
    out = []
    for record, acts, states in zip(data.records, data.acts, data.prefix, strict=False):
        n_prompt, target = record["n_prompt"], record["target"]
        labels = torch.full((len(states),), -100, dtype=torch.long)
        labels[n_prompt - 1 :] = torch.tensor(target, dtype=torch.long)
        wrong = not record["correct"]
        switch = first_token(record["answer"].strip() or ".") if wrong else refusal_first
        out.append(
            _Example(
                torch.from_numpy(acts.astype(np.float32)),
                torch.from_numpy(states.astype(np.float32)),
                n_prompt - 1,
                labels,
                wrong,
                switch,
            )
        )
    return out


def train_stage_b(
    wrapper: MetaWrapper,
    tail: FrozenTail,
    train: list[_Example],
    val: list[_Example],
    settings: StageBSettings = StageBSettings(),
    on_step: Callable[[str, float], None] | None = None,
) -> StageBResult:
    """AdamW (gates at 5× the rate), cosine schedule with warm-up, gradient clipping, early stopping on
    the validation loss (the best epoch's weights are kept). `on_step(phase, loss)` after each batch."""
    torch.manual_seed(settings.seed)
    wrapper.eval()  # no dropout anywhere, but keep the module in inference mode for stage A's parts
    gates = [p for name, p in wrapper.heads.named_parameters() if name.endswith("gate")]
    others = [p for p in head_parameters(wrapper) if all(p is not g for g in gates)]
    optimizer = torch.optim.AdamW(
        [{"params": others, "lr": settings.lr}, {"params": gates, "lr": settings.lr * settings.gate_lr_scale}],
        weight_decay=settings.weight_decay,
    )
    from transformers import get_cosine_schedule_with_warmup

    total_steps = settings.epochs * math.ceil(len(train) / settings.batch_size)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, round(settings.warmup * total_steps)), total_steps)
    generator = torch.Generator().manual_seed(settings.seed)
    trainable = head_parameters(wrapper)
    with _only(wrapper, trainable):
        before = evaluate_loss(wrapper, tail, val, settings.batch_size, on_step)
        best_loss, best_epoch, best_state, epoch = before, 0, _snapshot(wrapper), 0
        for epoch in range(1, settings.epochs + 1):
            for index in torch.randperm(len(train), generator=generator).split(settings.batch_size):
                biases = (torch.rand(len(index), generator=generator) * 2 - 1) * settings.bias_range
                loss = batch_loss(wrapper, tail, [train[i] for i in index], biases)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, settings.clip)
                optimizer.step()
                schedule.step()
                if on_step:
                    on_step("train", loss.item())
            val_loss = evaluate_loss(wrapper, tail, val, settings.batch_size, on_step)
            if val_loss < best_loss:
                best_loss, best_epoch, best_state = val_loss, epoch, _snapshot(wrapper)
    wrapper.load_state_dict(best_state)
    return StageBResult(epoch, best_epoch, before, best_loss)


def batch_loss(wrapper: MetaWrapper, tail: FrozenTail, batch: list[_Example], biases: Tensor | None = None) -> Tensor:
    """Mean next-token cross-entropy over the target tokens of a batch, with the injection on; `biases`
    [B] are the Doubter biases fed back (None: 0, u as calibrated)."""
    biases = torch.zeros(len(batch)) if biases is None else biases
    states, labels, decision = _pad(batch)
    hidden, u_mod = _injected_hidden(wrapper, tail, batch, states, decision, biases)
    for i, ex in enumerate(batch):
        if bool(u_mod[i] >= 0.5) != ex.wrong:
            labels[i] = -100
            labels[i, ex.decision] = ex.switch_first
    rows = labels != -100
    return F.cross_entropy(tail.logits(hidden[rows]), labels[rows])


@torch.no_grad()
def first_tokens(
    wrapper: MetaWrapper, tail: FrozenTail, data: list[_Example], modifier: Modifier, batch_size: int = 16
) -> Tensor:
    """The greedy first reply token of each example under the injection with `modifier`: whether pass 2
    opens with the refusal is decided there, so this predicts the Doubter's refusals without generating."""
    out = []
    for start in range(0, len(data), batch_size):
        batch = data[start : start + batch_size]
        states, _, decision = _pad(batch)
        hidden, _ = _injected_hidden(wrapper, tail, batch, states, decision, torch.full((len(batch),), modifier.bias))
        out.append(tail.logits(hidden[torch.arange(len(batch)), decision]).argmax(-1))
    return torch.cat(out)


def _injected_hidden(
    wrapper: MetaWrapper, tail: FrozenTail, batch: list[_Example], states: Tensor, decision: Tensor, biases: Tensor
) -> tuple[Tensor, Tensor]:
    """(final hidden states, u' per example) with the doubter's u' = sigmoid(logit(u) + bias) fed back."""
    with torch.no_grad():
        tokens = wrapper.encode(torch.stack([ex.acts for ex in batch]))
        u = wrapper.calibrate(wrapper.confidence_logit(tokens))
        u_mod = doubt(u, biases)
    memory = wrapper.memory(tokens, u_mod)
    steps = torch.arange(states.shape[1])[None] - decision[:, None]  # [B, T]: generated step of each position
    scale = ((steps >= 0).float() * wrapper.damping(steps.clamp(min=0))).unsqueeze(-1)

    def offsets(block: int, hidden: Tensor) -> Tensor | None:
        if str(block) not in wrapper.heads:
            return None
        return scale * wrapper.offsets(block, hidden, memory, 1.0)

    return tail.hidden(states, offsets), u_mod


def evaluate_loss(
    wrapper: MetaWrapper,
    tail: FrozenTail,
    data: list[_Example],
    batch_size: int,
    on_step: Callable[[str, float], None] | None = None,
) -> float:
    """Token-weighted mean loss over `data`."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = data[start : start + batch_size]
            n = sum(int((ex.labels != -100).sum()) for ex in batch)
            loss = batch_loss(wrapper, tail, batch).item()
            total, count = total + loss * n, count + n
            if on_step:
                on_step("val", loss)
    return total / max(count, 1)


def _pad(batch: list[_Example]) -> tuple[Tensor, Tensor, Tensor]:
    length = max(len(ex.states) for ex in batch)
    d = batch[0].states.shape[1]
    states = torch.zeros(len(batch), length, d)
    labels = torch.full((len(batch), length), -100, dtype=torch.long)
    for i, ex in enumerate(batch):
        states[i, : len(ex.states)] = ex.states
        labels[i, : len(ex.labels)] = ex.labels
    return states, labels, torch.tensor([ex.decision for ex in batch])


def _snapshot(wrapper: MetaWrapper) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in wrapper.state_dict().items()}


class _only:
    """Gradients for `params` only, for the duration of stage B."""

    def __init__(self, wrapper: MetaWrapper, params: list[torch.nn.Parameter]):
        self._wrapper, self._params = wrapper, params

    def __enter__(self) -> None:
        self._wrapper.requires_grad_(False)
        for p in self._params:
            p.requires_grad_(True)

    def __exit__(self, *exc) -> None:
        self._wrapper.requires_grad_(True)
