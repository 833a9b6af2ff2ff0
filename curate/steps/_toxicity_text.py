"""Text preparation shared by the offline toxicity model's training and its use: the same function
on both sides, so the model sees at run time what it saw in training."""

from __future__ import annotations

import re
from functools import cache

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.kernels import SPACE, arrow_spaces, ascii_classes, ascii_matching, string_array, utf8_buffers

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
    talk pages and chats, where the words around a slur differ.

    The bytes of `_prepare_reference` (the definition), in one compiled pass for texts whose first
    MAX_CHARS characters are ASCII; nulls and other texts take the reference. Its chain of Arrow
    passes over every text (three of them RE2) was most of the toxicity step's time."""
    words = _words(lexicon) if lexicon is not None else ()
    if words is None:  # not a lexicon_pattern() the byte scan can match: RE2's job
        return _prepare_reference(texts, lexicon)
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()  # (the result is one array, as for an array)
    n = len(texts)
    data, offsets = utf8_buffers(texts)
    rest = texts.is_null().to_numpy(zero_copy_only=False) if texts.null_count else np.zeros(n, np.bool_)
    heads = np.minimum(np.diff(offsets), MAX_CHARS)
    out = np.empty(int(2 * heads.sum()) + n * len(_TOKEN), np.uint8)  # a byte gives at most two
    out_offsets = np.zeros(n + 1, np.int64)
    _prepare_ascii(data, offsets, MAX_CHARS, _byte_table(), _word_table(words), _TOKEN, out, out_offsets, rest)
    prepared = string_array(out, out_offsets)
    if rest.any():
        ref = _prepare_reference(texts.take(pa.array(np.nonzero(rest)[0])), lexicon)
        prepared = pc.replace_with_mask(prepared, pa.array(rest), ref.cast(pa.large_string()))
    return prepared.cast(pa.string())


def _prepare_reference(texts: pa.Array, lexicon: str | None = None) -> pa.Array:
    """prepare()'s definition, in Arrow and RE2 passes: what the model was trained on, what the
    compiled scan must reproduce byte for byte (tests/steps/test_toxicity_text.py), and the path of
    texts with non-ASCII characters."""
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
    return string_array(out, out_offsets, pa.string(), nulls_of=texts)


_TOKEN = np.frombuffer((" " + LEXICON_TOKEN).encode(), np.uint8)

# _byte_table() entries: flags in the low byte, the lowercased byte in the next, _RUN from bit 32.
_SPACE_BEFORE, _KEPT, _WORD, _TRIM, _REDO, _NON_ASCII = (np.uint64(1 << b) for b in range(6))
_HIT = np.uint64(1 << 6)  # _spaced_out's flag for a lexicon word
_HASH_BITS = 14  # of the \w-run hash: 16k slots, on which 4% of real words meet a lexicon word's
_RUN = np.uint64((1 << _HASH_BITS) - 1)
# Rows of _byte_table(), by the byte before: after a space or punctuation a space is owed (before
# the next byte that is not a space), after ":" too and "/" may make "://", after "w" "." may make
# "www.", and nothing comes before the first byte. _ROWS: where each byte's row starts.
_PLAIN, _OWED, _COLON, _W, _FIRST = range(5)
_ROWS = np.uint64(5 * 256)


