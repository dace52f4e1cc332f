"""The llama.cpp backbone: stock llama-cpp-python from PyPI, driven through its low-level API.

Layer outputs are reached through the context's evaluation callback: asked about every graph node, it
claims the `l_out-L` tensors we need; once one is computed we copy it out, and for injection add the
offsets and copy it back before the next block reads it. Constant offsets go through llama.cpp's own
control-vector slot. Both are global to a context, so one context serves one request at a time
(callers hold `lock`).

llama.cpp asks the callback about every graph node (about 900 per token on the default model), and that
costs a Python call each time even when nothing is wanted. So the backbone keeps two contexts on the
one model: a *reader* with the callback, used only while something is read or written, and a *plain*
one for everything else. Pass 1's cache moves from the reader to the plain context with llama.cpp's
sequence-state copy (a memcpy of the prompt's KV), so switching costs no second prefill.

With a `Priming`, pass 1 also builds pass 2's injection inside the callback, once the last read layer
of the decision token is out, and writes it into the decision token's higher layers in the same
evaluation: pass 2's first token then needs no decode step of its own."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaBatch, LlamaContext, LlamaModel

from metaspider.core.backbones.base import Backbone, Injection, Priming, common_prefix
from metaspider.core.backbones.ggml_tensors import TensorNames, read_rows, write_rows
from metaspider.core.backbones.model_lock import ModelLock
from metaspider.core.models.model_files import chat_template, fingerprint
from metaspider.core.models.registry import resolve
from metaspider.errors import MetaspiderError

_PREFIX = b"l_out-"


class LlamaCppBackbone(Backbone):
    """A GGUF model on stock llama-cpp-python: reads layer outputs through the evaluation callback and
    injects through it (tokens) or through a control vector (pooled), with no fork or patch of llama.cpp."""

    backend = "llama_cpp"

    def __init__(self, model: str, n_ctx: int = 2048, n_threads: int | None = None, n_batch: int = 512):
        path = resolve(model)
        llama_cpp.llama_log_set(_silent_log, ctypes.c_void_p(0))
        try:
            self._model = LlamaModel(path_model=str(path), params=llama_cpp.llama_model_default_params(), verbose=False)
        except ValueError as exc:
            raise MetaspiderError(f"llama.cpp could not load {path}: {exc}") from None
        self.name = model
        self.path = path
        self.n_layers = llama_cpp.llama_model_n_layer(self._model.model)
        self.d_model = llama_cpp.llama_model_n_embd(self._model.model)
        self.n_vocab = self._model.n_vocab()
        self.fingerprint = fingerprint(path)
        self.chat_template = chat_template(model, path, lambda _: self._model.metadata().get("tokenizer.chat_template"))
        self.bos_token = self._token_text(llama_cpp.llama_vocab_bos(self._model.vocab))
        self.eos_token = self._token_text(llama_cpp.llama_vocab_eos(self._model.vocab))
        self.lock = ModelLock(model)
        self._names = TensorNames()
        self._watch: frozenset[int] = frozenset()
        self._reads: dict[int, list[np.ndarray]] = {}
        self._injection: Injection | None = None
        self._positions = np.zeros(0, dtype=np.int64)
        self._cursor: dict[int, int] = {}
        self._error: BaseException | None = None
        self._priming: _PendingPriming | None = None
        self._primed: _Primed | None = None
        self._callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_eval)
        self._plain = _Context(self._context(n_ctx, n_threads, n_batch, callback=False))
        self._reader = _Context(self._context(n_ctx, n_threads, n_batch, callback=True))
        self._active = self._plain
        self._batch = LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1, verbose=False)
        self._n_batch = n_batch

    def _context(self, n_ctx: int, n_threads: int | None, n_batch: int, callback: bool) -> LlamaContext:
        """Flash attention stays on llama.cpp's automatic choice: it is on for the CPU and keeps the logits
        closer to Torch's float32 than with it off (checked by hand on the default model; doctor measures parity). Threads
        follow llama-cpp-python: half the cores to decode and all to prefill (llama.cpp's threads spin
        while waiting, so more threads than free cores slows decoding badly on a busy machine)."""
        cores = os.cpu_count() or 1
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = n_batch
        params.n_threads = n_threads or max(1, cores // 2)
        params.n_threads_batch = n_threads or cores
        params.no_perf = True
        if callback:
            params.cb_eval = self._callback
        return LlamaContext(model=self._model, params=params, verbose=False)

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Text to ids with no BOS added, as the Torch backbone does; `special=False` keeps control-token
        spellings in untrusted text as plain text."""
        return self._model.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def detokenize(self, ids: Sequence[int]) -> str:
        """Ids to text, special tokens kept."""
        return self._model.detokenize(list(ids), special=True).decode("utf-8", errors="replace")

    def is_end_of_generation(self, token_id: int) -> bool:
        """Whether llama.cpp's vocabulary marks this token as end of generation."""
        return bool(llama_cpp.llama_vocab_is_eog(self._model.vocab, token_id))

    def capture(
        self,
        ids: Sequence[int],
        layers: Sequence[int],
        positions: Sequence[int] = (-1,),
        priming: Priming | None = None,
    ) -> np.ndarray:
        """Layer outputs [L, P, d] of `layers` at `positions` of `ids`, read through the evaluation callback;
        `priming` lets pass 1 compute u and inject the decision token in the same evaluation."""
        wanted = [p % len(ids) for p in positions]
        self._check_layers(layers)
        self._reads = {layer: [] for layer in layers}
        watch = frozenset(layers)
        decision = len(ids) - 1
        if priming is not None and wanted == [decision] and max(layers) <= min(priming.layers):
            self._check_layers(priming.layers)
            self._priming = _PendingPriming(priming, tuple(layers), decision)
            watch |= frozenset(priming.layers)
        try:
            logits = self._decode_from(ids, min(wanted), watch=watch)
            seen = self._positions_evaluated
            rows = {layer: np.concatenate(chunks) for layer, chunks in self._reads.items()}
            primed = self._injection if self._priming is not None else None
        finally:
            self._reads, self._priming, self._injection = {}, None, None
        self.last_logits = logits if primed is None else None
        if primed is not None:
            # The decision token's cache rows now carry the injection: only the generate that was primed
            # may use them, so the books say they are not cached.
            self._reader.cached.pop()
            self._primed = _Primed(list(ids), primed, logits)
        index = [int(np.flatnonzero(seen == p)[0]) for p in wanted]
        return np.stack([rows[layer][index] for layer in layers])

    def _evaluate(self, ids: Sequence[int], injection: Injection | None) -> np.ndarray:
        primed, self._primed = self._primed, None
        if injection is not None and primed is not None and primed.injection is injection and primed.ids == list(ids):
            self._begin(injection)
            self._reader.cached.append(primed.ids[-1])
            self._active = self._reader
            return primed.logits
        start = injection.inject_from if injection else len(ids)
        if injection is not None:
            self._begin(injection)
        return self._decode_from(ids, min(start, len(ids) - 1), watch=self._injected_layers())

    def _accept(self, token_id: int, injection: Injection | None) -> np.ndarray:
        cached = self._active.cached
        return self._decode_from([*cached, token_id], len(cached), watch=self._injected_layers())

    def reset(self) -> None:
        """Forget every cached prefix (both contexts) and any pending priming."""
        self._primed = None
        for context in (self._plain, self._reader):
            context.clear()

    def abandon(self) -> None:
        self._injection = None
        for context in (self._plain, self._reader):
            llama_cpp.llama_set_adapter_cvec(context.ctx.ctx, None, 0, self.d_model, 1, self.n_layers - 1)
        self.reset()

    def _finish(self, injection: Injection | None) -> None:
        if injection is None:
            return
        for context in (self._plain, self._reader):  # a primed request leaves injected rows in both
            if len(context.cached) > injection.inject_from:
                context.truncate(injection.inject_from)
            if injection.control:
                llama_cpp.llama_set_adapter_cvec(context.ctx.ctx, None, 0, self.d_model, 1, self.n_layers - 1)
        self._injection = None

    def _begin(self, injection: Injection) -> None:
        self._check_layers([*(injection.layers if injection.injector else ()), *(injection.control or {})])
        self._injection = injection
        if injection.control:
            target = self._reader if injection.injector else self._plain
            self._set_control(target.ctx, injection.control)

    def _set_control(self, ctx: LlamaContext, control: dict[int, np.ndarray]) -> None:
        """llama.cpp's buffer starts at layer 1: block 0's output cannot carry a control vector."""
        if 0 in control:
            raise MetaspiderError("llama.cpp control vectors cannot offset layer 0's output")
        data = np.zeros((self.n_layers - 1, self.d_model), dtype=np.float32)
        for layer, vector in control.items():
            data[layer - 1] = vector
        status = llama_cpp.llama_set_adapter_cvec(
            ctx.ctx,
            data.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            data.size,
            self.d_model,
            min(control),
            max(control),
        )
        if status != 0:
            raise MetaspiderError(f"llama_set_adapter_cvec failed with status {status}")

    def _injected_layers(self) -> frozenset[int]:
        injection = self._injection
        if injection is None or injection.injector is None:
            return frozenset()
        return frozenset(injection.layers)

    def _decode_from(self, ids: Sequence[int], keep: int, watch: frozenset[int]) -> np.ndarray:
        """Evaluate `ids` reusing at most `keep` cached positions; return the last token's logits."""
        self._primed = None
        context = self._reader if watch else self._plain
        if len(ids) > context.ctx.n_ctx():
            raise MetaspiderError(f"{len(ids)} tokens do not fit the context of {context.ctx.n_ctx()} (raise n_ctx)")
        other = self._plain if watch else self._reader
        if common_prefix(other.cached, ids, keep) > common_prefix(context.cached, ids, keep):
            other.copy_to(context)
        reuse = common_prefix(context.cached, ids, keep)
        context.truncate(reuse)
        self._active = context
        self._positions_evaluated = np.arange(reuse, len(ids))
        for start in range(reuse, len(ids), self._n_batch):
            chunk = list(ids[start : start + self._n_batch])
            self._run_batch(context, chunk, start, watch)
        logits = context.ctx.get_logits_ith(-1)
        return np.ctypeslib.as_array(logits, shape=(self.n_vocab,)).copy()

    def _run_batch(self, context: _Context, chunk: list[int], start: int, watch: frozenset[int]) -> None:
        self._batch.set_batch(chunk, n_past=start, logits_all=False)
        self._positions = np.arange(start, start + len(chunk))
        self._cursor = dict.fromkeys(watch, 0)
        self._watch = watch
        self._error = None
        try:
            context.ctx.decode(self._batch)
        except BaseException:
            context.truncate(start)  # rows of a failed decode may be half computed
            raise
        finally:
            self._watch = frozenset()
        if self._error is not None:
            # The callback said stop: ggml left this chunk's rows (and the logits) uncomputed, so they must
            # not be reused by the next request that shares the prefix.
            context.truncate(start)
            error, self._error = self._error, None
            raise error
        context.cached.extend(chunk)

    def _on_eval(self, tensor: int, ask: bool, _user_data: int) -> bool:
        """Called from inside llama_decode; exceptions cannot cross into C (ctypes would print and drop
        them), so every one, Ctrl-C included, is kept and re-raised once llama_decode returns."""
        try:
            if not self._watch:
                return False
            if ask:
                return self._layer_of(tensor) in self._watch
            self._handle(tensor)
        except BaseException as exc:  # re-raised by _run_batch
            self._error = exc
            return False
        return True

    def _layer_of(self, tensor: int) -> int:
        name = self._names.prefix(tensor, 10)
        if not name.startswith(_PREFIX):
            return -1
        return int(name[len(_PREFIX) :].split(b"\0", 1)[0])

    def _handle(self, tensor: int) -> None:
        layer = self._layer_of(tensor)
        hidden = read_rows(tensor, self.d_model)
        first = self._cursor[layer]
        self._cursor[layer] = first + len(hidden)
        positions = self._positions[first : first + len(hidden)]
        if layer in self._reads:
            self._reads[layer].append(hidden.copy())
        pending = self._priming
        if pending is not None and layer == pending.last_read and positions[-1] == pending.decision:
            self._injection = pending.build(self._reads)
        injection = self._injection
        if injection is None or layer not in injection.written_layers:
            return
        mask = positions >= injection.inject_from
        if mask.any():
            hidden[mask] += injection.offsets(layer, hidden[mask], positions[mask])
            write_rows(tensor, hidden)

    def _check_layers(self, layers: Sequence[int]) -> None:
        bad = [layer for layer in layers if not 0 <= layer < self.n_layers - 1]
        if bad:
            raise MetaspiderError(
                f"layers {bad} cannot be read or written: {self.name} has blocks 0..{self.n_layers - 1} and the "
                "last block's output is pruned by llama.cpp"
            )

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return llama_cpp.llama_vocab_get_text(self._model.vocab, token).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class _PendingPriming:
    priming: Priming
    read_layers: tuple[int, ...]
    decision: int

    @property
    def last_read(self) -> int:
        return max(self.read_layers)

    def build(self, reads: dict[int, list[np.ndarray]]) -> Injection | None:
        """The injection, if it writes only the decision token and only layers still to come."""
        acts = np.stack([reads[layer][-1][-1] for layer in self.read_layers])
        injection = self.priming.build(acts)
        if injection is None or injection.inject_from != self.decision:
            return None
        written = injection.written_layers
        if not written or min(written) < self.last_read or not set(written) <= set(self.priming.layers):
            return None
        return injection


