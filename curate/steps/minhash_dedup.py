"""minhash_dedup: drop near-duplicate conversations (MinHash LSH), keeping one row per cluster.

The three phases of a global step, and why each is cheap:
  summarize  per batch: signatures in one compiled pass (`_minhash`), then one row per (document,
             band) with the band's bucket hash, partitioned by bucket. Each row also carries an
             8-bit-per-permutation sketch of the signature (b-bit minhash) so candidates can be
             verified later without shipping full signatures around.
  resolve    per partition: documents sharing a bucket are candidates; each is compared with the
             bucket's first member and with its predecessor (chain + star edges, never all pairs),
             and only pairs whose estimated Jaccard reaches `min_similarity` become edges.
  finalize   edges only (a few per duplicate): connected components, one kept row per component
             by the keep policy, and a decision for every other member.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curate.registry import register
from curate.schema import DROP_DETAIL, DROP_REASON, KEY
from curate.steps import _minhash
from curate.steps._clusters import clusters, edges_schema, edges_table, keep_rank
from curate.steps.base import GlobalStep, Params
from curate.textkey import TurnSelection, joined_turns


class MinhashDedupParams(Params):
    turns: TurnSelection = Field("all", description="which turns are hashed: all, user, first_pair")
    shingle: Literal["word", "char"] = Field(
        "word", description="word n-grams, or character n-grams for scripts without spaces"
    )
    ngram: int = Field(5, ge=1, le=64, description="shingle length in words (or characters)")
    num_perm: int = Field(112, ge=8, le=1024, description="permutations per signature")
    threshold: float = Field(
        0.75,
        gt=0.0,
        lt=1.0,
        description="Jaccard from which rows are duplicates; picks bands x rows when they are not given",
    )
    num_bands: int | None = Field(
        None, ge=1, le=1024, description="LSH bands (with rows_per_band; default: datasketch's optimum for threshold)"
    )
    rows_per_band: int | None = Field(None, ge=1, le=1024, description="rows per LSH band")
    min_similarity: float = Field(
        0.7, ge=0.0, le=1.0, description="candidates below this estimated Jaccard are not duplicates (0 = no check)"
    )
    seed: int = Field(1, ge=0, le=2**32 - 1, description="permutation seed (datasketch's)")
    keep: Literal["first", "longest", "score"] = Field("first", description="which row of a cluster is kept")
    score_column: str | None = Field(None, description="with keep: score, the column whose highest value is kept")
    strip_markup: bool = Field(
        True, description="ignore HTML tags and entities, so an HTML rendering matches its Markdown"
    )
    partitions: int = Field(16, ge=1, le=4096, description="bucket partitions resolved in parallel")

    @model_validator(mode="after")
    def _check(self):
        if (self.num_bands is None) != (self.rows_per_band is None):
            raise ValueError("num_bands and rows_per_band go together; set both or neither")
        if self.num_bands is not None and self.num_bands * self.rows_per_band > self.num_perm:
            raise ValueError(
                f"num_bands x rows_per_band must be <= num_perm ({self.num_bands} x {self.rows_per_band} > {self.num_perm})"
            )
        if self.keep == "score" and not self.score_column:
            raise ValueError("keep: score needs score_column (e.g. a q_* column of quality_heuristics)")
        return self


# datasketch's optimum (below) for common (threshold, num_perm) pairs, the default first: finding it
# takes 10 ms, but importing datasketch (and scipy.integrate with it) ~0.2 s of CPU in every process
# that builds the step (beyond what numba imports anyway), 1.5% of the five-step recipe at 20k rows.
# A test recomputes each with datasketch.
KNOWN_LSH_SHAPES: dict[tuple[float, int], tuple[int, int]] = {
    (0.75, 112): (14, 8),
    (0.7, 112): (16, 7),
    (0.8, 112): (11, 10),
    (0.85, 112): (9, 12),
    (0.9, 112): (7, 16),
    (0.7, 128): (18, 7),
    (0.75, 128): (16, 8),
    (0.8, 128): (12, 10),
    (0.85, 128): (9, 13),
    (0.9, 128): (7, 18),
    (0.7, 256): (28, 9),
    (0.75, 256): (25, 10),
    (0.8, 256): (21, 12),
    (0.85, 256): (16, 16),
    (0.9, 256): (12, 21),
}


def lsh_shape(p: MinhashDedupParams) -> tuple[int, int]:
    """(bands, rows): given, or datasketch's optimum for the threshold.

    False negatives weigh 4x false positives in that optimum because candidates are verified
    afterwards (min_similarity) and a missed pair is never seen again: at 0.75 with 112
    permutations this is 14 x 8, the setting datatrove and the other peers use."""
    if p.num_bands is not None:
        return p.num_bands, p.rows_per_band
    known = KNOWN_LSH_SHAPES.get((p.threshold, p.num_perm))
    if known is not None:
        return known
    from datasketch.lsh import _optimal_param

    return _optimal_param(p.threshold, p.num_perm, 0.2, 0.8)


@register
class MinhashDedup(GlobalStep):
    """Near duplicates (MinHash LSH): one row per cluster is kept, the others point at it."""

    name = "minhash_dedup"
    Params = MinhashDedupParams
    columns = {"duplicate_of": pa.string(), "dup_cluster": pa.string(), "dup_similarity": pa.float32()}

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self.bands, self.rows = lsh_shape(params)
        self.a, self.b = _minhash.datasketch_permutations(params.num_perm, params.seed)

    def num_partitions(self) -> int:
        return self.params.partitions

    def text(self, live: pa.Table) -> pa.Array:
        """The selected turns joined by newlines, cleaned for hashing."""
        joined = joined_turns(live, self.params.turns, "\n")
        return _minhash.clean_texts(joined) if self.params.strip_markup else pc.utf8_lower(joined)

    def summarize(self, live: pa.Table) -> pa.Table:
        p = self.params
        text = self.text(live)
        sig, n_shingles = _minhash.signatures(text, p.ngram, p.shingle, self.a, self.b)
        has = n_shingles > 0  # a row with no words is nobody's duplicate
        sig = sig[has]
        n = len(sig)
        buckets = _minhash.band_hashes(sig[:, : self.bands * self.rows], self.bands, self.rows).reshape(-1)
        sketch = np.ascontiguousarray(sig.astype(np.uint8))  # low byte of each permutation
        row = pa.array(np.repeat(np.nonzero(has)[0], self.bands))  # the live row of each (row, band)
        return pa.table(
            {
                KEY: live.column(KEY).take(row),
                "id": live.column("id").take(row),
                "_bucket": pa.array(buckets.view(np.int64)),
                "_partition": pa.array((buckets % np.uint64(self.num_partitions())).astype(np.int32)),
                "_sketch": pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(p.num_perm),
                    n * self.bands,
                    [None, pa.py_buffer(np.repeat(sketch, self.bands, axis=0).tobytes())],
                ),
                "_rank": keep_rank(live, text, self.params.keep, self.params.score_column, self.name).take(row),
            }
        )

    def resolve_partition(self, summaries: pa.Table) -> pa.Table:
        if summaries.num_rows == 0:
            return edges_schema().empty_table()
        keys = summaries.column(KEY).to_numpy()
        buckets = summaries.column("_bucket").to_numpy()
        order = np.lexsort((keys, buckets))  # by bucket, then input order
        bk = buckets[order]
        same_as_prev = np.concatenate([[False], bk[1:] == bk[:-1]])
        group_start = np.maximum.accumulate(np.where(~same_as_prev, np.arange(len(bk)), 0))
        member = np.nonzero(same_as_prev)[0]  # every row but the first of its bucket
        # star (to the bucket's first row) and chain (to the previous row) edges, as rows of `summaries`
        src = order[np.concatenate([group_start[member], member - 1])]
        dst = order[np.concatenate([member, member])]
        differ = keys[src] != keys[dst]  # the same document in two rows of one bucket is no pair
        src, dst = src[differ], dst[differ]
        if len(src) == 0:
            return edges_schema().empty_table()
        # One edge per pair of rows, in (src key, dst key) order: keys are unique per row in a bucket.
        n = np.int64(summaries.num_rows)
        pairs = np.unique(src.astype(np.int64) * n + dst)
        src, dst = pairs // n, pairs % n
        # Only the rows in a pair are read past this point: most rows are alone in their bucket.
        width = self.params.num_perm
        raw = np.frombuffer(summaries.column("_sketch").combine_chunks().buffers()[1], np.uint8)
        sketches = raw[: summaries.num_rows * width].reshape(-1, width)
        sim = _minhash.estimated_jaccard(sketches[src], sketches[dst])
        ok = sim >= self.params.min_similarity
        src, dst, sim = src[ok], dst[ok], sim[ok]
        return edges_table(summaries, keys, src, dst, sim)

    def finalize(self, partials: list[pa.Table]) -> pa.Table:
        c = clusters(partials)
        if c is None:
            return self.decision_schema().empty_table()
        kept_ids = c.id[c.kept[c.removed]]
        best = c.best[c.removed]
        return pa.table(
            {
                KEY: pa.array(c.key[c.removed], pa.int64()),
                DROP_REASON: pa.array(["near_duplicate"] * len(c.removed), pa.string()),
                DROP_DETAIL: pa.array(
                    [f"near duplicate of {k} (estimated Jaccard {s:.2f})" for k, s in zip(kept_ids, best)], pa.string()
                ),
                "duplicate_of": pa.array(kept_ids, pa.string()),
                "dup_cluster": pa.array(kept_ids, pa.string()),
                "dup_similarity": pa.array(best, pa.float32()),
            }
        )
