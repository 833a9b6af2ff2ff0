"""semantic_dedup: drop conversations whose meaning repeats an earlier one's (embedding cosine),
keeping one row per cluster.

Embeddings: wordllama's mean-pooled token vectors (curate/steps/_embed.py; offline, ~20k texts/s per
core). Candidates come from random-hyperplane LSH (SimHash banding), which, unlike SemDeDup's
k-means, needs no global training pass, so the step is a plain global step and no process ever holds
every embedding:
  summarize  per batch: embeddings, `bands` x `bits` sign bits against fixed seeded hyperplanes,
             one row per (document, band) with its bucket hash, partitioned by bucket, carrying the
             embedding quantised to int8 (`dim` bytes) to verify candidates later;
  resolve    per partition: rows sorted by (bucket, key); each row is compared with the next
             `window` rows of its bucket (all pairs for buckets up to window + 1 rows), and pairs whose
             cosine reaches `threshold` become edges;
  finalize   edges only: connected components, one row kept per component (first, longest or
             highest score), shared with minhash_dedup (_clusters.py).
Memory per partition worker: (dim + ~40) bytes x bands per row of the partition; the summaries are
spread over `partitions` files, so more partitions (and more machines) scale past one machine's
memory. The driver holds only the edges. A pair at cosine c shares a band with probability
1 - (1 - p^bits)^bands, p = 1 - arccos(c)/pi: at the defaults (20 x 14) 0.91 at c = 0.9, 0.998 at 0.95.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.registry import register
from curate.schema import DROP_DETAIL, DROP_REASON, KEY
from curate.steps._clusters import clusters, edges_schema, edges_table, keep_rank
from curate.steps.base import GlobalStep, Params, concat_or_empty
from curate.textkey import TurnSelection, joined_turns


class SemanticDedupParams(Params):
    threshold: float = Field(0.9, gt=0.0, le=1.0, description="cosine from which two rows are duplicates")
    turns: TurnSelection = Field("all", description="which turns are embedded: all, user, first_pair")
    keep: Literal["first", "longest", "score"] = Field("first", description="which row of a cluster is kept")
    score_column: str | None = Field(None, description="with keep: score, the column whose highest value is kept")
    dim: int = Field(256, ge=64, le=256, description="embedding dimensions used (wordllama is Matryoshka-trained)")
    max_chars: int = Field(2000, ge=50, le=1_000_000, description="characters of each row embedded")
    bands: int = Field(20, ge=1, le=256, description="LSH bands")
    bits: int = Field(14, ge=1, le=62, description="hyperplane bits per band")
    window: int = Field(32, ge=1, le=10_000, description="rows of a bucket each row is compared with")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="hyperplane seed")
    partitions: int = Field(16, ge=1, le=4096, description="bucket partitions resolved in parallel")


@register
class SemanticDedup(GlobalStep):
    """Semantic duplicates (wordllama embeddings, LSH, cosine threshold): one row per cluster kept."""

    name = "semantic_dedup"
    Params = SemanticDedupParams
    columns = {
        "semantic_duplicate_of": pa.string(),
        "semantic_cluster": pa.string(),
        "semantic_similarity": pa.float32(),
    }

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self.embedder = None
        rng = np.random.default_rng(params.seed)
        self.planes = rng.standard_normal((params.dim, params.bands * params.bits)).astype(np.float32)

    def setup(self) -> None:
        if self.embedder is None:
            from curate.steps._embed import WordLlamaEmbedder

            self.embedder = WordLlamaEmbedder(self.params.dim, self.params.max_chars)

    def num_partitions(self) -> int:
        return self.params.partitions

    def summarize(self, live: pa.Table) -> pa.Table:
        self.setup()
        p = self.params
        text = joined_turns(live, p.turns, "\n")
        emb = self.embedder.embed(text)
        has = np.linalg.norm(emb, axis=1) > 0  # a row with no tokens is nobody's duplicate
        emb = emb[has]
        n = len(emb)
        bits = (emb @ self.planes > 0).reshape(n, p.bands, p.bits)
        weights = np.left_shift(np.uint64(1), np.arange(p.bits, dtype=np.uint64))
        code = (bits.astype(np.uint64) * weights).sum(axis=2, dtype=np.uint64)  # (n, bands)
        bucket = (code * np.uint64(0x9E3779B97F4A7C15)) ^ np.arange(p.bands, dtype=np.uint64) * np.uint64(
            0xC2B2AE3D27D4EB4F
        )
        bucket = bucket.reshape(-1)
        quant = np.clip(np.rint(emb * 127), -127, 127).astype(np.int8)
        row = pa.array(np.repeat(np.nonzero(has)[0], p.bands))
        return pa.table(
            {
                KEY: live.column(KEY).take(row),
                "id": live.column("id").take(row),
                "_bucket": pa.array(bucket.view(np.int64)),
                "_partition": pa.array((bucket % np.uint64(p.partitions)).astype(np.int32)),
                "_emb": pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(p.dim), n * p.bands, [None, pa.py_buffer(np.repeat(quant, p.bands, axis=0).tobytes())]
                ),
                "_rank": keep_rank(live, text, p.keep, p.score_column, self.name).take(row),
            }
        )

    def resolve_partition(self, summaries: pa.Table) -> pa.Table:
        if summaries.num_rows == 0:
            return edges_schema().empty_table()
        p = self.params
        keys = summaries.column(KEY).to_numpy()
        order = np.lexsort((keys, summaries.column("_bucket").to_numpy()))
        bk = summaries.column("_bucket").to_numpy()[order]
        src_parts, dst_parts = [], []
        for d in range(1, min(p.window, len(bk) - 1) + 1):
            same = np.nonzero(bk[d:] == bk[:-d])[0]
            if not len(same):
                break  # no bucket has more than d rows
            src_parts.append(order[same])
            dst_parts.append(order[same + d])
        if not src_parts:
            return edges_schema().empty_table()
        src, dst = np.concatenate(src_parts), np.concatenate(dst_parts)
        differ = keys[src] != keys[dst]
        src, dst = src[differ], dst[differ]
        n = np.int64(summaries.num_rows)
        pairs = np.unique(np.minimum(src, dst) * n + np.maximum(src, dst))
        src, dst = pairs // n, pairs % n
        raw = np.frombuffer(summaries.column("_emb").combine_chunks().buffers()[1], np.int8)
        emb = raw[: summaries.num_rows * p.dim].reshape(-1, p.dim)
        sim = np.einsum("ij,ij->i", emb[src].astype(np.float32), emb[dst].astype(np.float32)) / (127.0 * 127.0)
        ok = sim >= p.threshold  # of the int8 vectors: within ~0.005 of the float cosine
        src, dst, sim = src[ok], dst[ok], np.minimum(sim[ok], 1.0)
        return edges_table(summaries, keys, src, dst, sim)

    def finalize(self, partials: list[pa.Table]) -> pa.Table:
        c = clusters(partials)
        if c is None:
            return self.decision_schema().empty_table()
        # every member of a cluster is annotated; only the ones not kept are rejected
        member = np.argsort(c.key)
        kept_ids = c.id[c.kept[member]]
        removed = c.kept[member] != member
        best = c.best[member]
        return concat_or_empty(
            [
                pa.table(
                    {
                        KEY: pa.array(c.key[member], pa.int64()),
                        DROP_REASON: pa.array(np.where(removed, "semantic_duplicate", None).tolist(), pa.string()),
                        DROP_DETAIL: pa.array(
                            [
                                f"semantic duplicate of {k} (cosine {s:.3f})" if r else None
                                for k, s, r in zip(kept_ids, best, removed)
                            ],
                            pa.string(),
                        ),
                        "semantic_duplicate_of": pa.array(np.where(removed, kept_ids, None).tolist(), pa.string()),
                        "semantic_cluster": pa.array(kept_ids, pa.string()),
                        "semantic_similarity": pa.array(best, pa.float32()),
                    }
                )
            ],
            self.decision_schema(),
        )
