"""split_conversations: conversations longer than `max_tokens` become several samples, cut at turn
boundaries, ids `{id}_{k}`.

A conversation is cut into *exchanges*: a user turn with every reply up to the next user turn (turns
before the first user turn form their own). Exchanges are packed greedily into pieces of at most
`max_tokens` (each turn costs its tokens + `turn_overhead` for the chat template's role markers,
FastChat's figure is 6); a leading system turn is repeated at the head of every piece.

FastChat's `split_long_conversation` loses data at two edges, fixed here:
  - an exchange longer than `max_tokens` on its own: FastChat emits an empty sample and then one over
    the limit; here it becomes its own piece, rejected as `split_exchange_over_max_tokens` (the
    default, it would be truncated in training) or kept and marked (`oversized: keep`);
  - a last exchange that overflows the running piece: FastChat closes the piece and drops the last
    exchange; here it starts the next piece.

Tokens are counted with a real tokenizer when `tokenizer:` names a `tokenizer.json` (or a folder
holding one), loaded with Hugging Face `tokenizers`; without one, an estimate: ASCII characters /
`chars_per_token` + one token per other character (CJK is about one token per character, so the
estimate errs long for Cyrillic/Greek, which is the safe side). Rows whose UTF-8 byte count already
fits are never tokenized (a byte-level or byte-fallback tokenizer gives at most one token per byte).
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.readers import INDEX_SHIFT
from curate.registry import register
from curate.schema import KEY, MESSAGES, turns_of
from curate.steps._tokens import TokenCounter, tokenizer_file
from curate.steps.base import MapStep, Params, StepOutput, set_column

MAX_PIECES = 1 << INDEX_SHIFT  # a split row's key is its parent's key + piece number
_SUB_INDEX = MAX_PIECES - 1


class SplitParams(Params):
    max_tokens: int = Field(
        2048, ge=16, le=10_000_000, description="token budget per sample (the training context length)"
    )
    tokenizer: str | None = Field(
        None, description="path to a tokenizer.json (or a model folder holding one); none: estimate"
    )
    chars_per_token: float = Field(
        4.0, gt=0, le=20, description="the estimate without a tokenizer: ASCII characters per token"
    )
    turn_overhead: int = Field(
        6, ge=0, le=1000, description="tokens added per turn for the chat template's role markers"
    )
    repeat_system: bool = Field(True, description="start every piece with the conversation's system turn")
    oversized: Literal["reject", "keep"] = Field(
        "reject",
        description="an exchange over max_tokens on its own: reject that piece with a reason, or keep it marked",
    )

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_exists(cls, v: str | None) -> str | None:
        return tokenizer_file(v)


def _per_row(per_turn: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of each row's turns (0 for a row without turns)."""
    sums = np.zeros(len(offsets) - 1, np.int64)
    nonempty = np.diff(offsets) > 0
    if nonempty.any():
        sums[nonempty] = np.add.reduceat(per_turn, offsets[:-1][nonempty])
    return sums


