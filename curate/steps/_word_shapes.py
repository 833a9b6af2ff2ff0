"""What quality_heuristics measures on each word, in one byte scan for ASCII words, RE2 for the rest.

`words_of` splits texts into words (as `utf8_split_whitespace` does) and describes each: its shape,
a 64-bit hash of its bytes (what the n-gram repetition rules compare) and its length.
Per word (an item of `utf8_split_whitespace`): whether it is all punctuation/symbols
(`^[\\p{P}\\p{S}]+$`), its length without leading/trailing punctuation and symbols, whether it has a
letter (`\\pL`), and which Gopher stop word it is once lower-cased with every non-letter removed.
Per text: how many whitespace-separated tokens hold a letter or digit (`\\S*[\\pL\\pN]\\S*`).

Each of those was one RE2 pass over every word (RE2 makes one match per word, ~40 % of the step's
time). Most chat text is ASCII, where the character classes are a table (kernels.ascii_classes)
built by asking RE2 itself, so both paths agree by construction (tests/steps/test_quality_heuristics
checks them against each other on real rows). Words or texts with any non-ASCII byte take the RE2
path, which is also the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.kernels import (
    FNV_OFFSET,
    FNV_PRIME,
    LETTER,
    NON_ASCII,
    SPLIT,
    SYMBOL,
    ascii_classes,
    byte_kinds,
    fmix64,
    utf8_buffers,
)

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")  # Gopher A.1
SYMBOL_WORD = r"^[\p{P}\p{S}]+$"
EDGE_SYMBOLS = r"^[\p{P}\p{S}]+|[\p{P}\p{S}]+$"
UNSPACED = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]"
SPACED_WORD = r"\S*[\pL\pN]\S*"  # a run with a letter or digit in it


def _code(word: str) -> int:
    """A lower-case ASCII word of up to 4 letters as an integer: 5 bits per letter (a=1 ... z=26)."""
    code = 0
    for ch in word:
        code = code * 32 + ord(ch) - 96
    return code


STOP_CODES = np.array([_code(w) for w in STOP_WORDS], np.int64)
STOP_MAX = max(len(w) for w in STOP_WORDS)


@numba.njit(cache=True, nogil=True)
def _ascii_spaced_words(data, offsets, classes, non_ascii, out):
    for d in range(offsets.shape[0] - 1):
        n, counted = 0, False  # counted: this token already has its letter or digit
        for i in range(offsets[d], offsets[d + 1]):
            c = data[i]
            if c >= 128:
                non_ascii[d] = True
                break
            k = classes[c]
            if k == 4:  # SPACE
                counted = False
            elif (k == 1 or k == 2) and not counted:
                n += 1
                counted = True
        out[d] = n


@dataclass
class WordShapes:
    symbol: np.ndarray  # bool: all punctuation/symbols
    bare_len: np.ndarray  # characters once leading/trailing punctuation and symbols are stripped
    has_letter: np.ndarray  # bool
    stop: np.ndarray  # index into STOP_WORDS, -1 if not a stop word


def word_shapes(words: pa.Array) -> WordShapes:
    """Shapes of non-empty words (a flat string array without nulls, no whitespace in a word)."""
    n = len(words)
    data, offsets = utf8_buffers(words)
    non_ascii = np.zeros(n, bool)
    found = _new_words(n)  # an ASCII word is one word of _ascii_words
    m = _ascii_words(data, offsets, byte_kinds(), STOP_CODES, STOP_MAX, non_ascii, *found)
    assert m <= n, "a word holds whitespace"
    at, shapes = found[0][:m], WordShapes(*found[1:5])
    out = WordShapes(np.zeros(n, bool), np.zeros(n, np.int64), np.zeros(n, bool), np.full(n, -1, np.int64))
    for field in WordShapes.__dataclass_fields__:
        getattr(out, field)[at] = getattr(shapes, field)[:m]
    rest = np.nonzero(non_ascii)[0]
    if len(rest):
        ref = word_shapes_re2(words.take(pa.array(rest, pa.int64())))
        for field in WordShapes.__dataclass_fields__:
            getattr(out, field)[rest] = getattr(ref, field)
    return out


def _new_words(cap: int) -> tuple[np.ndarray, ...]:
    """_ascii_words' output arrays for `cap` words: text, symbol, bare_len, has_letter, stop, hash, length."""
    return (
        np.empty(cap, np.int64),
        np.empty(cap, bool),
        np.empty(cap, np.int64),
        np.empty(cap, bool),
        np.empty(cap, np.int64),
        np.empty(cap, np.uint64),
        np.empty(cap, np.int64),
    )


