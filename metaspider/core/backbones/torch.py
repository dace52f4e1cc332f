"""The Torch backbone: transformers on the CPU in float32, from a Hugging Face folder or a GGUF file.

Loading from the GGUF dequantises the very weights llama.cpp deploys, so a wrapper trained here sees
the same model it will run on. Layer outputs are read and offset with forward hooks on the decoder
blocks; training reuses the same hooks with gradients on."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import cast

import numpy as np
import torch

from metaspider.core.backbones.base import Backbone, Injection, Priming, common_prefix
from metaspider.core.backbones.model_lock import ModelLock
from metaspider.core.models.model_files import chat_template, fingerprint
from metaspider.core.models.registry import resolve
from metaspider.errors import MetaspiderError

_END_TOKENS = ("<|im_end|>", "<end_of_turn>", "<|endoftext|>", "<|eot_id|>", "<eos>", "</s>")


class TorchBackbone(Backbone):
    """A model on transformers (a Hugging Face folder, or a GGUF file dequantised so training sees the weights
    llama.cpp deploys): forward hooks read layer outputs and add the injection; the backbone training uses."""

    backend = "torch"

    def __init__(self, model: str, n_threads: int | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve(model)
        if n_threads:
            torch.set_num_threads(n_threads)
        kwargs = {"gguf_file": path.name} if path.is_file() else {}
        folder = path.parent if path.is_file() else path
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
            self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs)
        except Exception as exc:  # a corrupt GGUF surfaces as struct, index, key, type... errors from gguf/transformers
            raise MetaspiderError(f"transformers could not load {path} (corrupt or unsupported?): {exc}") from None
        self.model.eval().requires_grad_(False)
        self.name = model
        self.blocks = _decoder_blocks(self.model)
        self.n_layers = len(self.blocks)
        self.d_model = int(self.model.config.hidden_size)
        self.fingerprint = fingerprint(path)
        self.chat_template = chat_template(model, path)
        self.bos_token = self.tokenizer.bos_token or ""
        self.eos_token = self.tokenizer.eos_token or ""
        self._end_ids = _end_ids(self.tokenizer, self.model)
        self.lock = ModelLock(model)
        self._cache = None
        self._cached: list[int] = []
        self._positions = np.zeros(0, dtype=np.int64)

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Text to ids with no BOS added, as the llama.cpp backbone does; `special=False` keeps control-token
        spellings in untrusted text as plain text."""
        encoded = self.tokenizer(text, add_special_tokens=False, split_special_tokens=not special)
        return list(encoded["input_ids"])

    def detokenize(self, ids: Sequence[int]) -> str:
        """Ids to text, special tokens kept and no clean-up, so text round-trips exactly."""
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def is_end_of_generation(self, token_id: int) -> bool:
        """Whether this token is one of the model's end-of-turn ids."""
        return token_id in self._end_ids

    def capture(
        self,
        ids: Sequence[int],
        layers: Sequence[int],
        positions: Sequence[int] = (-1,),
        priming: Priming | None = None,
    ) -> np.ndarray:
        """`priming` is ignored: Torch is the training and parity backbone, not the latency one, and pass 2
        re-evaluating the decision token gives the same numbers."""
        wanted = [p % len(ids) for p in positions]
        keep = min(wanted)
        captured: dict[int, torch.Tensor] = {}

        def read(layer: int, hidden: torch.Tensor, rows: np.ndarray) -> None:
            index = [int(np.flatnonzero(rows == p)[0]) for p in wanted]
            captured[layer] = hidden[0, index].detach().float()

        with self.layer_hooks(readers={layer: read for layer in layers}):
            self.last_logits = np.asarray(self._forward_from(ids, keep), dtype=np.float32)
        return np.stack([captured[layer].numpy() for layer in layers]).astype(np.float32)

    def _evaluate(self, ids: Sequence[int], injection: Injection | None) -> np.ndarray:
        start = injection.inject_from if injection else len(ids)
        with self._injecting(injection):
            logits = self._forward_from(ids, min(start, len(ids) - 1))
        return logits

    def _accept(self, token_id: int, injection: Injection | None) -> np.ndarray:
        with self._injecting(injection):
            return self._forward_from([*self._cached, token_id], len(self._cached))

    @contextmanager
    def _injecting(self, injection: Injection | None) -> Iterator[None]:
        if injection is None:
            yield
            return
        start = injection.inject_from
        control = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in (injection.control or {}).items()}

        def writer(layer: int, hidden: torch.Tensor, rows: np.ndarray) -> torch.Tensor | None:
            mask = torch.as_tensor(rows >= start)
            if not bool(mask.any()):
                return None
            offset = torch.zeros_like(hidden)
            if injection.injector is not None:
                added = cast(torch.Tensor, injection.injector(layer, hidden[0, mask], rows[rows >= start]))
                offset[0, mask] = offset[0, mask] + added
            if layer in control:
                offset[0, mask] = offset[0, mask] + control[layer]
            return hidden + offset

        layers = set(control) | (set(injection.layers) if injection.injector else set())
        with self.layer_hooks(writers={layer: writer for layer in layers}):
            yield

    @contextmanager
    def layer_hooks(self, readers=None, writers=None) -> Iterator[None]:
        """Forward hooks on decoder blocks: readers see a block's output, writers may replace it.

        Callbacks get (layer, hidden [1, T, d], absolute positions [T])."""
        handles = []
        for layer in sorted(set(readers or {}) | set(writers or {})):
            handles.append(self.blocks[layer].register_forward_hook(self._hook(layer, readers or {}, writers or {})))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, layer: int, readers, writers):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            if layer in writers:
                changed = writers[layer](layer, hidden, self._positions)
                if changed is not None:
                    hidden = changed
            if layer in readers:
                readers[layer](layer, hidden, self._positions)
            if isinstance(output, tuple):
                return (hidden, *output[1:])
            return hidden

        return hook

    def _forward_from(self, ids: Sequence[int], keep: int) -> np.ndarray:
        """Run `ids`, reusing at most the first `keep` cached positions; return the last logits."""
        reuse = self._crop(common_prefix(self._cached, ids, keep))
        new = torch.tensor([list(ids[reuse:])], dtype=torch.long)
        self._positions = np.arange(reuse, len(ids))
        with torch.no_grad():
            out = self.model(
                input_ids=new,
                past_key_values=self._cache,
                use_cache=True,
                position_ids=torch.as_tensor(self._positions)[None],
                logits_to_keep=1,
            )
        self._cache = out.past_key_values
        self._cached = list(ids)
        return out.logits[0, -1].float().numpy()

    def _crop(self, n: int) -> int:
        """Keep the first `n` cached positions; returns how many were kept (0 if the cache cannot crop)."""
        extra = len(self._cached) - n
        if self._cache is None or n == 0:
            self._cache, self._cached = None, []
            return 0
        if extra > 0:
            try:
                self._cache.crop(-extra)
            except (AttributeError, ValueError, NotImplementedError):
                self._cache, self._cached = None, []
                return 0
        self._cached = self._cached[:n]
        return n

    def reset(self) -> None:
        """Forget the cached prefix."""
        self._cache, self._cached = None, []

    def _finish(self, injection: Injection | None) -> None:
        if injection is not None:
            self._crop(min(injection.inject_from, len(self._cached)))


def _decoder_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    inner = getattr(model, "model", None)
    for candidate in (getattr(inner, "layers", None), getattr(getattr(inner, "language_model", None), "layers", None)):
        if isinstance(candidate, torch.nn.ModuleList):
            return candidate
    raise MetaspiderError(f"{type(model).__name__}: cannot find the decoder blocks (model.model.layers)")


def _end_ids(tokenizer, model) -> set[int]:
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None) if model.generation_config else None
    for value in (configured, tokenizer.eos_token_id, model.config.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(value)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in _END_TOKENS if t in vocab)
    return ids
