"""Per-text results remembered across the batches one worker runs: the same turn text is measured once.

language, quality_heuristics and toxicity compute per turn a function of that turn's text alone
(the step's params fixed), so a text seen before, in this batch or an earlier one of the same step
instance, gets the row of numbers it got then, and the rows, their verdicts and the stats are the
same as without the memo. What repeats: duplicated conversations reach these steps before
exact_dedup removes them (10% of make_corpus's rows; ShareGPT dumps hold many), and short turns
("continue", "thanks"). Measured 2026-12-04 on make_corpus n100k (seed 11): 13.8% of the turns
(10.9% of their characters) repeat an earlier turn of the run, 2.3% (1.6% of the characters) one
of the same 2,000-row shard, so a memo of the batch alone would save less than finding the
repeats costs (benchmarks/README.md).

Finding them must cost far less than the ~10% it saves: texts are keyed by a 128-bit hash computed
in one compiled pass over the batch's bytes (two independent 64-bit lanes, 8 bytes a step, each
finished by MurmurHash3's fmix64; ~20 ms for 25 MB), looked up in a compiled open-addressing table.
Two different texts with the same key would share a row: for texts not built for it the chance is
~n^2 / 2^129 (1e-28 for a million texts; exact_dedup already takes one 64-bit hash as identity).
SHA-256 keys, safe against crafted texts, were measured too: Python's per-text call costs 0.5 s per
20k rows and step, more than the memo saves. Values are float64 rows (exact for the float32
scores, the counts and the float64 ratios stored). The memo holds at most `max_entries` texts and
is emptied when full, which changes what is recomputed, never a value.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
import pyarrow as pa

from curate.kernels import fmix64, utf8_buffers

_SEED_A, _SEED_B = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)
_NULL_MARK = np.uint64(0xD6E8FEB86659FD93)  # xored into a null text's key, apart from ""


class TextMemo:
    """Rows of `fields` float64 values per distinct text, for one step instance (one worker)."""

    def __init__(self, fields: int, max_entries: int = 1 << 18):
        self.fields = fields
        self.max_entries = max_entries
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.slots = np.full(16, -1, np.int64)  # open addressing: entry index or -1
        self.key_a = np.zeros(8, np.uint64)
        self.key_b = np.zeros(8, np.uint64)
        self.values = np.zeros((8, self.fields), np.float64)

    def __len__(self) -> int:
        return self.n

    def resolve(self, texts: pa.Array, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """(len(texts), fields) values: remembered rows for texts seen before, and for the rest
        compute(indices into texts of one occurrence of each unseen text) -> (m, fields)."""
        n = len(texts)
        if self.n + n > self.max_entries:
            self._reset()
        self._reserve(self.n + n)
        key_a, key_b = text_keys(texts)
        entry = np.empty(n, np.int64)
        new = np.zeros(n, np.bool_)
        before = self.n
        self.n = _find_or_add(self.slots, self.key_a, self.key_b, self.n, key_a, key_b, entry, new)
        todo = np.nonzero(new)[0]
        if len(todo):
            try:
                rows = np.asarray(compute(todo), np.float64).reshape(len(todo), self.fields)
            except BaseException:
                self._forget(before)  # the keys just added have no values: take them out again
                raise
            self.values[entry[todo]] = rows
        return self.values[entry]

    def _forget(self, keep: int) -> None:
        self.n = keep
        self.slots[:] = -1
        _rehash(self.slots, self.key_b, self.n)

    def _reserve(self, entries: int) -> None:
        if entries > len(self.key_a):
            size = max(2 * len(self.key_a), entries)
            for name in ("key_a", "key_b", "values"):
                old = getattr(self, name)
                grown = np.zeros((size, *old.shape[1:]), old.dtype)
                grown[: self.n] = old[: self.n]
                setattr(self, name, grown)
        if 2 * entries > len(self.slots):  # at most half full: short probe runs
            cap = len(self.slots)
            while cap < 2 * entries:
                cap *= 2
            self.slots = np.full(cap, -1, np.int64)
            _rehash(self.slots, self.key_b, self.n)


def text_keys(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hash lanes of each text's UTF-8 bytes (a null differs from "")."""
    data, offsets = utf8_buffers(texts)
    n = len(offsets) - 1
    key_a, key_b = np.empty(n, np.uint64), np.empty(n, np.uint64)
    _hash_texts(data, offsets, key_a, key_b)
    if texts.null_count:
        key_a[texts.is_null().to_numpy(zero_copy_only=False)] ^= _NULL_MARK
    return key_a, key_b


@numba.njit(cache=True, nogil=True)
def _hash_texts(data, offsets, key_a, key_b):
    m1, m2 = np.uint64(0x87C37B91114253D5), np.uint64(0x4CF5AD432745937F)
    for t in range(offsets.shape[0] - 1):
        s, e = offsets[t], offsets[t + 1]
        a, b = _SEED_A, _SEED_B
        i = s
        while i < e:
            if i + 8 <= e:  # a little-endian word, unrolled so LLVM makes it one load
                w = (
                    np.uint64(data[i])
                    | np.uint64(data[i + 1]) << np.uint64(8)
                    | np.uint64(data[i + 2]) << np.uint64(16)
                    | np.uint64(data[i + 3]) << np.uint64(24)
                    | np.uint64(data[i + 4]) << np.uint64(32)
                    | np.uint64(data[i + 5]) << np.uint64(40)
                    | np.uint64(data[i + 6]) << np.uint64(48)
                    | np.uint64(data[i + 7]) << np.uint64(56)
                )
            else:  # the last one, zero-padded
                w = np.uint64(0)
                for j in range(e - i):
                    w |= np.uint64(data[i + j]) << np.uint64(8 * j)
            a = (a ^ (w * m1)) * m2
            a = (a << np.uint64(31)) | (a >> np.uint64(33))
            b = (b + w) * m1
            b ^= b >> np.uint64(29)
            i += 8
        n = np.uint64(e - s)  # the length tells "ab" from "ab\0"
        key_a[t] = fmix64(a ^ n)
        key_b[t] = fmix64(b + n * m2)


@numba.njit(cache=True, nogil=True)
def _find_or_add(slots, ent_a, ent_b, n_entries, key_a, key_b, entry, new):
    """Each key's entry; unseen keys are added (new=True on their first occurrence only)."""
    mask = slots.shape[0] - 1
    n = n_entries
    for i in range(key_a.shape[0]):
        slot = np.int64(key_b[i] & np.uint64(mask))
        while True:
            e = slots[slot]
            if e < 0:
                slots[slot] = n
                ent_a[n] = key_a[i]
                ent_b[n] = key_b[i]
                entry[i] = n
                new[i] = True
                n += 1
                break
            if ent_a[e] == key_a[i] and ent_b[e] == key_b[i]:
                entry[i] = e
                break
            slot = (slot + 1) & mask
    return n


@numba.njit(cache=True, nogil=True)
def _rehash(slots, ent_b, n_entries):
    """Place entries 0..n_entries-1 in an empty table (`slots` all -1), where _find_or_add looks."""
    mask = slots.shape[0] - 1
    for e in range(n_entries):
        slot = np.int64(ent_b[e] & np.uint64(mask))
        while slots[slot] >= 0:
            slot = (slot + 1) & mask
        slots[slot] = e
