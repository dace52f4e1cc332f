"""The wrapper in torch: encoder → cognitive tokens → confidence → doubt token → meta-attention offsets.

One module serves training and Torch inference. There is no dropout anywhere, so training mode can never
leak into inference. `numpy_math.py` is the same math for deployment without torch; keep both in step
(tests compare them).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from metaspider.core.numerics import fit_platt
from metaspider.core.wrapper.config import FITTED_GROUPS, WrapperConfig
from metaspider.errors import MetaspiderError

UP_INIT_STD = 1e-3


class ReadProjection(nn.Module):
    """One read layer's entry into the encoder: LayerNorm → Linear(d→b) → GELU, scaled by tanh(gate)."""

    def __init__(self, config: WrapperConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(config.d_model)
        self.proj = nn.Linear(config.d_model, config.bottleneck)
        self.gate = nn.Parameter(torch.full((1,), config.gate_init))

    def forward(self, x: Tensor) -> Tensor:
        """One read layer's output [B, d] → its gated bottleneck [B, b]."""
        return torch.tanh(self.gate) * F.gelu(self.proj(self.norm(x)))


class ConfidenceHead(nn.Module):
    """Attention pooling over the cognitive tokens with one learned query, then an MLP to one logit."""

    def __init__(self, config: WrapperConfig) -> None:
        super().__init__()
        # A zero query starts as a plain mean over tokens; its gradient is not zero, so it learns.
        self.query = nn.Parameter(torch.zeros(config.d_model))
        self.hidden = nn.Linear(config.d_model, config.bottleneck)
        self.out = nn.Linear(config.bottleneck, 1)

    def forward(self, tokens: Tensor) -> Tensor:
        """Cognitive tokens [B, R, d] → the confidence logit [B]."""
        return self.out(self.bottleneck(tokens)).squeeze(-1)  # [B]

    def bottleneck(self, tokens: Tensor) -> Tensor:
        """Cognitive tokens [B, R, d] → the head's hidden vector [B, b], the space the wrapper's support is
        measured in."""
        scores = tokens @ self.query / math.sqrt(tokens.shape[-1])  # [B, R]
        pooled = (scores.softmax(dim=-1).unsqueeze(-1) * tokens).sum(dim=1)  # [B, d]
        return F.gelu(self.hidden(pooled))


class MetaAttentionHead(nn.Module):
    """Bottleneck cross-attention from the hidden states of one block to the memory tokens, tanh-gated.

    No causal mask: the memory is a set of summaries of the prompt, not a sequence.
    """

    def __init__(self, config: WrapperConfig) -> None:
        super().__init__()
        d, b = config.d_model, config.bottleneck
        self.n_heads = config.n_heads
        self.norm = nn.LayerNorm(d)
        self.down = nn.Linear(d, b)
        self.q = nn.Linear(b, b)
        self.k = nn.Linear(d, b)
        self.v = nn.Linear(d, b)
        self.up = nn.Linear(b, d)
        # Small, not zero: a zero Up would cut the gradient to everything before it.
        nn.init.normal_(self.up.weight, std=UP_INIT_STD)
        nn.init.zeros_(self.up.bias)
        self.gate = nn.Parameter(torch.full((1,), config.gate_init))

    def forward(self, hidden: Tensor, memory: Tensor) -> Tensor:
        """hidden [B, T, d], memory [B, M, d] → gated offset [B, T, d]."""
        B, T, _ = hidden.shape
        M = memory.shape[1]
        q = self.q(self.down(self.norm(hidden)))  # [B, T, b]
        k, v = self.k(memory), self.v(memory)  # [B, M, b]
        q = q.view(B, T, self.n_heads, -1).transpose(1, 2)  # [B, H, T, hb]
        k = k.view(B, M, self.n_heads, -1).transpose(1, 2)  # [B, H, M, hb]
        v = v.view(B, M, self.n_heads, -1).transpose(1, 2)
        att = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)  # [B, H, T, M]
        y = (att @ v).transpose(1, 2).reshape(B, T, -1)  # [B, T, b]
        return torch.tanh(self.gate) * self.up(y)

    def pooled(self, memory: Tensor) -> Tensor:
        """The offset for a single memory token [B, 1, d] → [B, d]: softmax over one key is 1, so the query
        side drops out and the offset is the same at every position."""
        return torch.tanh(self.gate) * self.up(self.v(memory[:, 0]))


