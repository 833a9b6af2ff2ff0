"""Sentence embeddings offline: wordllama's token embeddings (MIT; the weights ship in its wheel),
mean-pooled and normalised, the same vectors as `WordLlama.embed(norm=True)`.

`WordLlama.load()` looks for its weights in a cache folder and downloads them when they are not
there; its wheel carries them in the package folder, so it is loaded from there with downloads off.
Pooling is done here over the flattened token ids of a batch (one gather and one reduceat), not by
`WordLlama.embed`, which pads every batch to its longest text. Tried and not kept (no gain on MRPC /
STS-B, benchmarks/semantic): removing the mean and first principal direction of a reference corpus.
Random pairs of texts already have cosine ~0 (p99 0.31 on STS-B sentences): no centring is needed
for hyperplane LSH.
"""

from __future__ import annotations

from functools import cache
from itertools import chain

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import csr_matrix

from curate.errors import UserError


@cache
def _wordllama():
    try:
        import wordllama
        from wordllama import WordLlama
    except ImportError:
        raise UserError("semantic dedup needs the wordllama package: pip install 'wordllama>=0.4,<0.5'") from None
    from pathlib import Path

    return WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)


class WordLlamaEmbedder:
    """texts -> L2-normalised float32 vectors of `dim` (wordllama is Matryoshka-trained: 64-256)."""

    def __init__(self, dim: int = 256, max_chars: int = 2000):
        wl = _wordllama()
        self.table = np.ascontiguousarray(wl.embedding[:, :dim].astype(np.float32))
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(wl.tokenizer.to_str())
        self.tokenizer.no_padding()  # wordllama pads every batch to its longest text
        self.tokenizer.no_truncation()
        self.max_chars = max_chars

    def embed(self, texts: pa.Array, chunk: int = 1024) -> np.ndarray:
        """In chunks: the tokenizer's Encoding objects (tokens, ids, masks) of 20k long texts held
        at once took ~1.5 GB."""
        dim = self.table.shape[1]
        parts = [self._embed(texts.slice(i, chunk)) for i in range(0, len(texts), chunk)]
        return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)

    def _embed(self, texts: pa.Array) -> np.ndarray:
        n = len(texts)
        cut = pc.utf8_slice_codeunits(pc.fill_null(texts, ""), 0, self.max_chars).to_pylist()
        # encode_batch_fast skips character offsets: 1.6x encode_batch here
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        encs = encode(cut, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encs), np.int64, n)
        ids = np.fromiter(chain.from_iterable(e.ids for e in encs), np.int64, int(lengths.sum()))
        del encs
        np.clip(ids, 0, len(self.table) - 1, out=ids)
        # sum of token vectors per text as (texts x vocab counts) @ table: no (tokens x dim) copy
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        counts = csr_matrix((np.ones(len(ids), np.float32), ids, indptr), shape=(n, len(self.table)))
        sums = np.asarray(counts @ self.table, dtype=np.float32)
        vec = sums / np.maximum(lengths, 1)[:, None]
        norm = np.linalg.norm(vec, axis=1, keepdims=True)
        return (vec / np.maximum(norm, 1e-12)).astype(np.float32)
