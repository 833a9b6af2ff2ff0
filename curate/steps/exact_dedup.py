"""exact_dedup: drop conversations whose normalised text equals an earlier one's."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.registry import register
from curate.schema import DROP_DETAIL, DROP_REASON, KEY
from curate.steps.base import GlobalStep, Params
from curate.textkey import TurnSelection, text_hashes


class ExactDedupParams(Params):
    turns: TurnSelection = Field("all", description="which turns form the key: all, user, first_pair")
    normalise: bool = Field(True, description="ignore case and whitespace differences")
    partitions: int = Field(16, ge=1, le=4096, description="hash partitions resolved in parallel")


@register
class ExactDedup(GlobalStep):
    """Exact duplicates: the first occurrence (input order) is kept, later copies point at it."""

    name = "exact_dedup"
    Params = ExactDedupParams
    columns = {"duplicate_of": pa.string()}

    def num_partitions(self) -> int:
        return self.params.partitions

    def summarize(self, live: pa.Table) -> pa.Table:
        # Rows with nothing to compare (e.g. no user turn under turns=user) are never duplicates.
        # 64-bit hashes: a false match among 1e9 distinct rows has probability ~3%.
        has_text, hashes = text_hashes(live, self.params.turns, self.params.normalise)
        mask = pa.array(has_text)
        hashes = hashes[has_text]
        return pa.table(
            {
                KEY: live.column(KEY).filter(mask),
                "id": live.column("id").filter(mask),
                "_hash": pa.array(hashes.view(np.int64)),
                "_partition": pa.array((hashes % np.uint64(self.num_partitions())).astype(np.int32)),
            }
        )

    def resolve_partition(self, summaries: pa.Table) -> pa.Table:
        if summaries.num_rows == 0:
            return self.decision_schema().empty_table()
        keys = summaries.column(KEY).to_numpy()
        hashes = summaries.column("_hash").to_numpy()
        order = np.lexsort((keys, hashes))  # by hash, then input order
        h = hashes[order]
        first_in_group = np.concatenate([[True], h[1:] != h[:-1]])
        group_start = np.maximum.accumulate(np.where(first_in_group, np.arange(len(h)), 0))
        dup = ~first_in_group
        kept_id = summaries.column("id").take(pa.array(order[group_start[dup]]))
        return pa.table(
            {
                KEY: pa.array(keys[order][dup], pa.int64()),
                DROP_REASON: pa.array(["exact_duplicate"] * int(dup.sum()), pa.string()),
                DROP_DETAIL: pc.binary_join_element_wise("duplicate of ", kept_id, ""),
                "duplicate_of": kept_id,
            }
        )
