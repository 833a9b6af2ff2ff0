"""Token counts shared by split_conversations, reasoning and token_budget: a local `tokenizer.json`
(Hugging Face `tokenizers`) or, without one, an estimate: ASCII characters / `chars_per_token` + one
token per other character (CJK is about one token per character; the estimate errs long for
Cyrillic/Greek, the safe side for a budget)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import UserError


def tokenizer_file(v: str | None) -> str | None:
    """Params validator: the path names a tokenizer.json or a folder holding one (one-line error)."""
    if v is None:
        return v
    p = Path(v)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise ValueError(f"no tokenizer.json at {v} (give the file, or a model folder that holds it)")
    return v


def estimate(texts: pa.Array, chars_per_token: float) -> np.ndarray:
    """Vectorised character estimate per string (null counts 0)."""
    texts = pc.fill_null(texts, "")
    chars = pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
    other = pc.count_substring_regex(texts, r"[^\x00-\x7f]").to_numpy(zero_copy_only=False).astype(np.int64)
    return np.ceil((chars - other) / chars_per_token).astype(np.int64) + other


class TokenCounter:
    """Counts tokens of strings; loads the tokenizer lazily (in the worker, once)."""

    def __init__(self, tokenizer: str | None, chars_per_token: float = 4.0, step: str = ""):
        self.path = tokenizer
        self.chars_per_token = chars_per_token
        self.step = step
        self._tok = None

    @property
    def exact(self) -> bool:
        return self.path is not None

    def load(self):
        if self._tok is not None or self.path is None:
            return self._tok
        from tokenizers import Tokenizer

        path = Path(self.path)
        path = path / "tokenizer.json" if path.is_dir() else path
        try:
            self._tok = Tokenizer.from_file(str(path))
        except FileNotFoundError:
            raise UserError(f"{self.step}: tokenizer not found: {path}") from None
        except Exception as e:  # tokenizers raises a bare Exception on a malformed file
            raise UserError(f"{self.step}: {path} is not a tokenizer.json ({str(e).splitlines()[0]})") from None
        return self._tok

    def count(self, texts: pa.Array | list[str]) -> np.ndarray:
        """Tokens per string (nulls count 0), without special tokens (a chat template adds its own)."""
        tok = self.load()
        if tok is None:
            return estimate(
                texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string()), self.chars_per_token
            )
        values = texts.to_pylist() if isinstance(texts, pa.Array) else texts
        values = [v or "" for v in values]
        # encode_batch_fast skips the character offsets nobody here reads: same ids, 1.1-1.5x faster
        enc = tok.encode_batch_fast(values, add_special_tokens=False) if values else []
        return np.fromiter((len(e.ids) for e in enc), np.int64, count=len(values))

    def count_distinct(self, texts: pa.Array) -> np.ndarray:
        """`count`, tokenizing each distinct string once (a row's `tools` repeats across a set)."""
        encoded = (
            pc.dictionary_encode(texts).combine_chunks()
            if isinstance(texts, pa.ChunkedArray)
            else pc.dictionary_encode(texts)
        )
        per_value = self.count(encoded.dictionary)
        idx = encoded.indices.to_numpy(zero_copy_only=False)
        valid = encoded.indices.is_valid().to_numpy(zero_copy_only=False)
        return np.where(valid, per_value[np.where(valid, idx, 0)] if len(per_value) else 0, 0).astype(np.int64)
