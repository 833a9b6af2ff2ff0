"""What quality_heuristics measures on each word, in one byte scan for ASCII words, RE2 for the rest.

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

from curate.kernels import any_non_ascii, ascii_classes, utf8_buffers

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
def _ascii_word_shapes(data, offsets, classes, stop_codes, stop_max, non_ascii, symbol, bare_len, has_letter, stop):
    for w in range(offsets.shape[0] - 1):
        a, b = offsets[w], offsets[w + 1]
        if any_non_ascii(data, a, b):
            non_ascii[w] = True
            continue
        first, last, letters, code = -1, -1, 0, 0
        for i in range(a, b):
            c = data[i]
            k = classes[c]
            if k != 3:  # SYMBOL
                if first < 0:
                    first = i
                last = i
            if k == 1:  # LETTER
                letters += 1
                if letters <= stop_max:
                    code = code * 32 + ((c | 32) - 96)
        symbol[w] = first < 0 and b > a
        bare_len[w] = 0 if first < 0 else last - first + 1
        has_letter[w] = letters > 0
        stop[w] = -1
        if letters <= stop_max:
            for j in range(stop_codes.shape[0]):
                if stop_codes[j] == code:
                    stop[w] = j


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
    """Shapes of non-empty words (a flat string array without nulls)."""
    n = len(words)
    data, offsets = utf8_buffers(words)
    non_ascii = np.zeros(n, bool)
    out = WordShapes(np.zeros(n, bool), np.zeros(n, np.int64), np.zeros(n, bool), np.full(n, -1, np.int64))
    _ascii_word_shapes(
        data,
        offsets,
        ascii_classes(),
        STOP_CODES,
        STOP_MAX,
        non_ascii,
        out.symbol,
        out.bare_len,
        out.has_letter,
        out.stop,
    )
    rest = np.nonzero(non_ascii)[0]
    if len(rest):
        sub = words.take(pa.array(rest, pa.int64()))
        ref = word_shapes_re2(sub)
        out.symbol[rest], out.bare_len[rest], out.has_letter[rest], out.stop[rest] = (
            ref.symbol,
            ref.bare_len,
            ref.has_letter,
            ref.stop,
        )
    return out


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
