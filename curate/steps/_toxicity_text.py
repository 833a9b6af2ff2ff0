"""Text preparation shared by the offline toxicity model's training and its use: the same function
on both sides, so the model sees at run time what it saw in training."""

from __future__ import annotations

import re

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.kernels import SPACE, ascii_classes, utf8_buffers

MAX_CHARS = 2000
PUNCTUATION = b".!?,;:()\"'*"  # each becomes its own token
LEXICON_TOKEN = "__lexicon__"


def lexicon_pattern(terms: list[str]) -> str:
    """One RE2 alternation of the terms as whole words, longest first."""
    return r"\b(" + "|".join(re.escape(w) for w in sorted(terms, key=len, reverse=True)) + r")\b"


def prepare(texts: pa.Array, lexicon: str | None = None) -> pa.Array:
    """Lowercase; URLs, @mentions, HTML entities and retweet marks out; punctuation spaced out into
    tokens and whitespace runs made one space, trimmed: one line (fastText predicts one line);
    capped length (the head of a long turn decides). With a `lexicon` pattern (lexicon_pattern()),
    texts that use one of its words end in LEXICON_TOKEN: a feature that means the same in tweets,
    talk pages and chats, where the words around a slur differ."""
    t = pc.utf8_lower(pc.utf8_slice_codeunits(texts, 0, MAX_CHARS))
    t = pc.replace_substring_regex(t, r"https?://\S+|www\.\S+", " ")
    t = pc.replace_substring_regex(t, r"@\w+|&#?\w+;|\brt\b", " ")
    out = pc.utf8_trim_whitespace(_space_out(t))
    if lexicon is None:
        return out
    hit = pc.match_substring_regex(t, lexicon).fill_null(False)
    return pc.if_else(hit, pc.binary_join_element_wise(out, pa.scalar(" " + LEXICON_TOKEN), ""), out)


_IS_PUNCT = np.zeros(256, np.bool_)
_IS_PUNCT[list(PUNCTUATION)] = True


@numba.njit(cache=True, nogil=True)
def _space_out_kernel(data, offsets, is_punct, is_space, out, out_offsets):
    # All the bytes involved are ASCII, and UTF-8 continuation bytes never are: a byte scan is exact.
    k = 0
    for d in range(offsets.shape[0] - 1):
        pending = False  # a space is owed before the next byte
        for i in range(offsets[d], offsets[d + 1]):
            c = data[i]
            if is_space[c]:
                pending = True
                continue
            punct = is_punct[c]
            if pending or punct:
                out[k] = 32
                k += 1
            out[k] = c
            k += 1
            pending = punct
        if pending:
            out[k] = 32
            k += 1
        out_offsets[d + 1] = k


def _space_out(texts: pa.Array) -> pa.Array:
    """`replace(([.!?,;:()"'*]) -> " \\1 ")` then `replace(\\s+ -> " ")`, in one byte scan (the two RE2
    passes make one match per punctuation mark and per gap: most of this function's time)."""
    data, offsets = utf8_buffers(texts)
    out = np.empty(3 * int(offsets[-1] - offsets[0]) + 1, np.uint8)
    out_offsets = np.zeros(len(offsets), np.int64)
    _space_out_kernel(data, offsets, _IS_PUNCT, ascii_classes() == SPACE, out, out_offsets)  # RE2's \s
    spaced = pa.LargeStringArray.from_buffers(
        len(texts), pa.py_buffer(out_offsets), pa.py_buffer(out[: out_offsets[-1]])
    ).cast(pa.string())
    return pc.if_else(pc.is_null(texts), pa.scalar(None, pa.string()), spaced) if texts.null_count else spaced


def toxic_probability(predictor, lines: pa.Array | list[str]) -> np.ndarray:
    """The model's P(toxic) per prepared line (a predictor from `_fasttext.open_predictor`): both
    labels' probabilities are computed, the toxic one taken."""
    if not isinstance(lines, pa.Array):
        lines = pa.array(lines, pa.string())
    label, _, probs = predictor.predict(lines)
    return np.where(label >= 0, probs[:, predictor.labels.index("toxic")], 0.0)


def calibrate(p: np.ndarray, a: float, b: float) -> np.ndarray:
    """The Platt map fitted by the training script: sigmoid(a * logit(p) + b). p is clipped first
    (fastText's probabilities reach 1.00001, and a softmax trained for 25 epochs says 0 and 1)."""
    p = np.clip(np.asarray(p, np.float64), 1e-5, 1 - 1e-5)
    return 1 / (1 + np.exp(-(a * np.log(p / (1 - p)) + b)))
