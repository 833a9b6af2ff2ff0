"""select: keep a budget of the best rows by a score column; reject the rest as `not_selected`.

Score-first (Deita, AlpaGasus, Cherry's IFD all rank then cut): rows are ordered by the score,
highest first (or lowest, `ascending`), ties and null scores broken by `_curate_key` (input order),
so the same input gives the same selection on any runner. The budget is `rows` or `fraction` of the
live rows, overall or for each value of a column (`per: source_file`, or a provenance column).
Every row gets its `select_rank` (1 = best, within its group); a row not selected is rejected with
`not_selected` and its rank and score in the detail, so nothing is lost.

Phases: summarize keeps 16 bytes per row (key, score) plus the group; rows are partitioned by group
(one partition when the budget is overall), and each partition is ranked where it is resolved, in
one worker: the budget of a group is exact only if the group is seen whole. Memory of that worker:
~24 bytes per row of the largest group (100M rows: ~2.4 GB); the driver only concatenates. Unlike dedup's, the decisions name every
row (its rank), so the decisions file is ~40 bytes per row.
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curate.errors import UserError
from curate.registry import register
from curate.schema import DROP_DETAIL, DROP_REASON, KEY
from curate.steps.base import GlobalStep, Params
from curate.textkey import TurnSelection, joined_turns


class SelectParams(Params):
    score_column: str = Field("quality_score", description="the column ranked (an earlier step's score)")
    rows: int | None = Field(None, ge=0, le=10**12, description="keep this many rows (per group with `per`)")
    fraction: float | None = Field(
        None, ge=0.0, le=1.0, description="keep this fraction of the live rows, rounded half up (default 0.1)"
    )
    per: str | None = Field(None, description="a column: the budget applies to each of its values (e.g. source_file)")
    ascending: bool = Field(False, description="keep the lowest scores instead (e.g. perplexity)")
    partitions: int = Field(16, ge=1, le=4096, description="with per: group partitions ranked in parallel")
    min_distance: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="diversity (Deita): skip a row whose cosine distance to a row already selected is below this",
    )
    turns: TurnSelection = Field("all", description="with min_distance: which turns are embedded (wordllama)")
    dim: int = Field(256, ge=64, le=256, description="with min_distance: embedding dimensions")

    @model_validator(mode="after")
    def _budget(self):
        if self.rows is not None and self.fraction is not None:
            raise ValueError("rows and fraction are exclusive; set one of them")
        return self

    def budget(self, n: int) -> int:
        if self.rows is not None:
            return min(self.rows, n)
        fraction = 0.1 if self.fraction is None else self.fraction
        return min(n, int(np.floor(n * fraction + 0.5)))


@register
class Select(GlobalStep):
    """Keeps a budget of the best-scored rows (overall or per group); the rest are rejected as not_selected."""

    name = "select"
    Params = SelectParams
    columns = {"select_rank": pa.int64()}

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self.embedder = None

    def num_partitions(self) -> int:
        return self.params.partitions if self.params.per else 1

    def setup(self) -> None:
        if self.params.min_distance is not None and self.embedder is None:
            from curate.steps._embed import WordLlamaEmbedder

            self.embedder = WordLlamaEmbedder(self.params.dim)

    def _column(self, live: pa.Table, name: str, what: str) -> pa.ChunkedArray:
        if name not in live.column_names:
            raise UserError(
                f"select: {what} '{name}' is not a column; an earlier step must add it "
                f"(columns: {', '.join(c for c in live.column_names if not c.startswith('_'))})"
            )
        return live.column(name)

    def summarize(self, live: pa.Table) -> pa.Table:
        p = self.params
        score = self._column(live, p.score_column, "score_column")
        if not (pa.types.is_integer(score.type) or pa.types.is_floating(score.type) or pa.types.is_boolean(score.type)):
            raise UserError(f"select: score_column '{p.score_column}' holds {score.type}, not numbers")
        values = pc.cast(score, pa.float64())
        cols = {KEY: live.column(KEY), "id": live.column("id"), "_score": values}
        if p.per:
            group = pc.cast(self._column(live, p.per, "per"), pa.string())
            cols["_group"] = group
            values_, inverse = np.unique(
                pc.fill_null(group, "").to_numpy(zero_copy_only=False).astype(str), return_inverse=True
            )
            part = np.array([zlib.crc32(v.encode("utf-8", "surrogatepass")) % p.partitions for v in values_], np.int32)
            cols["_partition"] = pa.array(part[inverse] if len(inverse) else np.zeros(0, np.int32))
        else:
            cols["_partition"] = pa.array(np.zeros(live.num_rows, np.int32))
        if p.min_distance is not None:
            self.setup()
            quant = np.clip(np.rint(self.embedder.embed(joined_turns(live, p.turns, "\n")) * 127), -127, 127).astype(
                np.int8
            )
            cols["_emb"] = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(p.dim), live.num_rows, [None, pa.py_buffer(quant.tobytes())]
            )
        return pa.table(cols)

    def resolve_partition(self, summaries: pa.Table) -> pa.Table:
        if summaries.num_rows == 0:
            return self.decision_schema().empty_table()
        p = self.params
        keys = summaries.column(KEY).to_numpy()
        score = summaries.column("_score").to_numpy(zero_copy_only=False).astype(np.float64)
        nulls = np.isnan(score)
        signed = np.where(nulls, np.inf, score if p.ascending else -score)  # best first; unscored last
        if p.per:
            groups = pc.fill_null(summaries.column("_group"), "").to_numpy(zero_copy_only=False)
            _, group = np.unique(groups.astype(str), return_inverse=True)
        else:
            group = np.zeros(len(keys), np.int64)
        order = np.lexsort((keys, signed, group))
        g = group[order]
        start = np.concatenate([[True], g[1:] != g[:-1]])
        first = np.maximum.accumulate(np.where(start, np.arange(len(g)), 0))
        rank_sorted = np.arange(len(g)) - first + 1
        size = np.bincount(group)
        budget = np.array([p.budget(int(n)) for n in size])
        rank = np.empty(len(g), np.int64)
        rank[order] = rank_sorted
        similar_to = np.full(len(keys), -1)
        sim = np.zeros(len(keys), np.float32)
        if p.min_distance is None:
            selected = rank <= budget[group]
        else:
            raw = np.frombuffer(summaries.column("_emb").combine_chunks().buffers()[1], np.int8)
            emb = raw[: len(keys) * p.dim].reshape(-1, p.dim).astype(np.float32)
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)  # unit length again after int8
            selected = np.zeros(len(keys), bool)
            starts = np.nonzero(start)[0]
            for a, b in zip(starts, list(starts[1:]) + [len(order)]):
                _diverse(order[a:b], emb, int(budget[g[a]]), 1.0 - p.min_distance, selected, similar_to, sim)
        rejected = ~selected
        n_of = size[group]
        score_text = pc.if_else(pa.array(nulls), pa.scalar("none"), pc.cast(pc.round(pa.array(score), 4), pa.string()))
        detail = pc.binary_join_element_wise(
            "rank ",
            pc.cast(pa.array(rank), pa.string()),
            " of ",
            pc.cast(pa.array(n_of), pa.string()),
            ", score ",
            score_text,
            ", budget ",
            pc.cast(pa.array(budget[group]), pa.string()),
            "",
        )
        if p.min_distance is not None:
            ids = summaries.column("id").to_numpy(zero_copy_only=False)
            too_close = np.nonzero(similar_to >= 0)[0]
            detail = detail.to_pylist()
            for i in too_close:
                detail[i] += f", too similar to {ids[similar_to[i]]} (cosine {sim[i]:.3f})"
            detail = pa.array(detail, pa.string())
        reason = pc.if_else(pa.array(rejected), pa.scalar("not_selected"), pa.scalar(None, pa.string()))
        return pa.table(
            {
                KEY: pa.array(keys, pa.int64()),
                DROP_REASON: reason,
                DROP_DETAIL: pc.if_else(pa.array(rejected), detail, pa.scalar(None, pa.string())),
                "select_rank": pa.array(rank, pa.int64()),
            }
        )


def _diverse(
    order: np.ndarray,
    emb: np.ndarray,
    budget: int,
    max_cos: float,
    selected: np.ndarray,
    similar_to: np.ndarray,
    sim: np.ndarray,
    chunk: int = 256,
) -> None:
    """Deita's score-first, diversity-aware selection over one group (rows in score order): take a
    row unless its cosine to a row already taken exceeds max_cos; stop at the budget. Candidates are
    checked in chunks against the taken rows with one matrix product, then in order within the chunk."""
    taken: list[int] = []
    pos = 0
    while len(taken) < budget and pos < len(order):
        cand = order[pos : pos + chunk]
        pos += len(cand)
        if taken:
            sims = emb[cand] @ emb[taken].T
            best = sims.argmax(axis=1)
            best_sim = sims[np.arange(len(cand)), best]
        else:
            best, best_sim = np.zeros(len(cand), int), np.full(len(cand), -np.inf)
        first_new = len(taken)
        for j, i in enumerate(cand):
            if len(taken) >= budget:
                break
            s, other = best_sim[j], (taken[best[j]] if best_sim[j] > -np.inf else -1)
            if len(taken) > first_new:  # rows taken from this chunk
                within = emb[taken[first_new:]] @ emb[i]
                k = int(within.argmax())
                if within[k] > s:
                    s, other = within[k], taken[first_new + k]
            if s > max_cos:
                similar_to[i], sim[i] = other, s
            else:
                taken.append(int(i))
    selected[taken] = True