@dataclass(frozen=True)
class _Primed:
    """A pass 1 that already applied `injection` to its last token, and the logits that came out."""

    ids: list[int]
    injection: Injection
    logits: np.ndarray


class _Context:
    """A llama.cpp context (sequence 0 only) and the token ids its cache holds."""

    def __init__(self, ctx: LlamaContext):
        self.ctx = ctx
        self.cached: list[int] = []

    def truncate(self, n: int) -> None:
        self.ctx.kv_cache_seq_rm(0, n, -1)
        del self.cached[n:]

    def clear(self) -> None:
        self.ctx.kv_cache_clear()
        self.cached = []

    def copy_to(self, other: _Context) -> None:
        """Move this cache into `other` with llama.cpp's sequence-state copy: no recomputation."""
        size = llama_cpp.llama_state_seq_get_size(self.ctx.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(self.ctx.ctx, buffer, size, 0)
        other.clear()
        if llama_cpp.llama_state_seq_set_data(other.ctx.ctx, buffer, written, 0) == 0:
            raise MetaspiderError("llama.cpp refused to restore a sequence state between two contexts")
        other.cached = list(self.cached)


@llama_cpp.llama_log_callback
def _silent_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """llama.cpp logs every load to stderr; the CLI shows its own progress instead."""
