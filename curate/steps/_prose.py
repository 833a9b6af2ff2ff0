"""The natural-language part of a turn: code, URLs and code-like lines removed (vectorised, RE2).

Language identification and prose statistics (mean word length, stop words, '#' ratio) are about
the words people write; a Python answer is still an English answer. Both `language` and
`quality_heuristics` read turns through `strip_code`.
"""

from __future__ import annotations

from functools import cache

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.kernels import LETTER, any_non_ascii, ascii_classes, ascii_space_counts, utf8_buffers
from curate.steps import _literal

# Fenced blocks (``` or ~~~); an unclosed fence runs to the end of the turn.
_FENCED = (r"(?s)```.*?(?:```|\z)", r"(?s)~~~.*?(?:~~~|\z)")
_INLINE = r"`[^`\n]{1,400}`"
_URL = r"(?:https?://|www\.)\S+"
# A line is code-like if it ends like a statement, has no letter or digit, starts with a keyword
# form no sentence starts with, or is dense in symbols prose rarely uses.
_CODE_LINE_SHAPE = (
    r"(?:[;{}]|[{}],|\)\s*:|=>)\s*$"
    r"|^\s*[[:punct:]]+\s*$"  # nothing but ASCII punctuation: "},", "```", "---" (emoji are not code)
    r"|^\s*(?:def \w+\(|class \w+[(:]|import [\w.]+|from [\w.]+ import|#include|#define|public |private "
    r"|protected |function\s*\w*\(|return |var \w|let \w|const \w|SELECT |print\(|console\.|\$ |>>> |@\w+)"
)
# '*' is left out: markdown bold/bullets use it in prose ("**Note**: ...").
_CODE_SYMBOLS = r"[{}\[\]()<>=;_$\\/&|^~@%+]"
_CODE_SYMBOL_SHARE = 0.12  # of non-space characters; English prose lines measure ~0-3%
_WHITESPACE_RUN = r"\s+"


def _drop_code_lines(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Remove code-like lines; returns (texts, per-text count of removed lines)."""
    lines = _literal.split(texts, "\n")
    parents = pc.list_parent_indices(lines).to_numpy()
    flat = pc.list_flatten(lines)
    shape = pc.match_substring_regex(flat, _CODE_LINE_SHAPE).to_numpy(zero_copy_only=False)
    symbols = pc.count_substring_regex(flat, _CODE_SYMBOLS).to_numpy().astype(np.float64)
    nonspace = (pc.utf8_length(flat).to_numpy() - ascii_space_counts(flat)).astype(np.float64)
    dense = (symbols >= 3) & (symbols >= _CODE_SYMBOL_SHARE * np.maximum(nonspace, 1))
    code = shape | dense
    keep = ~code
    counts = np.diff(lines.offsets.to_numpy()) if len(texts) else np.zeros(0, np.int64)
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    offsets = kept_before[np.concatenate([[0], np.cumsum(counts)])]
    rebuilt = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat.filter(pa.array(keep)))
    removed = np.bincount(parents[code], minlength=len(texts)) if len(texts) else np.zeros(0, np.int64)
    return pc.binary_join(rebuilt, "\n"), removed


def strip_code(texts: pa.Array, max_chars: int | None = None) -> tuple[pa.Array, np.ndarray]:
    """(natural-language text, whether anything code-like was removed) for each text.

    Nulls become "". `max_chars` bounds the work on huge turns (applied before and after)."""
    texts = pc.fill_null(texts.cast(pa.string()), "")
    if max_chars is not None:
        texts = pc.utf8_slice_codeunits(texts, 0, max_chars * 4)
    before = pc.binary_length(texts).to_numpy()  # bytes: every replacement below shortens both
    for pattern in _FENCED:
        texts = pc.replace_substring_regex(texts, pattern, "\n")
    texts = pc.replace_substring_regex(texts, _INLINE, " ")
    fenced_or_inline = pc.binary_length(texts).to_numpy() < before
    texts = pc.replace_substring_regex(texts, _URL, " ")
    texts, removed_lines = _drop_code_lines(texts)
    had_code = fenced_or_inline | (removed_lines > 0)
    if max_chars is not None:
        texts = pc.utf8_slice_codeunits(texts, 0, max_chars)
    return texts, had_code


def one_line(texts: pa.Array) -> pa.Array:
    """Runs of whitespace (newlines included) -> one space, trimmed: fastText predicts one line."""
    return pc.utf8_trim_whitespace(pc.binary_join(pc.utf8_split_whitespace(texts), " "))


def letter_count(texts: pa.Array) -> np.ndarray:
    # Deleting the runs of non-letters and measuring what is left is 2.5x faster than counting
    # \pL matches: RE2 then makes one match per word gap, not one per letter.
    return pc.utf8_length(pc.replace_substring_regex(texts, r"\PL+", "")).to_numpy().astype(np.int64)


def one_line_letters(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(`one_line(texts)`, `letter_count(texts)`) in one byte scan for ASCII texts; texts with any
    non-ASCII byte take those two (the reference) instead. The Arrow split, join and trim plus the
    RE2 letter count were a sixth of the language step's time (one pass each over every text)."""
    data, offsets = utf8_buffers(texts)
    n = len(texts)
    out = np.empty(max(len(data), 1), np.uint8)
    out_offsets = np.zeros(n + 1, np.int64)
    letters = np.zeros(n, np.int64)
    non_ascii = np.zeros(n, bool)
    _ascii_one_line(data, offsets, _arrow_spaces(), ascii_classes() == LETTER, out, out_offsets, letters, non_ascii)
    lines = pa.LargeStringArray.from_buffers(n, pa.py_buffer(out_offsets), pa.py_buffer(out[: out_offsets[-1]]))
    rest = np.nonzero(non_ascii)[0]
    if len(rest):
        ref = one_line(texts.take(pa.array(rest, pa.int64())))
        lines = pc.replace_with_mask(lines, pa.array(non_ascii), ref.cast(pa.large_string()))
        letters[rest] = letter_count(ref)
    return lines, letters


@cache
def _arrow_spaces() -> np.ndarray:
    """The ASCII bytes Arrow's utf8_split_whitespace splits on (\\t-\\r and \\x1c-\\x20: more than
    RE2's \\s), asked of Arrow itself so that both paths of one_line_letters agree."""
    split = pc.utf8_split_whitespace(pa.array([f"a{chr(i)}b" for i in range(128)])).to_pylist()
    table = np.zeros(256, np.bool_)
    table[:128] = [len(parts) == 2 for parts in split]
    return table


@numba.njit(cache=True, nogil=True)
def _ascii_one_line(data, offsets, space, letter, out, out_offsets, letters, non_ascii):
    o = 0
    for d in range(offsets.shape[0] - 1):
        out_offsets[d] = o
        a, b = offsets[d], offsets[d + 1]
        if any_non_ascii(data, a, b):
            non_ascii[d] = True
            continue
        gap, n = False, 0  # gap: whitespace seen since the last word (written only before a next one)
        for i in range(a, b):
            c = data[i]
            if space[c]:
                gap = o > out_offsets[d]
            else:
                if gap:
                    out[o] = 32
                    o += 1
                    gap = False
                out[o] = c
                o += 1
                n += letter[c]
        letters[d] = n
    out_offsets[offsets.shape[0] - 1] = o
