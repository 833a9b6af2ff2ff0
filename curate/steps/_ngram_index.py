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

from curate.kernels import FNV_OFFSET, FNV_PRIME, fmix64, utf8_buffers

MULT = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, nogil=True)
def _scan(data, offsets, out_hash, out_start, out_end, out_numeric, doc_tokens):
    """Hash and place the tokens of every text while they fit in the arrays; returns how many there
    are (more than the arrays hold: only that count is right).

    The separator test is written inline: as a helper function (numba's inline="always" or a plain
    njit call) the loop ran 4x slower."""
    cap = out_hash.shape[0]
    n = 0
    for d in range(offsets.shape[0] - 1):
        i, end = offsets[d], offsets[d + 1]
        first = n
        start = -1  # where the current token began; -1 between tokens
        h = FNV_OFFSET
        numeric = True
        while i <= end:
            w = 1  # the end of the text closes the last token
            c = 0
            if i < end:
                c = data[i]
                w = 0
                if c < 0x80:
                    if not ((0x30 <= c <= 0x39) or (0x61 <= c <= 0x7A) or (0x41 <= c <= 0x5A)):
                        w = 1
                elif c == 0xE2 and i + 1 < end and (data[i + 1] == 0x80 or data[i + 1] == 0x81):
                    w = 3  # general punctuation: quotes, dashes, spaces
                elif c == 0xC2 and i + 1 < end and 0xA0 <= data[i + 1] <= 0xBF:
                    w = 2  # Latin-1 punctuation and symbols
            if w:
                if start >= 0:
                    if n < cap:
                        out_hash[n] = fmix64(h)
                        out_start[n] = start - offsets[d]
                        out_end[n] = i - offsets[d]
                        out_numeric[n] = numeric
                    n += 1
                    start = -1
                i += w
            else:
                if start < 0:
                    start = i
                    h = FNV_OFFSET
                    numeric = True
                if 0x41 <= c <= 0x5A:
                    c += 32
                if not (0x30 <= c <= 0x39):
                    numeric = False
                h = (h ^ np.uint64(c)) * FNV_PRIME
                i += 1
        doc_tokens[d] = n - first
    return n


class Tokens:
    """Tokens of n texts: hash, byte span in its text, numeric flag, and the text each belongs to."""

    def __init__(self, texts: pa.Array):
        data, offsets = utf8_buffers(texts)
        n = len(offsets) - 1
        # Room for one token per 4 bytes (chat text has one per 5-6): 6 bytes of arrays per byte of
        # text, not 25; a text denser than that is scanned again with the exact count.
        cap = len(data) // 4 + 16
        while True:
            self.hash = np.empty(cap, np.uint64)
            self.start = np.empty(cap, np.int64)
            self.end = np.empty(cap, np.int64)
            self.numeric = np.empty(cap, np.bool_)
            counts = np.zeros(n, np.int64)
            m = _scan(data, offsets, self.hash, self.start, self.end, self.numeric, counts)
            if m <= cap:
                break
            cap = m
        self.hash, self.start, self.end, self.numeric = self.hash[:m], self.start[:m], self.end[:m], self.numeric[:m]
        self.doc = np.repeat(np.arange(n), counts)
        self.counts = counts
        self.first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def _ngram_hashes(hashes, doc, n, out_hash, out_start):
    """Polynomial hash of every window of n tokens inside one text; returns how many."""
    m = 0
    for i in range(hashes.shape[0] - n + 1):
        if doc[i] != doc[i + n - 1]:
            continue
        h = hashes[i]
        for k in range(1, n):
            h = h * MULT + hashes[i + k]
        out_hash[m] = h
        out_start[m] = i
        m += 1
    return m


def ngrams(tok: Tokens, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, index of first token) of every n-gram that lies inside one text."""
    m = len(tok.hash)
    if m < n:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    out_hash = np.empty(m - n + 1, np.uint64)
    out_start = np.empty(m - n + 1, np.int64)
    k = _ngram_hashes(tok.hash, tok.doc, n, out_hash, out_start)
    return out_hash[:k], out_start[:k]


@numba.njit(cache=True, nogil=True)
def _whole_hashes(hashes, first, counts, max_tokens, out):
    for d in range(counts.shape[0]):
        if 0 < counts[d] <= max_tokens:
            h = hashes[first[d]]
            for k in range(1, counts[d]):
                h = h * MULT + hashes[first[d] + k]
            out[d] = h


def whole_text_hashes(tok: Tokens, max_tokens: int = 64) -> np.ndarray:
    """The hash of each text's full token sequence (as an n-gram with n = its length); 0 for texts
    longer than max_tokens (only short texts are ever compared whole)."""
    out = np.zeros(len(tok.counts), np.uint64)
    _whole_hashes(tok.hash, tok.first, tok.counts, max_tokens, out)
    return out


class BitFilter:
    """A one-hash bit filter over uint64 hashes (their low `bits` bits): "maybe present" or "surely
    absent". Almost every n-gram of a conversation is in no eval item; one bit test rules it out
    before any binary search of the sorted arrays, which then sees only the few candidates."""

    def __init__(self, hashes: np.ndarray, bits: int):
        self.mask = np.uint64((1 << bits) - 1)
        self.table = np.zeros((1 << bits) // 8, np.uint8)
        slot = (hashes & self.mask).astype(np.int64)
        np.bitwise_or.at(self.table, slot >> 3, (1 << (slot & 7)).astype(np.uint8))

    def candidates(self, hashes: np.ndarray) -> np.ndarray:
        """Indices of the hashes whose bit is set (all present ones, and a few others)."""
        return _bit_candidates(hashes, self.table, self.mask)


@numba.njit(cache=True, nogil=True)
def _bit_candidates(hashes, table, mask):
    # one compiled pass: numpy's mask / shift / gather / compress took six passes over 6M n-grams
    out = np.empty(hashes.shape[0], np.int64)
    m = 0
    for i in range(hashes.shape[0]):
        slot = hashes[i] & mask
        if (table[slot >> np.uint64(3)] >> (slot & np.uint64(7))) & np.uint8(1):
            out[m] = i
            m += 1
    return out[:m]
