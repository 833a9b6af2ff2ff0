"""MinHash signatures for a whole Arrow batch in one compiled pass, identical to datasketch's.

Why a compiled kernel: a document of 400 words has ~400 shingles x 112 permutations; per-shingle
Python (what datasketch's `update` does) runs at ~1k docs/s. numba walks the UTF-8 bytes of the
batch once, hashes tokens and shingles on the fly, and keeps one signature row per document in
registers, so memory is bounded by the batch, never by a document's length.

Identity with datasketch (`datasketch.MinHash`, scheme "affine32", its default since 2.0):
  signature[k] = min over shingles s of (a_k * fmix32(shingle_hash(s)) + b_k) mod 2^32
with (a, b) drawn exactly as datasketch draws them from `np.random.RandomState(seed)`. So
`MinHash(num_perm, seed=seed, hashfunc=shingle_hash)` updated with `shingles(text)` holds the same
`hashvalues` as our row, and curate's signatures can go straight into `MinHashLSH` / `LeanMinHash`.

Shingles: the text is lowercased and stripped of HTML tags and entities (per batch; only the texts
holding a '<' or '&' are scanned for them, tags by a byte scan equal to the `_TAG` regex); a
token is a maximal run of ASCII letters/digits or non-ASCII bytes (so UTF-8 letters stay whole).
`word` shingles are n consecutive tokens joined by one space; `char` shingles are n consecutive
characters of the tokens joined by one space (for scripts written without spaces). A document with
fewer than n units has one shingle: all of it. The shingle hash is a 64-bit polynomial hash of the
shingle's bytes, finalised with MurmurHash3's fmix64 and cut to 32 bits (`shingle_hash`).
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.kernels import FNV_PRIME, fmix64, string_array, utf8_buffers
from curate.steps import _literal

_MASK64 = (1 << 64) - 1

# Tags (a letter or / right after <, so "a < b" in prose survives) and character entities.
_TAG = r"</?[a-zA-Z][^<>]{0,1000}>"
_ENTITY = r"&(?:#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|[a-zA-Z]{2,10});"
# Markdown list markers: an HTML <ol> shows its numbers without having them in the text.
_LIST_MARKER = r"(?m)^[ \t]*(?:[0-9]{1,3}[.)]|[-*+])[ \t]+"


def datasketch_permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) as datasketch's MinHash(scheme="affine32") draws them (minhash._init_permutations)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix64_py(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK64
    return h ^ (h >> 33)


def shingle_hash(shingle: bytes) -> int:
    """The 32-bit hash of one shingle; pass it to datasketch as `hashfunc` to get our signatures."""
    h = 0
    for c in shingle:
        h = (h * int(FNV_PRIME) + c) & _MASK64
    return _fmix64_py(h) & 0xFFFFFFFF


def _is_token_byte(c: int) -> bool:
    return c >= 0x80 or 0x30 <= c <= 0x39 or 0x61 <= c <= 0x7A or 0x41 <= c <= 0x5A


def shingles(clean_text: str, ngram: int, mode: str = "word") -> list[bytes]:
    """The shingles of one already-cleaned text (see `clean_texts`): the reference for the kernel."""
    data = clean_text.encode("utf-8")
    tokens, cur = [], bytearray()
    for c in data:
        if _is_token_byte(c):
            cur.append(c)
        elif cur:
            tokens.append(bytes(cur))
            cur = bytearray()
    if cur:
        tokens.append(bytes(cur))
    if not tokens:
        return []
    if mode == "word":
        if len(tokens) < ngram:
            return [b" ".join(tokens)]
        return [b" ".join(tokens[i : i + ngram]) for i in range(len(tokens) - ngram + 1)]
    chars = list(b" ".join(tokens).decode("utf-8", "surrogateescape"))
    if len(chars) < ngram:
        return ["".join(chars).encode("utf-8", "surrogateescape")]
    return ["".join(chars[i : i + ngram]).encode("utf-8", "surrogateescape") for i in range(len(chars) - ngram + 1)]


# Entities an HTML rendering uses for characters a Markdown text has literally (&amp; last).
_ENTITIES = (
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&quot;", '"'),
    ("&#x27;", "'"),
    ("&#39;", "'"),
    ("&nbsp;", " "),
    ("&amp;", "&"),
)


def clean_texts(texts: pa.Array) -> pa.Array:
    """Lowercase, drop HTML markup: so an HTML rendering and its Markdown collide.

    Tags are removed, entities decoded, and tags removed again: code that shows HTML is escaped in
    the rendering (&lt;a href=...&gt;) and literal in the Markdown, and must lose the same tags.
    List markers go too: "1. step" in Markdown is <li>step</li> in HTML."""
    texts = pc.replace_substring_regex(pc.utf8_lower(texts), _LIST_MARKER, " ")
    # A tag starts with '<' and an entity with '&': only the texts holding one are scanned for them
    # (5% of the make_corpus chat rows, 7% of their bytes; nine passes over every text were 0.3 s
    # per 20k rows).
    markup = pc.fill_null(pc.or_(_literal.contains(texts, "<"), _literal.contains(texts, "&")), False)
    if not pc.any(markup).as_py():
        return texts
    return pc.replace_with_mask(texts, markup, strip_markup(texts.filter(markup)))


def strip_markup(texts: pa.Array, strip_tags=None) -> pa.Array:
    """Tags out, entities decoded, tags out again (see clean_texts). `strip_tags`: the `_TAG` pass
    (the compiled one by default; tests pass the RE2 one)."""
    strip_tags = strip_tags or _strip_tags
    texts = strip_tags(texts)
    for entity, char in _ENTITIES:
        texts = _literal.replace(texts, entity, char)
    texts = pc.replace_substring_regex(texts, _ENTITY, " ")
    return strip_tags(texts)


def _strip_tags(texts: pa.Array) -> pa.Array:
    """`replace_substring_regex(texts, _TAG, " ")` in one byte scan: RE2 runs the counted repeat
    {0,1000} as an NFA, ~40 ns per byte (0.25 s per 20k chat rows for the two passes)."""
    data, offsets = utf8_buffers(texts)
    out = np.empty(max(len(data), 1), np.uint8)
    out_offsets = np.zeros(len(offsets), np.int64)
    _strip_tags_kernel(data, offsets, out, out_offsets)
    return string_array(out, out_offsets, texts.type, nulls_of=texts)


@numba.njit(cache=True, nogil=True)
def _strip_tags_kernel(data, offsets, out, out_offsets):
    k = 0
    for d in range(offsets.shape[0] - 1):
        i, end = offsets[d], offsets[d + 1]
        while i < end:
            c = data[i]
            if c == 60:  # '<': a tag is </?[a-zA-Z][^<>]{0,1000}> (1000 characters, not bytes)
                j = i + 1
                if j + 1 < end and data[j] == 47 and 97 <= (data[j + 1] | 32) <= 122:
                    j += 1  # '/' then a letter
                if j < end and 97 <= (data[j] | 32) <= 122:
                    j += 1
                    chars = 0
                    while j < end and data[j] != 60 and data[j] != 62 and chars <= 1000:
                        chars += (data[j] & 0xC0) != 0x80  # a character starts at every non-continuation byte
                        j += 1
                    if j < end and data[j] == 62 and chars <= 1000:
                        out[k] = 32
                        k += 1
                        i = j + 1
                        continue
            out[k] = c
            k += 1
            i += 1
        out_offsets[d + 1] = k


@numba.njit(inline="always")
def _fmix32(h):
    # numba widens uint32 arithmetic to 64 bits, so the mod-2^32 wrap is explicit.
    M = np.uint64(0xFFFFFFFF)
    h = np.uint64(h)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & M
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & M
    return h ^ (h >> np.uint64(16))


@numba.njit(inline="always")
def _token_byte(c):
    return c >= 0x80 or (0x30 <= c <= 0x39) or (0x61 <= c <= 0x7A) or (0x41 <= c <= 0x5A)


@numba.njit(inline="always")
def _permute_min(h32, a, b, sig):
    hv = _fmix32(h32)
    M = np.uint64(0xFFFFFFFF)
    for k in range(a.shape[0]):
        # branch-free so the loop vectorises
        sig[k] = min(sig[k], np.uint32((np.uint64(a[k]) * hv + np.uint64(b[k])) & M))


@numba.njit(cache=True, nogil=True)
def _signatures(data, offsets, ngram, char_mode, a, b, sig, n_shingles):
    """Fill sig[d] (initialised to 2^32-1) and n_shingles[d] for every document d."""
    P = FNV_PRIME  # odd, with a good bit spread under multiplication
    SPACE = np.uint64(32)
    n_docs = offsets.shape[0] - 1
    # Ring buffers over the last `ngram` units: the unit's hash and P^(its byte length).
    ring_h = np.zeros(ngram, np.uint64)
    ring_p = np.zeros(ngram, np.uint64)
    for d in range(n_docs):
        start, end = offsets[d], offsets[d + 1]
        count = 0  # units seen
        first_full = np.uint64(0)  # the whole text, for documents shorter than ngram
        first_pow = np.uint64(1)
        pos = start
        while pos < end:
            c = data[pos]
            if not _token_byte(c):
                pos += 1
                continue
            # one token: [pos, t_end)
            t_end = pos
            while t_end < end and _token_byte(data[t_end]):
                t_end += 1
            if char_mode:
                units_end = t_end
                # a space unit between tokens (the text is tokens joined by one space)
                if count > 0:
                    slot = count % ngram
                    ring_h[slot] = SPACE
                    ring_p[slot] = P
                    count += 1
                    if count >= ngram:
                        _emit(ring_h, ring_p, count, ngram, a, b, sig[d], False)
                    if count <= ngram:
                        first_full = first_full * P + SPACE
                        first_pow *= P
                q = pos
                while q < units_end:
                    # one UTF-8 character: a lead byte and its continuation bytes
                    h = np.uint64(data[q])
                    pw = P
                    q += 1
                    while q < units_end and (data[q] & 0xC0) == 0x80:
                        h = h * P + np.uint64(data[q])
                        pw *= P
                        q += 1
                    slot = count % ngram
                    ring_h[slot] = h
                    ring_p[slot] = pw
                    count += 1
                    if count >= ngram:
                        _emit(ring_h, ring_p, count, ngram, a, b, sig[d], False)
                    if count <= ngram:
                        first_full = first_full * pw + h
                        first_pow *= pw
            else:
                h = np.uint64(0)
                pw = np.uint64(1)
                for q in range(pos, t_end):
                    h = h * P + np.uint64(data[q])
                    pw *= P
                slot = count % ngram
                ring_h[slot] = h
                ring_p[slot] = pw
                count += 1
                if count >= ngram:
                    _emit(ring_h, ring_p, count, ngram, a, b, sig[d], True)
                if count <= ngram:
                    if count > 1:
                        first_full = first_full * P + SPACE
                    first_full = first_full * pw + h
            pos = t_end
        if count == 0:
            n_shingles[d] = 0
        elif count < ngram:
            _permute_min(fmix64(first_full) & np.uint64(0xFFFFFFFF), a, b, sig[d])
            n_shingles[d] = 1
        else:
            n_shingles[d] = count - ngram + 1


@numba.njit(inline="always")
def _emit(ring_h, ring_p, count, ngram, a, b, sig_row, spaced):
    """The shingle of the last `ngram` units: tokens joined by single spaces (spaced) or
    characters concatenated."""
    P = FNV_PRIME  # odd, with a good bit spread under multiplication
    first = count - ngram
    h = ring_h[first % ngram]
    for j in range(1, ngram):
        slot = (first + j) % ngram
        if spaced:
            h = h * P + np.uint64(32)
        h = h * ring_p[slot] + ring_h[slot]
    _permute_min(fmix64(h) & np.uint64(0xFFFFFFFF), a, b, sig_row)


def signatures(clean: pa.Array, ngram: int, mode: str, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signatures uint32[n, num_perm], shingles per document) for cleaned texts (`clean_texts`)."""
    data, offsets = utf8_buffers(clean)
    n = len(offsets) - 1
    sig = np.full((n, len(a)), np.uint32(0xFFFFFFFF), np.uint32)
    counts = np.zeros(n, np.int64)
    # Null texts have equal start/end offsets: no tokens, no shingles.
    _signatures(data, offsets, ngram, mode == "char", a, b, sig, counts)
    return sig, counts


@numba.njit(cache=True)
def _band_hashes(sig, num_bands, rows):
    n = sig.shape[0]
    out = np.empty((n, num_bands), np.uint64)
    for d in range(n):
        for band in range(num_bands):
            h = np.uint64(band + 1) * np.uint64(0x9E3779B97F4A7C15)
            for r in range(band * rows, (band + 1) * rows):
                h = fmix64(h ^ np.uint64(sig[d, r]))
            out[d, band] = h
    return out


def band_hashes(sig: np.ndarray, num_bands: int, rows: int) -> np.ndarray:
    """uint64[n, num_bands]: one bucket per band; two documents share it iff the band's rows agree
    (up to a 2^-64 collision)."""
    return _band_hashes(np.ascontiguousarray(sig), num_bands, rows)


def estimated_jaccard(sketch_a: np.ndarray, sketch_b: np.ndarray) -> np.ndarray:
    """Jaccard estimated from b-bit (8-bit) minhash sketches, row by row (Li & Koenig 2010):
    P(low bytes agree) = J + (1 - J) / 256."""
    agree = (sketch_a == sketch_b).mean(axis=1)
    return np.clip((agree - 1 / 256) / (1 - 1 / 256), 0.0, 1.0)
