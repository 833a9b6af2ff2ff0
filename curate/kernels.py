"""Pieces the compiled (numba) kernels share: an Arrow string array's bytes as numpy, the class of
each ASCII byte as RE2 sees it, and the MurmurHash3 finaliser that turns a rolling hash into
well-mixed bits."""

from __future__ import annotations

from functools import cache

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
    offsets = (
        np.frombuffer(off_buf, np.int64, n + 1, arr.offset * 8) if off_buf is not None else np.zeros(n + 1, np.int64)
    )
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None and data_buf.size else np.zeros(1, np.uint8)
    return data, offsets


def string_array(out: np.ndarray, out_offsets: np.ndarray, as_type=None, nulls_of: pa.Array | None = None) -> pa.Array:
    """The texts a byte scan wrote, out[out_offsets[i]:out_offsets[i + 1]], as a large_string array
    (or `as_type`); with `nulls_of`, null where that array is."""
    import pyarrow.compute as pc

    n = len(out_offsets) - 1
    texts = pa.LargeStringArray.from_buffers(n, pa.py_buffer(out_offsets), pa.py_buffer(out[: out_offsets[-1]]))
    if as_type is not None:
        texts = texts.cast(as_type)
    if nulls_of is not None and nulls_of.null_count:
        texts = pc.if_else(pc.is_null(nulls_of), pa.scalar(None, texts.type), texts)
    return texts


OTHER, LETTER, DIGIT, SYMBOL, SPACE = 0, 1, 2, 3, 4
# FNV-1a (64-bit): h = (h ^ byte) * FNV_PRIME from FNV_OFFSET; the byte scans hash with it.
FNV_OFFSET, FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def ascii_matching(pattern: str) -> np.ndarray:
    """bool[256]: the ASCII bytes that RE2's `pattern` matches as a whole one-character text (bytes
    >= 128, parts of non-ASCII characters, never): a byte scan's class, asked of RE2 itself."""
    import pyarrow.compute as pc

    chars = pa.array([chr(i) for i in range(128)])
    table = np.zeros(256, np.bool_)
    table[:128] = pc.match_substring_regex(chars, f"^(?:{pattern})$").to_pylist()
    return table


@cache
def ascii_classes() -> np.ndarray:
    """Class of each byte as RE2 sees it, asked of RE2 itself so that byte scans and regexes agree:
    LETTER `\\pL`, DIGIT `\\pN`, SYMBOL `[\\p{P}\\p{S}]`, SPACE `\\s` ([\\t\\n\\f\\r ]); bytes >= 128
    (parts of non-ASCII characters) are OTHER. Built on first use (Arrow imports pandas on its first
    string conversion: not a cost for importing this module)."""
    table = np.full(256, OTHER, np.uint8)
    for cls, pattern in ((SYMBOL, r"[\p{P}\p{S}]"), (DIGIT, r"\pN"), (LETTER, r"\pL"), (SPACE, r"\s")):
        table[ascii_matching(pattern)] = cls
    return table


@cache
def arrow_spaces() -> np.ndarray:
    """The ASCII bytes Arrow's utf8_split_whitespace splits on (\\t-\\r and \\x1c-\\x20: more than
    RE2's \\s), asked of Arrow itself so that byte scans and Arrow's split agree."""
    import pyarrow.compute as pc

    split = pc.utf8_split_whitespace(pa.array([f"a{chr(i)}b" for i in range(128)])).to_pylist()
    table = np.zeros(256, np.bool_)
    table[:128] = [len(parts) == 2 for parts in split]
    return table


# The kinds of byte_kinds(): a byte's RE2 class (above) or one of these.
SPLIT, NON_ASCII = 5, 6


@cache
def byte_kinds() -> np.ndarray:
    """One table for scans that split words as utf8_split_whitespace does: SPLIT for Arrow's
    whitespace bytes, NON_ASCII for bytes >= 128, else the byte's RE2 class (ascii_classes)."""
    kinds = ascii_classes().copy()
    kinds[arrow_spaces()] = SPLIT
    kinds[128:] = NON_ASCII
    return kinds


@numba.njit(inline="always")
def fmix64(h):
    """MurmurHash3's 64-bit finaliser: a bijection that spreads every input bit over the output."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@numba.njit(inline="always")
def any_non_ascii(data, a, b):
    """Whether data[a:b] holds a byte of a non-ASCII character (the byte scans' cue to leave a text
    to RE2)."""
    for i in range(a, b):
        if data[i] >= 128:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _ascii_space_counts(data, offsets, classes, out):
    for d in range(offsets.shape[0] - 1):
        n = 0
        for i in range(offsets[d], offsets[d + 1]):
            n += classes[data[i]] == 4  # SPACE
        out[d] = n


def ascii_space_counts(texts: pa.Array) -> np.ndarray:
    """Per text, how many characters RE2's `\\s` matches ([\\t\\n\\f\\r ]): one byte scan, ~30x faster
    than `pc.count_substring_regex(texts, r"\\s")`, which makes one match per space."""
    data, offsets = utf8_buffers(texts)
    out = np.zeros(len(offsets) - 1, np.int64)
    _ascii_space_counts(data, offsets, ascii_classes(), out)
    return out