@cache
def _byte_table() -> np.ndarray:
    """One entry per row and byte: table[table[_ROWS + previous byte] + byte] (previous byte 256: the
    first byte). Its low byte holds flags: _SPACE_BEFORE (the space _space_out_kernel writes before
    the byte, but not before the first: the trim would drop it), _KEPT (not RE2's \\s [\\t\\n\\f\\r ]),
    _WORD (RE2's \\w [0-9A-Za-z_], what \\b looks at), _TRIM (what utf8_trim_whitespace drops:
    Arrow's spaces, also \\v and \\x1c-\\x1f), _NON_ASCII, and _REDO where a URL or mark may start
    ("@", "&", the "/" of ":/", the "." of "w.", either case); bits 8-15 the byte after utf8_lower;
    from bit 32 _RUN for a \\w byte. Classes asked of RE2 and Arrow themselves. table[byte] (row
    _PLAIN) is the byte's own. One array, not two: the loop is short of registers."""
    chars = pa.array([chr(i) for i in range(128)])
    byte = np.arange(256)
    kept = ascii_classes() != SPACE
    word = ascii_matching(r"\w")
    lower = byte.copy()
    lower[:128] = list("".join(pc.utf8_lower(chars).to_pylist()).encode())
    own = (
        _KEPT * kept
        + _WORD * word
        + _TRIM * arrow_spaces()
        + _NON_ASCII * (byte >= 128)
        + _REDO * np.isin(byte, list(b"@&"))
        + (lower.astype(np.uint64) << np.uint64(8))
        + ((_RUN * word) << np.uint64(32))
    ).astype(np.uint64)
    table = np.tile(own, (5, 1))
    table[[_PLAIN, _W], :] |= _SPACE_BEFORE * (kept & _IS_PUNCT)
    table[[_OWED, _COLON], :] |= _SPACE_BEFORE * kept
    table[_COLON, ord("/")] |= _REDO
    table[_W, ord(".")] |= _REDO
    rows = np.full(257, _PLAIN, np.uint64)
    rows[:256][~kept | _IS_PUNCT] = _OWED
    rows[ord(":")] = _COLON
    rows[list(b"wW")] = _W
    rows[256] = _FIRST
    return np.concatenate([table.ravel(), rows * np.uint64(256)])


@cache
def _words(pattern: str) -> tuple[bytes, ...] | None:
    """The words of a lexicon_pattern(), read back (and the pattern rebuilt from them to be sure);
    non-ASCII words left out (an ASCII text never holds them). None when `pattern` is not one, or
    a word does not start and end with a \\w character (the scan looks for words at the start of a
    \\w run, and for the \\b after them in the next byte)."""
    if not (pattern.startswith(r"\b(") and pattern.endswith(r")\b")):
        return None
    words, word = [], []
    body = iter(pattern[3:-3])
    for ch in body:
        if ch == "\\":
            word.append(next(body, ""))  # re.escape's escapes; RE2 reads each as the character
        elif ch == "|":
            words.append("".join(word))
            word = []
        else:
            word.append(ch)
    words.append("".join(word))
    if lexicon_pattern(words) != pattern:
        return None
    ascii_words = tuple(w.encode() for w in words if w.isascii())
    table = _byte_table()
    if not all(w and table[w[0]] & table[w[-1]] & _WORD for w in ascii_words):
        return None
    return ascii_words


