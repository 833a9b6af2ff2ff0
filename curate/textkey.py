"""The text of a conversation as dedup steps see it: the chosen turns (their visible text and tool
calls, not traces), normalised, hashed per row."""

from __future__ import annotations

from typing import Literal

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.kernels import FNV_OFFSET, FNV_PRIME, fmix64, utf8_buffers
from curate.schema import turns_of, visible_texts

TurnSelection = Literal["all", "user", "first_pair"]

# Separates turns in the joined text; not a character users type, so "a b" + "c" != "a" + "b c".
TURN_SEPARATOR = "\x1e"


def selected_turns(table: pa.Table, turns: TurnSelection) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask over flattened turns, turns.row) for the selection.

    first_pair is the ShareGPT cleanup's key: the first user turn and the reply right after it.
    """
    t = turns_of(table)
    if turns == "all":
        keep = np.ones(len(t.row), dtype=bool)
    elif turns == "user":
        keep = t.role == "user"
    else:
        is_user = t.role == "user"
        # index of each row's first user turn (or -1)
        first_user = np.full(t.num_rows, -1, dtype=np.int64)
        user_idx = np.nonzero(is_user)[0]
        if len(user_idx):
            rows_u = t.row[user_idx]
            first_of_row = np.unique(rows_u, return_index=True)
            first_user[first_of_row[0]] = user_idx[first_of_row[1]]
        fu = first_user[t.row]
        idx = np.arange(len(t.row))
        keep = (fu >= 0) & ((idx == fu) | (idx == fu + 1))
    return keep, t


def joined_turns(table: pa.Table, turns: TurnSelection, separator: str, lower: bool = False) -> pa.Array:
    """One string per row: the selected turns (optionally lowercased, full Unicode) joined by separator."""
    keep, t = selected_turns(table, turns)
    texts = visible_texts(table).filter(pa.array(keep))
    if lower:
        texts = pc.utf8_lower(texts)
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    lists = pa.LargeListArray.from_arrays(pa.array(kept_before[t.offsets], pa.int64()), texts)
    return pc.binary_join(lists, separator)


def text_hashes(table: pa.Table, turns: TurnSelection, normalise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(has_text mask, uint64 hash) per row of the selected turns joined by TURN_SEPARATOR.

    With `normalise`, case and whitespace do not count: the text is lowercased (Arrow, full
    Unicode), and the hash kernel reads every run of whitespace as one space and drops it at the
    ends of a turn. Hashing in one compiled pass instead of building normalised strings is 10x
    faster (splitting and re-joining words in Arrow cost most of exact_dedup's time)."""
    data, offsets = utf8_buffers(joined_turns(table, turns, TURN_SEPARATOR, lower=normalise))
    n = len(offsets) - 1
    hashes = np.zeros(n, np.uint64)
    has_text = np.zeros(n, np.bool_)
    _hash_rows(data, offsets, normalise, hashes, has_text)
    return has_text, hashes


@numba.njit(inline="always")
def _space_len(data, i, end):
    """Byte length of the whitespace character at i (ASCII, NBSP, U+2000-200B, U+3000), else 0."""
    c = data[i]
    if c == 32 or 9 <= c <= 13:
        return 1
    if c == 0xC2 and i + 1 < end and data[i + 1] == 0xA0:
        return 2
    if c == 0xE2 and i + 2 < end and data[i + 1] == 0x80 and data[i + 2] <= 0x8B:
        return 3
    if c == 0xE3 and i + 2 < end and data[i + 1] == 0x80 and data[i + 2] == 0x80:
        return 3
    return 0


@numba.njit(cache=True, nogil=True)
def _hash_rows(data, offsets, normalise, hashes, has_text):
    """FNV-1a over each row's bytes (whitespace runs -> one space, none at turn ends), then fmix64."""
    SEP = 0x1E
    for r in range(offsets.shape[0] - 1):
        h = FNV_OFFSET
        i, end = offsets[r], offsets[r + 1]
        pending_space = False  # a whitespace run inside a turn, emitted before the next character
        at_turn_start = True
        seen = False  # any character other than whitespace and separators
        while i < end:
            c = data[i]
            if 0x21 <= c <= 0x7E and not pending_space:  # the common case: a visible ASCII byte
                h = (h ^ np.uint64(c)) * FNV_PRIME
                at_turn_start = False
                seen = True
                i += 1
                continue
            w = _space_len(data, i, end) if normalise else 0
            if w:
                if not at_turn_start:
                    pending_space = True
                i += w
                continue
            if c == SEP:
                pending_space = False
                at_turn_start = True
            else:
                if pending_space:
                    h = (h ^ np.uint64(32)) * FNV_PRIME
                    pending_space = False
                at_turn_start = False
                seen = True
            h = (h ^ np.uint64(c)) * FNV_PRIME
            i += 1
        has_text[r] = seen
        hashes[r] = fmix64(h)
