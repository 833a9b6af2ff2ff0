"""semantic_dedup: drop conversations whose meaning repeats an earlier one's, keeping one row per
cluster. The duplicate score of a pair is

    score = (1 - lexical_weight) * cosine(embeddings) + lexical_weight * word Jaccard

and two rows are duplicates when score >= threshold (the column `semantic_similarity` is that
score). The cosine carries meaning; the word Jaccard (of lowercased word sets, estimated from 64
one-byte MinHash values) separates paraphrases from same-topic sentences that the mean-pooled
embeddings put close: on MRPC / STS-B it lifts ROC AUC over the cosine alone (benchmarks/semantic).

Embeddings: wordllama's mean-pooled token vectors by default (curate/steps/_embed.py; offline), or a
local model2vec / sentence-transformers folder. Candidates come from random-hyperplane LSH (SimHash
banding), which, unlike SemDeDup's k-means, needs no global training pass, so the step is a plain
global step and no process ever holds every embedding:
  summarize  per batch: embeddings, `bands` x `bits` sign bits against fixed seeded hyperplanes,
             one row per (document, band) with its bucket hash, partitioned by bucket, carrying the
             embedding quantised to int8 (`dim` bytes) and the word sketch (64 bytes);
  resolve    per partition: rows sorted by (bucket, key); each row is compared with the next
             `window` rows of its bucket (all pairs for buckets up to window + 1 rows); the cosine
             first, then the word Jaccard only for pairs whose cosine could still reach the
             threshold; pairs whose score reaches `threshold` become edges;
  finalize   edges only: connected components, one row kept per component (first, longest or
             highest score), shared with minhash_dedup (_clusters.py).
Memory per partition worker: (dim + 64 + ~40) bytes x bands per row of the partition; the summaries
are spread over `partitions` files, so more partitions (and more machines) scale past one machine's
memory. The driver holds only the edges. A pair at cosine c shares a band with probability
1 - (1 - p^bits)^bands, p = 1 - arccos(c)/pi: at the defaults (20 x 14) 0.91 at c = 0.9, 0.998 at 0.95.
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
from curate.steps._embed import EMBEDDERS
from curate.steps.base import GlobalStep, Params, concat_or_empty
from curate.textkey import TurnSelection, joined_turns

SKETCH = 64  # one-byte MinHash values per row: Jaccard estimated within ~0.06 (one s.d.)
_SKETCH_SEED = 1


class SemanticDedupParams(Params):
    threshold: float = Field(0.81, gt=0.0, le=1.0, description="duplicate score from which two rows are duplicates")
    lexical_weight: float = Field(
        0.3, ge=0.0, le=1.0, description="weight of the word Jaccard in the duplicate score (0: cosine alone)"
    )
    embedder: Literal[EMBEDDERS] = Field(
        "wordllama", description="wordllama (ships with curate), model2vec or sentence_transformers (model_path)"
    )
    model_path: str | None = Field(None, description="model2vec / sentence_transformers: a local model folder")
    turns: TurnSelection = Field("all", description="which turns are embedded: all, user, first_pair")
    keep: Literal["first", "longest", "score"] = Field("first", description="which row of a cluster is kept")
    score_column: str | None = Field(None, description="with keep: score, the column whose highest value is kept")
    dim: int = Field(256, ge=64, le=256, description="wordllama: dimensions used (it is Matryoshka-trained)")
    max_chars: int = Field(2000, ge=50, le=1_000_000, description="characters of each row embedded")
    bands: int = Field(20, ge=1, le=256, description="LSH bands")
    bits: int = Field(14, ge=1, le=62, description="hyperplane bits per band")
    window: int = Field(32, ge=1, le=10_000, description="rows of a bucket each row is compared with")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="hyperplane seed")
    partitions: int = Field(16, ge=1, le=4096, description="bucket partitions resolved in parallel")

    @model_validator(mode="after")
    def _check(self):
        if self.embedder != "wordllama" and not self.model_path:
            raise ValueError(f"embedder {self.embedder} needs model_path: a local model folder")
        if self.keep == "score" and not self.score_column:
            raise ValueError("keep: score needs score_column (e.g. quality_score)")
        return self


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
        self.planes = None
        self.perm = _minhash.datasketch_permutations(SKETCH, _SKETCH_SEED)

    def setup(self) -> None:
        if self.embedder is None:
            from curate.steps._embed import load_embedder

            p = self.params
            self.embedder = load_embedder(p.embedder, p.model_path, p.dim, p.max_chars, self.name)
            # the hyperplanes depend only on the seed and the embedding's width: the same in every worker
            rng = np.random.default_rng(p.seed)
            self.planes = rng.standard_normal((self.embedder.dim, p.bands * p.bits)).astype(np.float32)

    def num_partitions(self) -> int:
        return self.params.partitions

    def features(self, text: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per text: (has content, embedding quantised to int8, word sketch uint8[SKETCH]). A blank
        text is nobody's duplicate (a transformer would give every blank row the same vector)."""
        self.setup()
        text = pc.utf8_slice_codeunits(pc.fill_null(text, ""), 0, self.params.max_chars)
        emb = self.embedder.embed(text)
        has = (np.linalg.norm(emb, axis=1) > 0) & (pc.utf8_length(pc.utf8_trim_whitespace(text)).to_numpy() > 0)
        quant = np.clip(np.rint(emb * 127), -127, 127).astype(np.int8)
        sig, _ = _minhash.signatures(_minhash.clean_texts(text), 1, "word", *self.perm)
        return has, quant, (sig & np.uint32(0xFF)).astype(np.uint8)

    def summarize(self, live: pa.Table) -> pa.Table:
        p = self.params
        text = joined_turns(live, p.turns, "\n")
        has, quant, sketch = self.features(text)
        quant, sketch = quant[has], sketch[has]
        n, dim = quant.shape
        bits = (quant.astype(np.float32) @ self.planes > 0).reshape(n, p.bands, p.bits)
        weights = np.left_shift(np.uint64(1), np.arange(p.bits, dtype=np.uint64))
        code = (bits.astype(np.uint64) * weights).sum(axis=2, dtype=np.uint64)  # (n, bands)
        bucket = (code * np.uint64(0x9E3779B97F4A7C15)) ^ np.arange(p.bands, dtype=np.uint64) * np.uint64(
            0xC2B2AE3D27D4EB4F
        )
        bucket = bucket.reshape(-1)
        row = pa.array(np.repeat(np.nonzero(has)[0], p.bands))
        return pa.table(
            {
                KEY: live.column(KEY).take(row),
                "id": live.column("id").take(row),
                "_bucket": pa.array(bucket.view(np.int64)),
                "_partition": pa.array((bucket % np.uint64(p.partitions)).astype(np.int32)),
                "_emb": _fixed(np.repeat(quant, p.bands, axis=0)),
                "_words": _fixed(np.repeat(sketch, p.bands, axis=0)),
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
        score = pair_scores(
            _unfixed(summaries.column("_emb")),
            _unfixed(summaries.column("_words")),
            src,
            dst,
            p.lexical_weight,
            p.threshold,
        )
        ok = score >= p.threshold
        return edges_table(summaries, keys, src[ok], dst[ok], score[ok])

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
                                f"semantic duplicate of {k} (score {s:.3f})" if r else None
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


def _fixed(rows: np.ndarray) -> pa.FixedSizeBinaryArray:
    """A (n, width) byte matrix as one fixed-size binary value per row, without a copy."""
    n, width = rows.shape
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(rows.tobytes())])