@dataclass
class Words:
    """The words of n texts (items of `utf8_split_whitespace`, empty ones dropped), each text's
    words consecutive and in order (the texts themselves in no particular order)."""

    text: np.ndarray  # int64: which text
    shapes: WordShapes
    hash: np.ndarray  # uint64: of the word's bytes (equal words, equal hashes)
    chars: np.ndarray  # float64: characters (code points)


def words_of(texts: pa.Array) -> Words:
    """Every word of every text with its shape, hash and length: for ASCII texts one compiled pass
    over the bytes; texts with any non-ASCII byte are split by Arrow (Unicode whitespace) and go
    through `word_shapes`. (Splitting every text into an Arrow list of words, then shapes, then a
    dictionary encoding for the n-grams, was 0.75 s of quality_heuristics' 2 s per 20k rows.)"""
    data, offsets = utf8_buffers(texts)
    n = len(texts)
    non_ascii = np.zeros(n, bool)
    cap = len(data) // 5 + 16  # chat prose averages 6+ bytes per word and space; a rerun if short
    while True:
        found = _new_words(cap)
        m = _ascii_words(data, offsets, byte_kinds(), STOP_CODES, STOP_MAX, non_ascii, *found)
        if m <= cap:
            break
        cap = m
    text, symbol, bare_len, has_letter, stop, word_hash, length = (a[:m] for a in found)
    words = Words(text, WordShapes(symbol, bare_len, has_letter, stop), word_hash, length.astype(np.float64))
    rest = np.nonzero(non_ascii)[0]
    if not len(rest):
        return words
    split = pc.utf8_split_whitespace(texts.take(pa.array(rest, pa.int64())))
    parents = pc.list_parent_indices(split).to_numpy()
    flat = pc.list_flatten(split)
    real = pc.greater(pc.binary_length(flat), 0)  # the split yields "" for empty text and edge spaces
    flat, parents = flat.filter(real), parents[real.to_numpy(zero_copy_only=False)]
    more = word_shapes(flat)
    return Words(
        np.concatenate([words.text, rest[parents]]),
        WordShapes(
            *(np.concatenate([getattr(words.shapes, f), getattr(more, f)]) for f in WordShapes.__dataclass_fields__)
        ),
        np.concatenate([words.hash, word_hashes(flat)]),
        np.concatenate([words.chars, pc.utf8_length(flat).to_numpy().astype(np.float64)]),
    )


def word_hashes(words: pa.Array) -> np.ndarray:
    """The hash `words_of` gives each word, for a flat array of words."""
    data, offsets = utf8_buffers(words)
    out = np.empty(len(words), np.uint64)
    _hash_items(data, offsets, out)
    return out


@numba.njit(inline="always")
def _fnv1a(data, a, b):
    h = FNV_OFFSET
    for i in range(a, b):
        h = (h ^ np.uint64(data[i])) * FNV_PRIME
    return fmix64(h)


@numba.njit(cache=True, nogil=True)
def _hash_items(data, offsets, out):
    for w in range(offsets.shape[0] - 1):
        out[w] = _fnv1a(data, offsets[w], offsets[w + 1])


