"""One loaded model per (model, backend, n_ctx), shared by every chat model instance in the process.

A backbone holds one KV cache and one injection at a time, so each engine serialises its requests on
the backbone's lock: many threads and tasks may share an instance without crashing it or mixing
requests (the crash ChatLlamaCpp has when one `Llama` object is used from several threads). Loading is
lazy and happens once, under its own lock, so constructing chat models stays free."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from metaspider.core.names import BACKENDS
from metaspider.errors import MetaspiderError

if TYPE_CHECKING:
    from metaspider.core.backbones.base import Backbone
    from metaspider.core.backbones.model_lock import ModelLock
    from metaspider.core.pipeline import Pipeline
    from metaspider.core.wrapper.runtime import WrapperRuntime
    from metaspider.runtime.constrained import GrammarConstraint


class Engine:
    """One loaded backbone and its wrappers, shared by every chat model on the same (model, backend, n_ctx):
    loading happens once, and requests are serialised on the backbone's lock."""

    def __init__(self, model: str, backend: str, n_ctx: int, n_threads: int | None):
        if backend not in BACKENDS:
            raise MetaspiderError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.model = model
        self.backend = backend
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._backbone: Backbone | None = None
        self._wrappers: dict[str, WrapperRuntime] = {}
        self._load_lock = threading.Lock()

    @property
    def backbone(self) -> Backbone:
        """The backbone, loaded on first use (under a lock, once)."""
        if self._backbone is None:
            with self._load_lock:
                if self._backbone is None:
                    from metaspider.core.backbones import load_backbone

                    self._backbone = load_backbone(self.model, self.backend, self.n_ctx, self.n_threads)
        return self._backbone

    @property
    def lock(self) -> ModelLock:
        """Held for a whole request: pass 1, pass 2 and every streamed token (see `ModelLock`)."""
        return self.backbone.lock

    def pipeline(self, wrapper: str | None, modifier: str | None, gain: float | None) -> Pipeline:
        """Cheap per request: the backbone and wrapper are loaded once and shared. A modifier named like
        the wrapper's own keeps the bias it was trained with: the Doubter's bias is where it refuses."""
        from metaspider.core.pipeline import Pipeline
        from metaspider.core.wrapper.modifiers import Modifier

        runtime = self._wrapper(wrapper) if wrapper is not None else None
        trained = runtime.manifest.modifier if runtime is not None else None
        chosen = (
            trained
            if trained is not None and trained.name == modifier
            else Modifier.parse({"name": modifier})
            if modifier
            else None
        )
        return Pipeline(self.backbone, runtime, chosen, gain)

    def _wrapper(self, spec: str) -> WrapperRuntime:
        backbone = self.backbone
        with self._load_lock:
            if spec not in self._wrappers:
                from metaspider.core.wrapper.handle import load_wrapper

                runtime = load_wrapper(backbone, spec, self.backend)
                assert runtime is not None
                self._wrappers[spec] = runtime
            return self._wrappers[spec]

    def grammar(self, grammar: str) -> GrammarConstraint:
        """A fresh grammar constraint (GBNF) over this model's vocabulary, for structured output and tool calls."""
        from metaspider.runtime.constrained import GrammarConstraint, vocab_for

        return GrammarConstraint(vocab_for(self.model_path()), grammar)

    def model_path(self) -> Path:
        """The model's file (a registry name resolved, fetched if needed)."""
        from metaspider.core.models.registry import resolve

        return resolve(self.model)


_engines: dict[tuple[str, str, int], Engine] = {}
_engines_lock = threading.Lock()


def get_engine(model: str, backend: str = "llama_cpp", n_ctx: int = 2048, n_threads: int | None = None) -> Engine:
    """The process-wide engine for this model; `n_threads` is taken from whoever asks first."""
    key = (model, backend, n_ctx)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = Engine(model, backend, n_ctx, n_threads)
        return engine
