"""The `messages` column flattened to one entry per turn, with every field of the turn struct, for the
post-training steps (reasoning, tool_calls, token_budget), which read more than the visible text."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.schema import MESSAGES

COLUMN = MESSAGES


@dataclass
class Flat:
    """values[i] is turn i; row[i] its row in the table, position[i] its index in the conversation."""

    values: pa.StructArray
    row: np.ndarray
    position: np.ndarray
    offsets: np.ndarray  # len = rows + 1

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1

    def field(self, name: str) -> pa.Array:
        return self.values.field(name)

    def role(self) -> np.ndarray:
        return self.values.field("role").to_numpy(zero_copy_only=False)

    def string(self, name: str) -> pa.Array:
        """A string field with nulls read as ""."""
        return pc.fill_null(self.values.field(name), "")


def flatten(table: pa.Table) -> Flat:
    conv = table.column(COLUMN).combine_chunks()
    offsets = conv.offsets.to_numpy().astype(np.int64)
    values = conv.values.slice(offsets[0], offsets[-1] - offsets[0])
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    row = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    position = np.arange(len(row), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    return Flat(values=values, row=row, position=position, offsets=offsets)


def with_fields(table: pa.Table, flat: Flat, **replace: pa.Array) -> pa.Table:
    """`table` with the named turn fields replaced (one value per turn), the rest untouched."""
    conv = table.column(COLUMN).combine_chunks()
    typ = flat.values.type
    fields = [replace[f.name].cast(f.type) if f.name in replace else flat.values.field(f.name) for f in typ]
    values = pa.StructArray.from_arrays(fields, fields=list(typ))
    new = pa.ListArray.from_arrays(
        pa.array(flat.offsets, conv.offsets.type),
        values,
        type=conv.type,
        mask=conv.is_null() if conv.null_count else None,
    )
    return table.set_column(table.schema.get_field_index(COLUMN), COLUMN, new)


def scatter(base: pa.Array, index: np.ndarray, new: pa.Array) -> pa.Array:
    """`base` with base[index[k]] = new[k], in Arrow (no Python objects per value)."""
    if not len(index):
        return base
    take = np.arange(len(base), dtype=np.int64)
    take[index] = len(base) + np.arange(len(index), dtype=np.int64)
    return pa.concat_arrays([base, new.cast(base.type)]).take(pa.array(take))


def per_row_sum(per_turn: np.ndarray, flat: Flat) -> np.ndarray:
    return np.bincount(flat.row, weights=per_turn, minlength=flat.num_rows).astype(np.int64)


def first_turn(flag: np.ndarray, flat: Flat) -> np.ndarray:
    """Per row: the flat index of its first flagged turn, or -1."""
    out = np.full(flat.num_rows, -1, np.int64)
    idx = np.nonzero(flag)[0]
    if len(idx):
        rows, first = np.unique(flat.row[idx], return_index=True)
        out[rows] = idx[first]
    return out


def last_turn_where(flag: np.ndarray, flat: Flat) -> np.ndarray:
    """Per row: the flat index of its last flagged turn, or -1."""
    out = np.full(flat.num_rows, -1, np.int64)
    idx = np.nonzero(flag)[0]
    if len(idx):
        out[flat.row[idx]] = idx  # later assignments win: the last turn
    return out


def excerpt(text: str | None, limit: int = 300) -> str | None:
    """Bounded text for a report's detail or span (a trace can be megabytes)."""
    if text is None:
        return None
    return text if len(text) <= limit else text[:limit] + "…"