@numba.njit(cache=True, nogil=True)
def _ascii_words(
    data, offsets, kinds, stop_codes, stop_max, non_ascii, text, symbol, bare_len, has_letter, stop, h, ln
):
    """Describe the words of the ASCII texts (flag the others); returns how many there are, which
    may exceed the arrays' size: then only the count is right. A word is a maximal run of bytes
    that are not SPLIT; its shape: all SYMBOL bytes or not, the bytes between its first and last non-SYMBOL ones,
    whether it has a LETTER, and its Gopher stop word (the letters' 5-bit code)."""
    cap = text.shape[0]
    n = 0
    for d in range(offsets.shape[0] - 1):
        a, b = offsets[d], offsets[d + 1]
        n0 = n
        i = a
        while i < b:
            k = kinds[data[i]]
            if k == SPLIT:
                i += 1
                continue
            if k == NON_ASCII:  # the whole text goes to Arrow
                break
            first, last, letters, code = -1, -1, 0, 0
            hv = FNV_OFFSET  # _fnv1a, as the word is read
            start = i
            while True:
                c = data[i]
                if k != SYMBOL:
                    if first < 0:
                        first = i
                    last = i
                if k == LETTER:
                    letters += 1
                    if letters <= stop_max:
                        code = code * 32 + ((c | 32) - 96)
                hv = (hv ^ np.uint64(c)) * FNV_PRIME
                i += 1
                if i == b:
                    break
                k = kinds[data[i]]
                if k == SPLIT or k == NON_ASCII:
                    break
            if k == NON_ASCII:
                break
            if n < cap:
                text[n] = d
                symbol[n] = first < 0
                bare_len[n] = 0 if first < 0 else last - first + 1
                has_letter[n] = letters > 0
                stop[n] = -1
                if letters <= stop_max:
                    for s in range(stop_codes.shape[0]):
                        if stop_codes[s] == code:
                            stop[n] = s
                h[n] = fmix64(hv)
                ln[n] = i - start
            n += 1
        if i < b and kinds[data[i]] == NON_ASCII:
            non_ascii[d] = True
            n = n0
    return n


def word_shapes_re2(words: pa.Array) -> WordShapes:
    """The reference: the same shapes by RE2 (any script)."""
    symbol = pc.match_substring_regex(words, SYMBOL_WORD).to_numpy(zero_copy_only=False)
    bare_len = pc.utf8_length(pc.replace_substring_regex(words, EDGE_SYMBOLS, "")).to_numpy().astype(np.int64)
    has_letter = pc.match_substring_regex(words, r"\pL").to_numpy(zero_copy_only=False)
    letters_only = pc.replace_substring_regex(pc.utf8_lower(words), r"\PL+", "")
    stop = pc.fill_null(pc.index_in(letters_only, value_set=pa.array(STOP_WORDS)), -1).to_numpy().astype(np.int64)
    return WordShapes(symbol, bare_len, has_letter, stop)


def spaced_word_counts(texts: pa.Array) -> np.ndarray:
    """Whitespace-separated words, each character of scripts written without spaces one word."""
    data, offsets = utf8_buffers(texts)
    n = len(texts)
    non_ascii = np.zeros(n, bool)
    out = np.zeros(n, np.int64)
    _ascii_spaced_words(data, offsets, ascii_classes(), non_ascii, out)
    rest = np.nonzero(non_ascii)[0]
    if len(rest):
        out[rest] = spaced_word_counts_re2(texts.take(pa.array(rest, pa.int64())))
    return out.astype(np.float64)


def spaced_word_counts_re2(texts: pa.Array) -> np.ndarray:
    spaced = pc.count_substring_regex(pc.replace_substring_regex(texts, UNSPACED, " "), SPACED_WORD)
    unspaced = pc.count_substring_regex(texts, UNSPACED)
    return spaced.to_numpy().astype(np.int64) + unspaced.to_numpy().astype(np.int64)
