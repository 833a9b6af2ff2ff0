"""The canonical row every reader produces and every step reads.

A row is one conversation (the same schema internally and in the published kept set):
  id            string, the input's own id where it has one, else derived from file and index
  messages      list<MESSAGE_TYPE>, one struct per turn:
                  role               one of ROLES (the input's speaker names mapped)
                  content            the visible text, reasoning and tool calls removed; never null
                                     inside a run ("" for a call-only assistant turn)
                  reasoning_content  the reasoning trace, or null
                  tool_calls         list<{id, type, function: {name, arguments}}> or null;
                                     arguments is always a JSON string, as the input had it
                  tool_call_id       tool messages: the call they answer, else null
                  name               tool messages: the function's name, else null
                  original_role      the input's speaker name (for writers that give the shape back)
                  extra              JSON object (string) of every other message field, or null
  tools         the row's tool schema: JSON string of a list of {"type": "function", "function":
                {name, description, parameters}}, or null
  source_file   the path the row was read from, as the user gave it
  source_index  the record's 0-based position in that file (line for JSONL, element for arrays)
  source, license, generator, category, dataset, model
                provenance fields of the input, lifted to columns (null where absent)
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
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AliasChoices, Field

ROLES = ("system", "user", "assistant", "tool")
MESSAGES = "messages"

TOOL_CALL_TYPE = pa.struct(
    [
        pa.field("id", pa.string()),
        pa.field("type", pa.string()),
        pa.field("function", pa.struct([pa.field("name", pa.string()), pa.field("arguments", pa.string())])),
    ]
)

MESSAGE_TYPE = pa.struct(
    [
        pa.field("role", pa.string()),
        pa.field("content", pa.string()),
        pa.field("reasoning_content", pa.string()),
        pa.field("tool_calls", pa.list_(TOOL_CALL_TYPE)),
        pa.field("tool_call_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("original_role", pa.string()),
        pa.field("extra", pa.string()),
    ]
)

# Input fields that say where a row came from, lifted from `extra` to string columns so that stats,
# the report and `select` can group by them.
PROVENANCE_COLUMNS = ("source", "license", "generator", "category", "dataset", "model")

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
        pa.field(MESSAGES, pa.list_(MESSAGE_TYPE)),
        pa.field("tools", pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("source_index", pa.int64()),
        *[pa.field(name, pa.string()) for name in PROVENANCE_COLUMNS],
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


# What a text step can read: the content of turns of a role, or the reasoning traces ("reasoning").
# Each step declares its parts as a parameter with a default (docs/parts.md lists them in one table).
Part = Literal["system", "user", "assistant", "tool", "reasoning"]


def parts_param(default: list[str], description: str):
    """The `parts` parameter of a text step (`roles` is accepted as its old name)."""
    return Field(
        default,
        min_length=1,
        validation_alias=AliasChoices("parts", "roles"),
        description=f"{description}: content of these roles, and `reasoning` for traces",
    )


@dataclass
class Turns:
    """The messages column flattened to one text per entry, for vectorised steps.

    Without parts, one entry per turn: its role and visible content. With parts (see `turns_of`),
    one entry per selected piece: a turn's content (role = its role) or its trace (role =
    "reasoning"), trace first as it comes first in the turn. row[i] is the row (within the table)
    of entry i; position[i] the turn's index inside its conversation; offsets the entries' list
    offsets per row (len = rows + 1); turn[i] the entry's turn among all flattened turns.
    """

    role: np.ndarray  # object array of str
    text: pa.Array  # pa.string(), one per entry
    row: np.ndarray  # int64
    position: np.ndarray  # int64
    offsets: np.ndarray  # int64
    turn: np.ndarray | None = None  # int64, with parts only
    is_reasoning: np.ndarray | None = None  # bool, with parts only

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1

    def texts(self) -> list[str]:
        return self.text.to_pylist()


def _message_values(table: pa.Table) -> tuple[pa.StructArray, np.ndarray, pa.Array]:
    """(turn structs, offsets rebased to 0, the list's validity) of the messages column."""
    conv = table.column(MESSAGES).combine_chunks()
    offsets = conv.offsets.to_numpy().astype(np.int64)
    # A sliced ListArray has offsets that do not start at 0; normalise.
    values = conv.values.slice(offsets[0], offsets[-1] - offsets[0])
    return values, offsets - offsets[0], conv.is_null()


def turns_of(table: pa.Table, parts: list[str] | tuple[str, ...] | None = None) -> Turns:
    """Flatten `messages` without a Python loop over rows; with `parts`, only the texts a step reads
    (content of the listed roles; traces when "reasoning" is listed and the turn has one)."""
    values, offsets, _ = _message_values(table)
    lengths = np.diff(offsets)
    row = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    position = np.arange(len(row), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    role = values.field("role").to_numpy(zero_copy_only=False)
    content = values.field("content")
    if parts is None:
        return Turns(role=role, text=content, row=row, position=position, offsets=offsets)
    n = len(role)
    # Two slots per turn, trace (2i) before content (2i + 1).
    slots = np.zeros(2 * n, bool)
    slots[1::2] = np.isin(role, [p for p in parts if p != "reasoning"]) if n else False
    if "reasoning" in parts:
        slots[0::2] = values.field("reasoning_content").is_valid().to_numpy(zero_copy_only=False)
    chosen = np.nonzero(slots)[0]
    turn = chosen // 2
    is_reasoning = chosen % 2 == 0
    if len(chosen) == n and not is_reasoning.any():
        text = content  # every turn's content and no trace: the common case costs no copy
    else:
        both = pa.concat_arrays([content, values.field("reasoning_content")])
        text = both.take(pa.array(np.where(is_reasoning, turn + n, turn)))
    counts = np.bincount(row[turn], minlength=len(lengths)) if len(turn) else np.zeros(len(lengths), np.int64)
    return Turns(
        role=np.where(is_reasoning, "reasoning", role[turn]).astype(object),
        text=text,
        row=row[turn],
        position=position[turn],
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        turn=turn.astype(np.int64),
        is_reasoning=is_reasoning,
    )


def has_tool_calls(table: pa.Table) -> np.ndarray:
    """Per flattened turn (the order of `turns_of(table)`): does it carry tool calls?"""
    values, _, _ = _message_values(table)
    return pc.fill_null(pc.list_value_length(values.field("tool_calls")), 0).to_numpy(zero_copy_only=False) > 0


def visible_texts(table: pa.Table) -> pa.Array:
    """Per turn, what a reader of the conversation sees: its content, then each tool call as
    `name arguments` on a line of its own; no trace. Dedup keys read this, so two rows that differ
    only in their calls are not duplicates."""
    values, _, _ = _message_values(table)
    content = values.field("content")
    calls = values.field("tool_calls")
    if calls.null_count == len(calls):
        return content
    flat = pc.list_flatten(calls)
    fn = pc.struct_field(flat, "function")
    one = pc.binary_join_element_wise(
        pc.fill_null(pc.struct_field(fn, "name"), ""), pc.fill_null(pc.struct_field(fn, "arguments"), ""), " "
    )
    lengths = pc.fill_null(pc.list_value_length(calls), 0).to_numpy(zero_copy_only=False)
    per_turn = pc.binary_join(
        pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32()), one), "\n"
    )
    has_calls = pc.greater(pa.array(lengths), 0)
    return pc.if_else(has_calls, pc.binary_join_element_wise(content, per_turn, "\n"), content)


