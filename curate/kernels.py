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


@numba.njit(cache=True, nogil=True)
def _ascii_space_counts(data, offsets, out):
    for d in range(offsets.shape[0] - 1):
        n = 0
        for i in range(offsets[d], offsets[d + 1]):
            c = data[i]
            n += c == 32 or c == 9 or c == 10 or c == 12 or c == 13
        out[d] = n


def ascii_space_counts(texts: pa.Array) -> np.ndarray:
    """Per text, how many characters RE2's `\\s` matches ([\\t\\n\\f\\r ]): one byte scan, ~30x faster
    than `pc.count_substring_regex(texts, r"\\s")`, which makes one match per space."""
    data, offsets = utf8_buffers(texts)
    out = np.zeros(len(offsets) - 1, np.int64)
    _ascii_space_counts(data, offsets, out)
    return out
