"""Stage A: the encoder and the confidence head learn P(wrong) from cached activations alone.

No base-model forward pass: a few epochs of binary cross-entropy on [N, R, d] arrays, minutes on a CPU.
Stage B's injection converges only from a wrapper whose u already means something, so this comes first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from metaspider.core.wrapper.torch_module import MetaWrapper


@dataclass(frozen=True)
class StageASettings:
    """Stage A's optimiser and early-stopping settings (recorded in the manifest's training_data)."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    max_epochs: int = 30
    patience: int = 4
    """Epochs without a better validation loss before stopping (the best epoch's weights are kept)."""
    seed: int = 0


@dataclass(frozen=True)
class StageAResult:
    """How stage A ended: epochs run, the best epoch kept, its validation loss."""

    epochs: int
    best_epoch: int
    val_loss: float


def encoder_parameters(wrapper: MetaWrapper) -> list[torch.nn.Parameter]:
    """The parameters stage A trains: encoder and confidence head, not the meta-attention heads."""
    modules = [wrapper.readers, wrapper.shared_in, wrapper.shared_out, wrapper.shared_norm, wrapper.confidence]
    return [p for module in modules for p in module.parameters()]


def train_stage_a(
    wrapper: MetaWrapper,
    train_acts: np.ndarray,
    train_wrong: np.ndarray,
    val_acts: np.ndarray,
    val_wrong: np.ndarray,
    settings: StageASettings = StageASettings(),
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> StageAResult:
    """BCE on "wrong" with AdamW; early stopping on the validation loss. `on_epoch(epoch, train, val)`."""
    torch.manual_seed(settings.seed)
    x, y = _tensor(train_acts), torch.as_tensor(train_wrong, dtype=torch.float32)
    vx, vy = _tensor(val_acts), torch.as_tensor(val_wrong, dtype=torch.float32)
    params = encoder_parameters(wrapper)
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    best_loss, best_epoch, best_state, epoch = float("inf"), 0, None, 0
    for epoch in range(1, settings.max_epochs + 1):
        wrapper.train()
        total = 0.0
        for batch in torch.randperm(len(x), generator=generator).split(settings.batch_size):
            loss = F.binary_cross_entropy_with_logits(wrapper.confidence_logit(wrapper.encode(x[batch])), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        val_loss = F.binary_cross_entropy_with_logits(confidence_logits(wrapper, vx), vy).item()
        if on_epoch:
            on_epoch(epoch, total / len(x), val_loss)
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in wrapper.state_dict().items()}
        elif epoch - best_epoch >= settings.patience:
            break
    if best_state is not None:
        wrapper.load_state_dict(best_state)
    wrapper.eval()
    return StageAResult(epoch, best_epoch, best_loss)


@torch.no_grad()
def confidence_logits(wrapper: MetaWrapper, acts: np.ndarray | torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Uncalibrated P(wrong) logits [N], in eval mode."""
    wrapper.eval()
    acts = _tensor(acts)
    return torch.cat([wrapper.confidence_logit(wrapper.encode(chunk)) for chunk in acts.split(batch_size)])


def _tensor(acts: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(acts, dtype=np.float32)) if not isinstance(acts, torch.Tensor) else acts.float()