@cache
def _word_table(lexicon: tuple[bytes, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(used, slots, bytes, offsets, flags) of the words the scan looks for: the lexicon's (flag
    _HIT) and "rt" (_REDO: the mark pass would take it out), ordered by the _run_hash of their first
    \\w run h; slots[h]:slots[h + 1] are those words, and used[h] says there are some."""
    table = _byte_table()
    words = [(w, _HIT) for w in lexicon] + [(b"rt", _REDO)]
    keys = []
    for w, _ in words:
        h = np.uint64(0)
        for byte in w:
            if not table[byte] & _WORD:
                break
            h = _run_hash.py_func(h, table[byte], _RUN)
        keys.append(int(h))
    order = np.argsort(keys, kind="stable")
    slots = np.searchsorted(np.array(keys)[order], np.arange(int(_RUN) + 2)).astype(np.int64)
    used = (np.diff(slots) > 0).astype(np.uint8)
    offsets = np.cumsum([0] + [len(words[i][0]) for i in order]).astype(np.int64)
    flags = np.array([words[i][1] for i in order], np.uint64)
    return used, slots, np.frombuffer(b"".join(words[i][0] for i in order), np.uint8), offsets, flags


@numba.njit(inline="always")
def _run_hash(h, entry, mask):
    # The hash of a \w run extended by the byte of a _byte_table() entry (the lowercased byte in
    # bits 8-15; what lies above goes under the mask). Two operations (lea, and) on the loop's
    # critical path; the mask 0 starts the next run.
    return ((h << np.uint64(2)) + (entry >> np.uint64(8))) & mask


@numba.njit(cache=True, nogil=True)
def _prepare_ascii(data, offsets, max_chars, table, word_table, token, out, out_offsets, rest):
    # prepare() for each text not already marked in `rest`; a text with a non-ASCII byte in its head
    # is marked instead. One pass over a text with nothing the replacement passes act on (94% of
    # real ones); otherwise those passes first, each over the whole output of the one before, as
    # Arrow's did: a URL's " " can end an @mention, and \b looks at that pass's input around a match.
    u = np.empty(max_chars, np.uint8)  # sliced, lowercased, URLs out
    t = np.empty(max_chars, np.uint8)  # then marks out: the text the lexicon is looked for in
    runs = np.empty(max_chars + 1, np.uint64)  # _spaced_out's notes
    own = table[:256]  # row _PLAIN: each byte's own entry
    lower = (own >> np.uint64(8)).astype(np.uint8)
    o = 0
    for d in range(offsets.shape[0] - 1):
        out_offsets[d] = o
        if rest[d]:
            continue
        a = offsets[d]
        e = a + min(offsets[d + 1] - a, max_chars)  # ASCII: max_chars characters are as many bytes
        end, flags = _spaced_out(data, a, e, table, word_table, out, o, runs)
        if flags & _NON_ASCII:
            rest[d] = True
            continue
        if flags & _REDO:
            m = _lower_drop_urls(data, a, e, lower, own, u)
            k = _drop_marks(u, m, own, t)
            if k < e - a:  # a URL or a mark was taken out (each match is longer than its " ")
                end, flags = _spaced_out(t, 0, k, table, word_table, out, o, runs)
        if flags & _HIT:
            out[end : end + token.shape[0]] = token
            end += token.shape[0]
        o = end
    out_offsets[-1] = o


@numba.njit
def _spaced_out(src, a, e, table, word_table, out, o, runs):
    # _space_out_kernel then utf8_trim_whitespace on lower(src[a:e]), written from out[o]; returns
    # the end and the flags of what it met: _NON_ASCII, _REDO and _HIT. No branch in the loop
    # (spaces and word ends come too irregularly for the branch predictor): where a \w run that may
    # start a word ends is noted in `runs`, and looked at after it. Unsigned indices: numba checks
    # signed ones for wraparound on every access.
    used = word_table[0]
    zero, one = np.uint64(0), np.uint64(1)
    a, e, o = np.uint64(a), np.uint64(e), np.uint64(o)
    i = a
    while i < e and table[src[i]] & _TRIM:  # what the trim drops first (the spaces among it)
        i += one
    s = o
    flags = zero
    prev = np.uint64(256)  # the first byte
    h = zero  # _run_hash of the \w run up to here
    k = zero  # runs noted
    while i < e:
        c = src[i]
        x = table[table[_ROWS + prev] + c]
        flags |= x
        space = x & _SPACE_BEFORE
        out[o] = 32
        out[o + space] = x >> np.uint64(8)
        o += space + ((x & _KEPT) >> one)
        run = x >> np.uint64(32)  # _RUN on a \w byte, else 0
        runs[k] = i
        k += used[h & ~run]  # the run before ends here (h is 0 if there is none)
        h = _run_hash(h, x, run)
        prev = np.uint64(c)
        i += one
    runs[k] = e
    k += used[h]
    for j in range(k):
        flags |= _words_before(src, a, runs[j], e, table, word_table)
    while o > s and table[out[o - one]] & _TRIM:
        o -= one
    return np.int64(o), flags


@numba.njit
def _words_before(src, a, q, e, table, word_table):
    # The flags of the words found at the start of the \w run that ends at q (a \b before them),
    # followed by a \b (each ends in \w: a non-\w byte or e follows).
    _, slots, words, word_offsets, word_flags = word_table
    p = q
    while p > a and table[src[p - np.uint64(1)]] & _WORD:
        p -= np.uint64(1)
    h = np.uint64(0)
    for i in range(p, q):
        h = _run_hash(h, table[src[i]], _RUN)
    found = np.uint64(0)
    for x in range(slots[h], slots[h + np.uint64(1)]):
        b, c = word_offsets[x], word_offsets[x + 1]
        end = p + np.uint64(c - b)
        if end > e or (end < e and table[src[end]] & _WORD):
            continue
        n = 0
        while n < c - b and (table[src[p + np.uint64(n)]] >> np.uint64(8)) & np.uint64(255) == words[b + n]:
            n += 1
        if n == c - b:
            found |= word_flags[x]
    return found


@numba.njit
def _lower_drop_urls(data, a, e, lower, own, u):
    # `https?://\S+|www\.\S+` -> " " over data[a:e] lowercased, into u; returns u's length.
    m = 0
    i = a
    while i < e:
        c = lower[data[i]]
        if c == 104 or c == 119:  # h, w: where a URL can start (the test keeps the common path short)
            j = _url_end(data, i, e, lower, own)
            if j > i:
                u[m] = 32
                m += 1
                i = j
                continue
        u[m] = c
        m += 1
        i += 1
    return m


@numba.njit
def _url_end(data, i, e, lower, own):
    # Where the URL match starting at i ends, or i.
    j = i
    if i + 4 <= e and lower[data[i]] == 104:
        if lower[data[i + 1]] == 116 and lower[data[i + 2]] == 116 and lower[data[i + 3]] == 112:  # ttp
            j = i + 4
            if j < e and lower[data[j]] == 115:  # s? (without it "s://" cannot follow "http")
                j += 1
            if j + 3 <= e and data[j] == 58 and data[j + 1] == 47 and data[j + 2] == 47:  # ://
                j += 3
            else:
                j = i
    elif i + 4 <= e and lower[data[i + 1]] == 119 and lower[data[i + 2]] == 119 and data[i + 3] == 46:  # ww.
        j = i + 4
    if j == i or j == e or not own[data[j]] & _KEPT:  # \S+ takes at least one byte
        return i
    while j < e and own[data[j]] & _KEPT:  # and then all it can
        j += 1
    return j


@numba.njit
def _drop_marks(u, m, own, t):
    # `@\w+|&#?\w+;|\brt\b` -> " " over u[:m], into t; returns t's length.
    k = 0
    i = 0
    while i < m:
        c = u[i]
        if c == 64 or c == 38 or c == 114:  # @ & r: where a mark can start
            j = _mark_end(u, i, m, own)
            if j > i:
                t[k] = 32
                k += 1
                i = j
                continue
        t[k] = c
        k += 1
        i += 1
    return k


@numba.njit
def _mark_end(u, i, m, own):
    # Where the mark match starting at i ends, or i. \w+ is greedy and ";" is not \w, so "&#?\w+;"
    # is the whole word run after "&" or "&#", then ";" ("#" is not \w: taking it loses no match).
    c = u[i]
    if c == 64:  # @
        j = _word_end(u, i + 1, m, own)
        return j if j > i + 1 else i
    if c == 38:  # &
        b = i + 2 if i + 1 < m and u[i + 1] == 35 else i + 1
        j = _word_end(u, b, m, own)
        return j + 1 if b < j < m and u[j] == 59 else i
    # rt, with \b on both sides
    if i + 1 < m and u[i + 1] == 116 and (i == 0 or not own[u[i - 1]] & _WORD):
        if i + 2 == m or not own[u[i + 2]] & _WORD:
            return i + 2
    return i


@numba.njit
def _word_end(u, i, m, own):
    while i < m and own[u[i]] & _WORD:
        i += 1
    return i


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
