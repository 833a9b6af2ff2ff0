"""Sentence embeddings offline. The default: wordllama's token embeddings (MIT; the weights ship in
its wheel), mean-pooled and normalised, the same vectors as `WordLlama.embed(norm=True)`. For users
who have one: a local model2vec or sentence-transformers model folder (`load_embedder`), loaded with
downloads off. Every embedder maps an Arrow string array to L2-normalised float32 rows of `dim`.

`WordLlama.load()` looks for its weights in a cache folder and downloads them when they are not
there; its wheel carries them in the package folder, so it is loaded from there with downloads off.
Pooling is done here over the flattened token ids of a batch (one gather and one reduceat), not by
`WordLlama.embed`, which pads every batch to its longest text. Tried and not kept (lower ROC AUC on
MRPC / STS-B train, docs/semantic_dedup.md): IDF or SIF token weights, counting each token once,
removing the mean and first principal direction of a reference corpus.
"""

from __future__ import annotations

from functools import cache
from itertools import chain
from pathlib import Path

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
    return WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)


EMBEDDERS = ("wordllama", "model2vec", "sentence_transformers")
_PACKAGES = {"model2vec": "model2vec>=0.10,<0.11", "sentence_transformers": "sentence-transformers>=6.3,<7"}


def load_embedder(kind: str, path: str | None, dim: int, max_chars: int, step: str):
    """The embedder a step's params name; a missing folder or package is a one-line UserError."""
    if kind == "wordllama":
        return WordLlamaEmbedder(dim, max_chars)
    if not path or not Path(path).is_dir():
        raise UserError(f"{step}: embedder {kind} needs model_path: a local model folder (no such folder: {path})")
    try:
        __import__(kind)
    except ImportError:
        raise UserError(f"{step}: embedder {kind} needs its package: pip install '{_PACKAGES[kind]}'") from None
    cls = Model2VecEmbedder if kind == "model2vec" else SentenceTransformerEmbedder
    try:
        return cls(path, max_chars)
    except Exception as e:  # a folder that is not such a model: the library's first line says why
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"{step}: cannot load {kind} model from {path}: {first}") from None


def _cut(texts: pa.Array, max_chars: int) -> list[str]:
    return pc.utf8_slice_codeunits(pc.fill_null(texts, ""), 0, max_chars).to_pylist()


def _normalised(vec: np.ndarray) -> np.ndarray:
    vec = np.asarray(vec, dtype=np.float32)
    return vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)


class _Chunked:
    """embed() in chunks of `chunk` texts: a tokenizer's Encoding objects (tokens, ids, masks) of 20k
    long texts held at once took ~1.5 GB."""

    dim: int

    def embed(self, texts: pa.Array, chunk: int = 1024) -> np.ndarray:
        parts = [self._embed(texts.slice(i, chunk)) for i in range(0, len(texts), chunk)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)


class Model2VecEmbedder(_Chunked):
    """A local model2vec StaticModel folder (`StaticModel.save_pretrained`): static token vectors,
    mean-pooled by model2vec itself; loaded from the folder only (model2vec downloads only names
    that are not a folder, and load_embedder checks the folder first)."""

    def __init__(self, path: str, max_chars: int):
        from model2vec import StaticModel

        self.model = StaticModel.from_pretrained(Path(path), force_download=False)
        self.dim = int(self.model.dim)
        self.max_chars = max_chars

    def _embed(self, texts: pa.Array) -> np.ndarray:
        vec = self.model.encode(_cut(texts, self.max_chars), use_multiprocessing=False, normalize=False)
        return _normalised(vec.reshape(len(texts), self.dim))


class SentenceTransformerEmbedder(_Chunked):
    """A local sentence-transformers folder (`SentenceTransformer.save`), on the CPU, with hub
    access off (local_files_only)."""

    def __init__(self, path: str, max_chars: int):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(path, device="cpu", local_files_only=True)
        self.dim = int(self.model.get_embedding_dimension())
        self.max_chars = max_chars

    def _embed(self, texts: pa.Array) -> np.ndarray:
        vec = self.model.encode(_cut(texts, self.max_chars), batch_size=32, convert_to_numpy=True)
        return _normalised(vec.reshape(len(texts), self.dim))


class WordLlamaEmbedder(_Chunked):
    """texts -> L2-normalised float32 vectors of `dim` (wordllama is Matryoshka-trained: 64-256)."""

    def __init__(self, dim: int = 256, max_chars: int = 2000):
        wl = _wordllama()
        self.dim = dim
        self.table = np.ascontiguousarray(wl.embedding[:, :dim].astype(np.float32))
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(wl.tokenizer.to_str())
        self.tokenizer.no_padding()  # wordllama pads every batch to its longest text
        self.tokenizer.no_truncation()
        self.max_chars = max_chars

    def _embed(self, texts: pa.Array) -> np.ndarray:
        n = len(texts)
        cut = _cut(texts, self.max_chars)
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
        return _normalised(sums / np.maximum(lengths, 1)[:, None])
