"""Pieces the compiled (numba) kernels share: an Arrow string array's bytes as numpy, and the
MurmurHash3 finaliser that turns a rolling hash into well-mixed bits."""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa


def utf8_buffers(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8, offsets int64 with len(texts) + 1 entries) of a string array, without copying
    the text when it is already a single large_string chunk. Null texts read as empty."""
    arr = texts if pa.types.is_large_string(texts.type) else texts.cast(pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, np.int64, n + 1, arr.offset * 8) if off_buf is not None else np.zeros(n + 1, np.int64)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None and data_buf.size else np.zeros(1, np.uint8)
    return data, offsets


@numba.njit(inline="always")
def fmix64(h):
    """MurmurHash3's 64-bit finaliser: a bijection that spreads every input bit over the output."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))
