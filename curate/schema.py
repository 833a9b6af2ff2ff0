"""The canonical row every reader produces and every step reads.

A row is one conversation:
  id            string, the input's own id where it has one, else derived from file and index
  conversations list<struct<role, text, original_role, extra>>; role is one of ROLES
  source_file   the path the row was read from, as the user gave it
  source_index  the record's 0-based position in that file (line for JSONL, element for arrays)
  extra         JSON object (string) of every other input field, carried through untouched

Internal columns (prefixed `_curate_`) tell the runner which rows are alive:
  _curate_key          int64, shard << 32 | position in shard: a total, deterministic row order
  _curate_drop_step    the step that rejected the row (null while the row is kept)
  _curate_drop_reason  a short stable reason code, e.g. "exact_duplicate"
  _curate_drop_detail  free text for the report, e.g. "duplicate of sg-12"
  _curate_drop_span    the text that triggered the rule (report highlights it), _curate_drop_turn its turn
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROLES = ("system", "user", "assistant", "tool")

MESSAGE_TYPE = pa.struct(
    [
        pa.field("role", pa.string()),
        pa.field("text", pa.string()),
        pa.field("original_role", pa.string()),
        pa.field("extra", pa.string()),
    ]
)

KEY = "_curate_key"
DROP_STEP = "_curate_drop_step"
DROP_REASON = "_curate_drop_reason"
DROP_DETAIL = "_curate_drop_detail"
DROP_SPAN = "_curate_drop_span"  # the text that triggered the rule, for highlighting in the report
DROP_TURN = "_curate_drop_turn"  # index of the turn it was found in
DROP_COLUMNS = (DROP_STEP, DROP_REASON, DROP_DETAIL, DROP_SPAN, DROP_TURN)
INTERNAL_PREFIX = "_curate_"

ROW_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("conversations", pa.list_(MESSAGE_TYPE)),
        pa.field("source_file", pa.string()),
        pa.field("source_index", pa.int64()),
        pa.field("extra", pa.string()),
        pa.field(KEY, pa.int64()),
        pa.field(DROP_STEP, pa.string()),
        pa.field(DROP_REASON, pa.string()),
        pa.field(DROP_DETAIL, pa.string()),
        pa.field(DROP_SPAN, pa.string()),
        pa.field(DROP_TURN, pa.int32()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string()),
        pa.field("source_index", pa.int64()),
        pa.field("line", pa.int64()),
        pa.field("error", pa.string()),
        pa.field("raw", pa.string()),
    ]
)

# Raw text kept per quarantined record: enough to see the problem, bounded for 10 MB records.
QUARANTINE_RAW_LIMIT = 2000


def alive_mask(table: pa.Table) -> np.ndarray:
    """True for rows no step has rejected yet."""
    return table.column(DROP_STEP).is_null().to_numpy(zero_copy_only=False)


@dataclass
class Turns:
    """The conversations column flattened to one entry per turn, for vectorised steps.

    row[i] is the index (within the table) of the conversation turn i belongs to; position[i] is
    the turn's index inside its conversation; offsets are the list offsets (len = rows + 1).
    """

    role: np.ndarray  # object array of str
    text: pa.Array  # pa.string(), one per turn
    row: np.ndarray  # int64
    position: np.ndarray  # int64
    offsets: np.ndarray  # int64

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1

    def texts(self) -> list[str]:
        return self.text.to_pylist()


def turns_of(table: pa.Table) -> Turns:
    """Flatten `conversations` without a Python loop over rows."""
    conv = table.column("conversations").combine_chunks()
    offsets = conv.offsets.to_numpy().astype(np.int64)
    # A sliced ListArray has offsets that do not start at 0; normalise.
    values = conv.values.slice(offsets[0], offsets[-1] - offsets[0])
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    row = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    position = np.arange(len(row), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    return Turns(
        role=values.field("role").to_numpy(zero_copy_only=False),
        text=values.field("text"),
        row=row,
        position=position,
        offsets=offsets,
    )


def with_texts(table: pa.Table, new_texts: pa.Array | list[str]) -> pa.Table:
    """Return `table` with every turn's text replaced (same turn count), other fields untouched."""
    conv = table.column("conversations").combine_chunks()
    offsets = conv.offsets
    start = offsets[0].as_py()
    values = conv.values.slice(start, offsets[-1].as_py() - start)
    texts = new_texts if isinstance(new_texts, pa.Array) else pa.array(new_texts, pa.string())
    fields = [values.field(f.name) if f.name != "text" else texts for f in MESSAGE_TYPE]
    new_values = pa.StructArray.from_arrays(fields, fields=list(MESSAGE_TYPE))
    rebased = pc.subtract(offsets, pa.scalar(start, offsets.type))
    new_conv = pa.ListArray.from_arrays(rebased, new_values, mask=conv.is_null())
    return table.set_column(table.schema.get_field_index("conversations"), "conversations", new_conv)


def conversations_from_turns(
    table: pa.Table, keep_turn: np.ndarray, texts: pa.Array | None = None
) -> pa.Table:
    """Return `table` with only the turns where keep_turn is True (optionally with new texts)."""
    conv = table.column("conversations").combine_chunks()
    offsets = conv.offsets.to_numpy().astype(np.int64)
    values = conv.values.slice(offsets[0], offsets[-1] - offsets[0])
    if texts is not None:
        fields = [values.field(f.name) if f.name != "text" else texts for f in MESSAGE_TYPE]
        values = pa.StructArray.from_arrays(fields, fields=list(MESSAGE_TYPE))
    offsets = offsets - offsets[0]
    kept_before = np.concatenate([[0], np.cumsum(keep_turn, dtype=np.int64)])
    new_offsets = kept_before[offsets]
    new_values = values.filter(pa.array(keep_turn))
    new_conv = pa.ListArray.from_arrays(pa.array(new_offsets, pa.int32()), new_values)
    return table.set_column(table.schema.get_field_index("conversations"), "conversations", new_conv)


def public_columns(schema: pa.Schema) -> list[str]:
    """Columns users see in kept/: everything but the runner's bookkeeping."""
    return [n for n in schema.names if not n.startswith(INTERNAL_PREFIX)]
