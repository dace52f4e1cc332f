"""The frozen base model from one block up: what stage B backpropagates through.

Nothing below the lowest injected block depends on the wrapper, so that block's input (the output of
the block below, kept by `collect`) is all stage B needs from the lower model. `collect` reads it from
llama.cpp, whose layer outputs match the Torch backbone's (cosine ~0.999): a Torch forward over every
question would cost more than the rest of the rebuild together. Only the tail runs, with
the same offsets the Torch backbone's injection hook adds, and backward stops where the tail starts.
The tail is checked against the full model once, so an architecture it does not reproduce is refused
instead of silently trained on the wrong function."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from metaspider.core.backbones.torch import TorchBackbone
from metaspider.errors import MetaspiderError

Offsets = Callable[[int, Tensor], Tensor | None]
"""(block, hidden [B, T, d]) → offsets to add to that block's output, or None."""


class FrozenTail:
    """The Torch backbone's blocks from `first_block` on, plus the final norm and LM head, run on stored
    activations: stage B trains through the frozen model without re-running the layers below."""

    def __init__(self, backbone: TorchBackbone, first_block: int):
        model = backbone.model
        inner = model.model
        for part in ("rotary_emb", "norm"):
            if not hasattr(inner, part):
                raise MetaspiderError(f"stage B does not support {type(model).__name__}: it has no model.{part}")
        self.backbone = backbone
        self.first_block = first_block
        self._rotary, self._norm, self._head = inner.rotary_emb, inner.norm, model.get_output_embeddings()
        self._blocks = list(backbone.blocks)[first_block:]

    def hidden(self, states: Tensor, offsets: Offsets | None = None) -> Tensor:
        """Final normed hidden states [B, T, d] from the input of `first_block` [B, T, d].

        Sequences are right-padded: causal attention never lets a real position see the padding."""
        positions = torch.arange(states.shape[1])[None].expand(states.shape[0], -1)
        rotary = self._rotary(states, positions)
        h = states
        for index, block in enumerate(self._blocks, start=self.first_block):
            h = block(h, attention_mask=None, position_embeddings=rotary, position_ids=positions)
            h = h[0] if isinstance(h, tuple) else h
            if offsets is not None:
                extra = offsets(index, h)
                if extra is not None:
                    h = h + extra
        return self._norm(h)

    def logits(self, hidden: Tensor) -> Tensor:
        """Hidden states → next-token logits (final norm and LM head)."""
        return self._head(hidden)

    @torch.no_grad()
    def check(self, ids: list[int], tolerance: float = 1e-3) -> None:
        """The tail on the real lower model's states must give the full model's logits."""
        x = torch.tensor([ids])
        out = self.backbone.model(input_ids=x, output_hidden_states=True)
        tail = self.logits(self.hidden(out.hidden_states[self.first_block]))
        error = float((tail - out.logits).abs().max())
        if error > tolerance * max(1.0, float(out.logits.abs().max())):
            raise MetaspiderError(
                f"stage B cannot reproduce {type(self.backbone.model).__name__} from block {self.first_block} on "
                f"(max logit error {error:.3g}); this architecture is not supported for stage B"
            )