class MetaWrapper(nn.Module):
    """The trainable wrapper (encoder, confidence head, doubt embeddings, meta-attention heads) as one Torch
    module: stage A and stage B train it, the Torch backbone runs it, and its state dict is the wrapper file."""

    calib_a: Tensor
    calib_b: Tensor

    def __init__(self, config: WrapperConfig) -> None:
        super().__init__()
        self.config = config
        d, b = config.d_model, config.bottleneck
        self.readers = nn.ModuleDict({str(layer): ReadProjection(config) for layer in config.read_layers})
        self.shared_in = nn.Linear(b, d)
        self.shared_out = nn.Linear(d, d)
        self.shared_norm = nn.LayerNorm(d)
        self.confidence = ConfidenceHead(config)
        self.register_buffer("calib_a", torch.ones(1))
        self.register_buffer("calib_b", torch.zeros(1))
        # Unit scale per dimension, like the LayerNormed cognitive tokens they sit beside.
        self.e_doubt = nn.Parameter(torch.randn(d))
        self.e_sure = nn.Parameter(torch.randn(d))
        self.heads = nn.ModuleDict({str(layer): MetaAttentionHead(config) for layer in config.inject_layers})
        # Support, fallbacks, the hybrid stack and the post-answer head: fitted statistics, not trained by
        # gradient. Stored in the state dict so the wrapper file holds them; their math is NumPy (`support.py`),
        # shared by both runtimes.
        shapes = config.weight_shapes()
        for group in FITTED_GROUPS:
            names = {name.split(".", 1)[1]: shape for name, shape in shapes.items() if name.split(".", 1)[0] == group}
            if names:
                holder = nn.Module()
                for name, shape in names.items():
                    holder.register_buffer(name, torch.zeros(shape))
                setattr(self, group, holder)

    def encode(self, acts: Tensor) -> Tensor:
        """Read-layer outputs at the decision point [B, R, d] (in read_layers order) → cognitive tokens [B, R, d]."""
        if acts.shape[1:] != (len(self.config.read_layers), self.config.d_model):
            raise ValueError(
                f"acts must be [B, {len(self.config.read_layers)}, {self.config.d_model}], got {tuple(acts.shape)}"
            )
        acts = acts.to(self.shared_in.weight.dtype)
        per_layer = [reader(acts[:, i]) for i, reader in enumerate(self.readers.values())]
        x = torch.stack(per_layer, dim=1)  # [B, R, b]
        return self.shared_norm(self.shared_out(F.gelu(self.shared_in(x))))

    def confidence_logit(self, tokens: Tensor) -> Tensor:
        """Uncalibrated logit of P(wrong) [B]; training's BCE works on this."""
        return self.confidence(tokens)

    def uncertainty(self, acts: Tensor) -> tuple[Tensor, Tensor]:
        """(u [B] = calibrated P(the base answer is wrong), cognitive tokens [B, R, d])."""
        tokens = self.encode(acts)
        return self.calibrate(self.confidence_logit(tokens)), tokens

    def calibrate(self, logit: Tensor) -> Tensor:
        """u = sigmoid(a · logit + b) with the stored Platt parameters."""
        return torch.sigmoid(self.calib_a * logit + self.calib_b)

    @torch.no_grad()
    def fit_calibration(self, logits: Tensor, wrong: Tensor) -> tuple[float, float]:
        """Platt scaling on a validation split: fit a, b of sigmoid(a·logit + b) to the 0/1 `wrong` labels."""
        logits, wrong = logits.detach().double().flatten(), wrong.detach().double().flatten()
        if logits.numel() != wrong.numel():
            raise ValueError(f"{logits.numel()} logits but {wrong.numel()} labels")
        if wrong.min() == wrong.max():
            raise MetaspiderError(
                f"cannot calibrate: the calibration split ({wrong.numel()} items) holds only "
                f"{'wrong' if wrong[0] else 'correct'} answers; it needs both"
            )
        a, b = fit_platt(logits.numpy(), wrong.numpy())
        self.calib_a.fill_(a)
        self.calib_b.fill_(b)
        return a, b

    def memory(self, tokens: Tensor, u_mod: Tensor) -> Tensor:
        """Cognitive tokens [B, R, d] plus the doubt token for u' [B] → memory [B, R+1, d], or [B, 1, d]
        (their mean) in pooled mode."""
        u = u_mod.to(tokens.dtype).unsqueeze(-1)  # [B, 1]
        doubt = u * self.e_doubt + (1 - u) * self.e_sure  # [B, d]
        memory = torch.cat([tokens, doubt.unsqueeze(1)], dim=1)
        if self.config.injection == "pooled":
            return memory.mean(dim=1, keepdim=True)
        return memory

    def damping(self, steps: Tensor) -> Tensor:
        """Offset scale per generated step: floor + (1 - floor)·exp(-step / tau)."""
        floor, tau = self.config.damping_floor, self.config.damping_tau
        return floor + (1 - floor) * torch.exp(-steps.to(torch.float32) / tau)

    def offsets(self, layer: int, hidden: Tensor, memory: Tensor, gain: float, steps: Tensor | None = None) -> Tensor:
        """What to add to block `layer`'s output hidden [B, T, d]. `steps` [T]: generated step of each position
        (None: no damping). Computed in the wrapper's dtype, returned in hidden's."""
        head = self._head(layer)
        out = gain * head(hidden.to(self.shared_in.weight.dtype), memory)
        if steps is not None:
            out = out * self.damping(steps).to(out.dtype).view(1, -1, 1)
        return out.to(hidden.dtype)

    def pooled_offsets(self, memory: Tensor, gain: float) -> dict[int, Tensor]:
        """Position-independent offsets {layer: [B, d]} for a one-token memory: a control vector per layer."""
        if memory.shape[1] != 1:
            raise ValueError(f"pooled offsets need a one-token memory, got {memory.shape[1]} tokens")
        return {layer: gain * self._head(layer).pooled(memory) for layer in self.config.inject_layers}

    def _head(self, layer: int) -> MetaAttentionHead:
        if str(layer) not in self.heads:
            raise ValueError(f"block {layer} is not an injection layer; they are {self.config.inject_layers}")
        return cast(MetaAttentionHead, self.heads[str(layer)])
