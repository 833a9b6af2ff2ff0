"""Word n-gram hashing for decontamination: tokens and n-grams of a whole batch in compiled passes,
and an index of eval items as sorted uint64 arrays (never Python sets of strings).

Tokens: maximal runs of ASCII letters/digits or non-ASCII bytes, ASCII-lowercased, so "Don't" and
"don’t" (curly quote) give the same tokens: Unicode punctuation (U+2000-U+206F, Latin-1 symbols) is
a separator like ASCII punctuation. Token byte offsets point into the original UTF-8 text, so a
match can be shown as the user wrote it.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from curate.kernels import fmix64, utf8_buffers

MULT = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(inline="always")
def _sep_len(data, i, end):
    """0 if data[i] starts a token byte, else the length of the separator character there."""
    c = data[i]
    if c < 0x80:
        if (0x30 <= c <= 0x39) or (0x61 <= c <= 0x7A) or (0x41 <= c <= 0x5A):
            return 0
        return 1
    if c == 0xE2 and i + 1 < end and (data[i + 1] == 0x80 or data[i + 1] == 0x81):
        return 3  # general punctuation: quotes, dashes, spaces
    if c == 0xC2 and i + 1 < end and 0xA0 <= data[i + 1] <= 0xBF:
        return 2  # Latin-1 punctuation and symbols
    return 0


@numba.njit(cache=True, nogil=True)
def _count_tokens(data, offsets):
    n = 0
    for d in range(offsets.shape[0] - 1):
        i, end = offsets[d], offsets[d + 1]
        inside = False
        while i < end:
            w = _sep_len(data, i, end)
            if w:
                inside = False
                i += w
            else:
                if not inside:
                    n += 1
                inside = True
                i += 1
    return n


@numba.njit(cache=True, nogil=True)
def _tokenize(data, offsets, out_hash, out_start, out_end, out_numeric, doc_tokens):
    n = 0
    for d in range(offsets.shape[0] - 1):
        i, end = offsets[d], offsets[d + 1]
        first = n
        while i < end:
            w = _sep_len(data, i, end)
            if w:
                i += w
                continue
            start = i
            h = np.uint64(0xCBF29CE484222325)
            numeric = True
            while i < end and _sep_len(data, i, end) == 0:
                c = data[i]
                if 0x41 <= c <= 0x5A:
                    c += 32
                if not (0x30 <= c <= 0x39):
                    numeric = False
                h = (h ^ np.uint64(c)) * np.uint64(0x100000001B3)
                i += 1
            out_hash[n] = fmix64(h)
            out_start[n] = start - offsets[d]
            out_end[n] = i - offsets[d]
            out_numeric[n] = numeric
            n += 1
        doc_tokens[d] = n - first
    return n


class Tokens:
    """Tokens of n texts: hash, byte span in its text, numeric flag, and the text each belongs to."""

    def __init__(self, texts: pa.Array):
        data, offsets = utf8_buffers(texts)
        n = len(offsets) - 1
        cap = _count_tokens(data, offsets)  # exact, so memory is 25 bytes per token, not per byte
        self.hash = np.empty(cap, np.uint64)
        self.start = np.empty(cap, np.int64)
        self.end = np.empty(cap, np.int64)
        self.numeric = np.empty(cap, np.bool_)
        counts = np.zeros(n, np.int64)
        m = _tokenize(data, offsets, self.hash, self.start, self.end, self.numeric, counts)
        self.hash, self.start, self.end, self.numeric = self.hash[:m], self.start[:m], self.end[:m], self.numeric[:m]
        self.doc = np.repeat(np.arange(n), counts)
        self.counts = counts
        self.first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def ngrams(tok: Tokens, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, index of first token) of every n-gram that lies inside one text."""
    m = len(tok.hash)
    if m < n:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    h = tok.hash.copy()
    with np.errstate(over="ignore"):
        for k in range(1, n):
            h = h[:-1] * MULT + tok.hash[k:]
    start = np.arange(m - n + 1)
    inside = tok.doc[: m - n + 1] == tok.doc[n - 1 :]
    return h[inside], start[inside]


def whole_text_hashes(tok: Tokens, max_tokens: int = 64) -> np.ndarray:
    """The hash of each text's full token sequence (as an n-gram with n = its length); 0 for texts
    longer than max_tokens (only short texts are ever compared whole)."""
    out = np.zeros(len(tok.counts), np.uint64)
    with np.errstate(over="ignore"):
        for d in np.nonzero((tok.counts > 0) & (tok.counts <= max_tokens))[0]:
            h = tok.hash[tok.first[d]]
            for x in tok.hash[tok.first[d] + 1 : tok.first[d] + tok.counts[d]]:
                h = h * MULT + x
            out[d] = h
    return out