@register
class SplitConversations(MapStep):
    """Split conversations over max_tokens into samples at turn boundaries ({id}_{k})."""

    name = "split_conversations"
    Params = SplitParams
    changes_row_count = True
    # split_tokens: the sample's tokens (template overhead included) where they were counted; null for
    # rows whose byte count already fits, which are never tokenized.
    columns = {"split_of": pa.string(), "split_part": pa.int32(), "split_parts": pa.int32(), "split_tokens": pa.int32()}

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self._counter = TokenCounter(params.tokenizer, params.chars_per_token, self.name)

    def setup(self) -> None:
        self._counter.load()

    def token_counts(self, texts: pa.Array, byte_counts: np.ndarray, needed: np.ndarray) -> np.ndarray:
        """Tokens per turn, counted only where `needed` (elsewhere the byte count, an upper bound)."""
        counts = byte_counts.copy()
        idx = np.nonzero(needed)[0]
        if len(idx):
            counts[idx] = self._counter.count(texts.take(pa.array(idx)))
        return counts

    def process(self, table: pa.Table) -> StepOutput:
        self.setup()
        p = self.params
        t = turns_of(table)
        n = table.num_rows
        texts = pc.fill_null(t.text, "")
        byte_counts = pc.binary_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
        # Upper bound first: bytes (+1 for a tokenizer's leading-space marker) per turn.
        row_upper = _per_row(byte_counts + 1 + p.turn_overhead, t.offsets)
        counted = row_upper > p.max_tokens  # rows whose tokens are counted, not bounded
        tokens = self.token_counts(texts, byte_counts, np.repeat(counted, np.diff(t.offsets))) + p.turn_overhead
        row_tokens = _per_row(tokens, t.offsets)
        keys = table.column(KEY).to_numpy()
        long_rows = np.nonzero(row_tokens > p.max_tokens)[0]
        counters: Counter = Counter()
        if not len(long_rows):
            return StepOutput(
                self._annotate(table, None, None, None, np.where(counted, row_tokens, -1)), counters=counters
            )

        # Plan: for every output row, its parent row, its turn indices (flat) and its verdict.
        parent, turn_lists, part, parts, piece_tokens, reason, detail = [], [], [], [], [], [], []

        def whole(r: int, ntok: int, why: str | None = None, what: str | None = None) -> None:
            parent.append(r), turn_lists.append(list(range(t.offsets[r], t.offsets[r + 1]))), part.append(None)
            parts.append(None), piece_tokens.append(ntok), reason.append(why), detail.append(what)

        long_set = set(long_rows.tolist())
        ids = table.column("id").to_pylist()
        for r in range(n):
            lo, hi = int(t.offsets[r]), int(t.offsets[r + 1])
            if r not in long_set:
                whole(r, int(row_tokens[r]) if counted[r] else -1)
                continue
            if keys[r] & _SUB_INDEX:  # already a piece of an earlier split: never split twice
                counters["already_split"] += 1
                whole(r, int(row_tokens[r]))
                continue
            pieces = self._pieces(t.role[lo:hi], tokens[lo:hi])
            if len(pieces) > MAX_PIECES:
                counters["rejected_too_many_pieces"] += 1
                whole(
                    r,
                    int(row_tokens[r]),
                    "split_too_many_pieces",
                    f"{row_tokens[r]:,} tokens would make {len(pieces)} pieces of <= {p.max_tokens}; at most {MAX_PIECES}",
                )
                continue
            counters["rows_split"] += 1
            counters["pieces"] += len(pieces)
            for k, (turns, ntok, over) in enumerate(pieces):
                parent.append(r)
                turn_lists.append([lo + i for i in turns])
                part.append(k), parts.append(len(pieces)), piece_tokens.append(ntok)
                if over:
                    counters["oversized_exchanges"] += 1
                    what = f"turns {turns[0]}-{turns[-1]} of {ids[r]}: {ntok:,} tokens > max_tokens {p.max_tokens:,}"
                    if p.oversized == "reject":
                        reason.append("split_exchange_over_max_tokens"), detail.append(what)
                        continue
                reason.append(None), detail.append(None)

        parent_arr = np.asarray(parent, np.int64)
        out = table.take(pa.array(parent_arr))
        flat = np.fromiter((i for ts in turn_lists for i in ts), np.int64)
        lengths = np.fromiter((len(ts) for ts in turn_lists), np.int64, count=len(turn_lists))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        conv = table.column(MESSAGES).combine_chunks()
        values = conv.values.slice(conv.offsets[0].as_py(), int(t.offsets[-1]))
        new_conv = pa.ListArray.from_arrays(pa.array(offsets), values.take(pa.array(flat)))
        out = out.set_column(out.schema.get_field_index(MESSAGES), MESSAGES, new_conv)
        part_arr = np.array([-1 if k is None else k for k in part], np.int64)
        split = part_arr >= 0
        new_ids = [f"{ids[r]}_{k}" if k is not None else ids[r] for r, k in zip(parent, part)]
        out = out.set_column(out.schema.get_field_index("id"), "id", pa.array(new_ids, pa.string()))
        out = out.set_column(
            out.schema.get_field_index(KEY), KEY, pa.array(keys[parent_arr] + np.where(split, part_arr, 0))
        )
        split_of = pa.array([ids[r] if k is not None else None for r, k in zip(parent, part)], pa.string())
        out = self._annotate(out, split_of, part, parts, np.asarray(piece_tokens))
        return StepOutput(out, reason=reason, detail=detail, counters=counters)

    def _pieces(self, roles: np.ndarray, tokens: np.ndarray) -> list[tuple[list[int], int, bool]]:
        """Greedy packing of exchanges: [(turn indices, tokens, over_limit)], in order."""
        budget = self.params.max_tokens
        head: list[int] = []
        start = 0
        if len(roles) and roles[0] == "system" and self.params.repeat_system:
            head, start = [0], 1
        head_tokens = int(tokens[head].sum()) if head else 0
        exchanges: list[list[int]] = []
        for i in range(start, len(roles)):
            if not exchanges or roles[i] == "user":  # an exchange starts at each user turn
                exchanges.append([i])
            else:
                exchanges[-1].append(i)
        pieces: list[tuple[list[int], int, bool]] = []
        current: list[int] = []
        current_tokens = 0
        for ex in exchanges:
            ex_tokens = int(tokens[ex].sum())
            if current and head_tokens + current_tokens + ex_tokens > budget:
                pieces.append((head + current, head_tokens + current_tokens, False))
                current, current_tokens = [], 0
            if head_tokens + ex_tokens > budget:  # alone over the limit: a piece of its own, marked
                pieces.append((head + ex, head_tokens + ex_tokens, True))
                continue
            current += ex
            current_tokens += ex_tokens
        if current:
            pieces.append((head + current, head_tokens + current_tokens, False))
        return pieces

    def _annotate(self, table: pa.Table, split_of, part, parts, tokens) -> pa.Table:
        n = table.num_rows
        table = set_column(table, "split_of", split_of if split_of is not None else pa.nulls(n, pa.string()))
        table = set_column(
            table, "split_part", pa.array(part, pa.int32()) if part is not None else pa.nulls(n, pa.int32())
        )
        table = set_column(
            table, "split_parts", pa.array(parts, pa.int32()) if parts is not None else pa.nulls(n, pa.int32())
        )
        tokens = np.minimum(tokens, 2**31 - 1)
        return set_column(table, "split_tokens", pa.array(tokens, pa.int32(), mask=tokens < 0))
