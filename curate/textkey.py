"""The text of a conversation as dedup steps see it: chosen turns, normalised, one string per row."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.schema import turns_of

TurnSelection = Literal["all", "user", "first_pair"]

# Separates turns in the joined text; not a character users type, so "a b" + "c" != "a" + "b c".
TURN_SEPARATOR = "\x1e"


def normalise_for_match(texts: pa.Array) -> pa.Array:
    """Case- and whitespace-insensitive form: lowercase, runs of whitespace -> one space, trimmed.

    Split-and-join rather than a regex replace: 2x faster on Arrow (RE2 on Unicode classes is slow)."""
    words = pc.utf8_split_whitespace(pc.utf8_lower(texts))
    return pc.utf8_trim_whitespace(pc.binary_join(words, " "))


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


def joined_text(table: pa.Table, turns: TurnSelection, normalise: bool = True) -> pa.Array:
    """One string per row: the selected turns (normalised), joined with TURN_SEPARATOR."""
    keep, t = selected_turns(table, turns)
    texts = normalise_for_match(t.text) if normalise else t.text
    texts = texts.filter(pa.array(keep))
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    offsets = pa.array(kept_before[t.offsets], pa.int64())
    lists = pa.LargeListArray.from_arrays(offsets, texts)
    return pc.binary_join(lists, TURN_SEPARATOR)
