"""Just enough of ggml, through ctypes, to read and write a graph tensor from the evaluation callback.

llama-cpp-python ships libggml but binds none of these functions; declaring them here keeps us on the
stock PyPI package (no fork, no patch)."""

from __future__ import annotations

import ctypes

import numpy as np
from llama_cpp._ggml import libggml

GGML_TYPE_F32 = 0

_get_name = libggml.ggml_get_name
_get_name.argtypes = [ctypes.c_void_p]
_get_name.restype = ctypes.c_void_p

_nelements = libggml.ggml_nelements
_nelements.argtypes = [ctypes.c_void_p]
_nelements.restype = ctypes.c_int64

_tensor_get = libggml.ggml_backend_tensor_get
_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
_tensor_get.restype = None

_tensor_set = libggml.ggml_backend_tensor_set
_tensor_set.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
_tensor_set.restype = None


class TensorNames:
    """Reads a tensor's name without a foreign call per graph node.

    The callback is asked about every node of every decode, so the name check must be cheap: we learn
    where `name` sits inside `struct ggml_tensor` once, then peek at that address directly."""

    def __init__(self) -> None:
        self._offset: int | None = None

    def prefix(self, tensor: int, size: int) -> bytes:
        """The first `size` bytes of a graph tensor's name, read at a fixed offset: cheap enough for every node."""
        if self._offset is None:
            self._offset = _get_name(tensor) - tensor
        return ctypes.string_at(tensor + self._offset, size)

    def full(self, tensor: int) -> str:
        """The whole name of a graph tensor (for the few nodes whose prefix matched)."""
        return ctypes.string_at(_get_name(tensor)).decode()


def read_rows(tensor: int, d: int) -> np.ndarray:
    """A contiguous F32 tensor [n_rows, d] copied out of the backend."""
    n = _nelements(tensor)
    out = np.empty((n // d, d), dtype=np.float32)
    _tensor_get(tensor, out.ctypes.data, 0, out.nbytes)
    return out


def write_rows(tensor: int, rows: np.ndarray) -> None:
    """Overwrite a graph tensor's data with `rows` (float32): how `tokens` injection writes offsets back."""
    data = np.ascontiguousarray(rows, dtype=np.float32)
    _tensor_set(tensor, data.ctypes.data, 0, data.nbytes)