def _unfixed(col: pa.ChunkedArray) -> np.ndarray:
    """The (n, width) uint8 matrix of a fixed-size binary column."""
    arr = col.combine_chunks()
    width = arr.type.byte_width
    raw = np.frombuffer(arr.buffers()[1], np.uint8, count=(arr.offset + len(arr)) * width)
    return raw[arr.offset * width :].reshape(len(arr), width)


def pair_scores(
    emb: np.ndarray,
    sketch: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    lexical_weight: float,
    threshold: float = 0.0,
    chunk: int = 1 << 18,
) -> np.ndarray:
    """The duplicate score of pairs (src[i], dst[i]) of rows with int8 embeddings `emb` (as bytes or
    int8) and one-byte word sketches: (1 - w) cosine + w Jaccard. The Jaccard is estimated only for
    pairs whose cosine could still reach `threshold` (the others keep their cosine part alone: below
    the threshold either way); in chunks, so memory stays bounded by `chunk` pairs."""
    emb = emb.view(np.int8)
    w = np.float32(lexical_weight)
    out = np.empty(len(src), np.float32)
    for lo in range(0, len(src), chunk):
        s, d = src[lo : lo + chunk], dst[lo : lo + chunk]
        cos = np.einsum("ij,ij->i", emb[s].astype(np.float32), emb[d].astype(np.float32)) / np.float32(127 * 127)
        cos = np.minimum(cos, 1.0)  # int8 rounding: within ~0.005 of the float cosine
        score = (1 - w) * cos
        if w > 0:
            live = np.nonzero(score + w >= threshold)[0]
            match = (sketch[s[live]] == sketch[d[live]]).mean(axis=1, dtype=np.float32)
            # b-bit MinHash: unrelated values agree with probability 1/256; remove that floor
            score[live] += w * np.clip((match - 1 / 256) / (1 - 1 / 256), 0.0, 1.0)
        out[lo : lo + chunk] = score
    return out