def _rebuild(table: pa.Table, values: pa.StructArray, offsets: np.ndarray, null_mask: pa.Array | None) -> pa.Table:
    new_conv = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, mask=null_mask)
    return table.set_column(table.schema.get_field_index(MESSAGES), MESSAGES, new_conv)


def _replace_fields(values: pa.StructArray, new: dict[str, pa.Array]) -> pa.StructArray:
    fields = [new.get(f.name, values.field(f.name)) for f in MESSAGE_TYPE]
    return pa.StructArray.from_arrays(fields, fields=list(MESSAGE_TYPE))


def _scatter(old: pa.Array, where: np.ndarray, new: pa.Array) -> pa.Array:
    """`old` with old[where[k]] = new[k]: one take over old + new, no per-turn Python."""
    index = np.arange(len(old), dtype=np.int64)
    index[where] = len(old) + np.arange(len(where), dtype=np.int64)
    return pa.concat_arrays([old, new.cast(old.type)]).take(pa.array(index))


def with_texts(table: pa.Table, new_texts: pa.Array | list[str], turns: Turns | None = None) -> pa.Table:
    """Return `table` with the texts replaced (same turn count), other fields untouched: one per
    turn's content, or, given the `Turns` of a parts selection, one per entry of it."""
    values, offsets, nulls = _message_values(table)
    texts = new_texts if isinstance(new_texts, pa.Array) else pa.array(new_texts, pa.string())
    if turns is None or turns.turn is None or (len(turns.turn) == len(values) and not turns.is_reasoning.any()):
        return _rebuild(table, _replace_fields(values, {"content": texts}), offsets, nulls)
    mask = pa.array(turns.is_reasoning)
    new = {
        "content": _scatter(values.field("content"), turns.turn[~turns.is_reasoning], texts.filter(pc.invert(mask))),
        "reasoning_content": _scatter(
            values.field("reasoning_content"), turns.turn[turns.is_reasoning], texts.filter(mask)
        ),
    }
    return _rebuild(table, _replace_fields(values, new), offsets, nulls)


def conversations_from_turns(table: pa.Table, keep_turn: np.ndarray, texts: pa.Array | None = None) -> pa.Table:
    """Return `table` with only the turns where keep_turn is True (optionally with new contents)."""
    values, offsets, _ = _message_values(table)
    if texts is not None:
        values = _replace_fields(values, {"content": texts})
    kept_before = np.concatenate([[0], np.cumsum(keep_turn, dtype=np.int64)])
    return _rebuild(table, values.filter(pa.array(keep_turn, pa.bool_())), kept_before[offsets], None)


def published(table: pa.Table) -> pa.Table:
    """The rows as kept/ and rejected/ hold them: an assistant turn that only calls tools has null
    content, as OpenAI writes it (DeepSeek-R1's chat template renders the calls only then; Nemotron's
    accepts both). Inside a run content is never null, so text steps see plain strings."""
    if MESSAGES not in table.column_names or table.num_rows == 0:
        return table
    values, offsets, nulls = _message_values(table)
    content = values.field("content")
    call_only = pc.and_(pc.equal(content, ""), pa.array(has_tool_calls(table)))
    if not pc.any(call_only).as_py():
        return table
    return _rebuild(
        table,
        _replace_fields(values, {"content": pc.if_else(call_only, pa.scalar(None, pa.string()), content)}),
        offsets,
        nulls,
    )


def public_columns(schema: pa.Schema) -> list[str]:
    """Columns users see in kept/: everything but the runner's bookkeeping."""
    return [n for n in schema.names if not n.startswith(INTERNAL_PREFIX)]
