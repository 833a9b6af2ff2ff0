"""Features of a response given its instruction, for the offline quality model, in one compiled pass.

A response is read as tokens: runs of letters/digits (ASCII lowercased; bytes >= 128 count as letters),
every other visible ASCII character on its own, and each newline (so Markdown structure, "\\n 1 ."
or "\\n - ", is seen). Hashed features, `dim` buckets:
  - response unigrams and bigrams, weighted 1/sqrt(tokens): what is said and how, length apart;
  - instruction unigrams crossed with the response's length bin: how long an answer this kind of
    request wants (a request to build a weapon is better answered briefly);
Dense features (DENSE): length, lines, list structure, vocabulary, overlap with the instruction.

The model has two heads over these features and a gate that mixes them (raw score):
    helpful(instruction, response) + gate(instruction) * harmless(response)
`harmless` reads the response's n-grams and dense features with weights of its own, learnt only from
HH-RLHF harmless pairs, where the better answer to a harm-seeking request declines or redirects it
("I'm sorry", "I don't think", "that's illegal") and a longer, compliant answer is worse: the
opposite of what helpfulness data teaches. `gate` = sigmoid(hashed instruction unigrams . w_gate + b)
is a logistic model of "this request is one of HH-RLHF's red-team requests rather than an
Alpaca-style task", so the harmless head speaks only where such requests are.
Training (benchmarks/quality/train.py) needs the sparse rows; scoring sums weights in the same pass.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from curate.kernels import FNV_OFFSET, FNV_PRIME, fmix64, utf8_buffers

DENSE = (
    "log_chars",
    "log_chars_sq",
    "log_lines",
    "log_instr_chars",
    "log_ratio",
    "list_lines",
    "unique_ratio",
    "overlap",
    "empty",
)
N_DENSE = len(DENSE)
_NL = np.uint64(10)
GATE_SALT = np.uint64(0x5BD1E9955BD1E995)


@numba.njit(cache=True, nogil=True)
def _tokens(data, start, end, out):
    """Token hashes of data[start:end] into out; returns the count."""
    n = 0
    i = start
    while i < end:
        c = data[i]
        is_word = (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c >= 128
        if is_word:
            h = FNV_OFFSET
            while i < end:
                c = data[i]
                if 65 <= c <= 90:
                    c += 32
                elif not ((48 <= c <= 57) or (97 <= c <= 122) or c >= 128):
                    break
                h = (h ^ np.uint64(c)) * FNV_PRIME
                i += 1
            out[n] = fmix64(h)
            n += 1
        else:
            if c == 10 or (33 <= c <= 126):
                out[n] = fmix64(np.uint64(c) + np.uint64(0x9E3779B97F4A7C15))
                n += 1
            i += 1
    return n


@numba.njit(cache=True, nogil=True)
def _row(data, r_start, r_end, i_start, i_end, dim, buf, ibuf, idx, val, dense):
    """One (instruction, response): hashed features into idx/val, dense into dense. Returns (c, n_resp,
    m): idx[:c] holds the response's n-grams (the first n_resp), then the instruction's words crossed
    with length; the m instruction tokens are in ibuf."""
    n = _tokens(data, r_start, r_end, buf)
    m = _tokens(data, i_start, i_end, ibuf)
    chars = r_end - r_start
    lines = 1
    list_lines = 0
    at_line_start = True
    for k in range(n):
        if buf[k] == fmix64(_NL + np.uint64(0x9E3779B97F4A7C15)):
            lines += 1
            at_line_start = True
        elif at_line_start:
            at_line_start = False
            # a line starting with '-', '*' or a number is a list item
            if k + 1 < n and (
                buf[k] == fmix64(np.uint64(45) + np.uint64(0x9E3779B97F4A7C15))
                or buf[k] == fmix64(np.uint64(42) + np.uint64(0x9E3779B97F4A7C15))
            ):
                list_lines += 1
            elif k + 1 < n and buf[k + 1] == fmix64(np.uint64(46) + np.uint64(0x9E3779B97F4A7C15)):
                list_lines += 1
    # vocabulary and overlap: sort copies of the hashes
    uniq = 0
    overlap = 0
    if n:
        s = np.sort(buf[:n])
        uniq = 1
        for k in range(1, n):
            if s[k] != s[k - 1]:
                uniq += 1
        if m:
            si = np.sort(ibuf[:m])
            for k in range(n):
                p = np.searchsorted(si, buf[k])
                if p < m and si[p] == buf[k]:
                    overlap += 1
    dense[0] = np.log1p(chars) / 8.0
    dense[1] = dense[0] * dense[0]
    dense[2] = np.log1p(lines) / 4.0
    dense[3] = np.log1p(i_end - i_start) / 8.0
    dense[4] = (np.log1p(chars) - np.log1p(i_end - i_start)) / 8.0
    dense[5] = list_lines / lines
    dense[6] = uniq / n if n else 0.0
    dense[7] = overlap / n if n else 0.0
    dense[8] = 1.0 if n == 0 else 0.0
    c = 0
    w = 1.0 / np.sqrt(n + 1.0)
    for k in range(n):
        idx[c] = buf[k] % np.uint64(dim)
        val[c] = w
        c += 1
        if k:
            idx[c] = fmix64(buf[k - 1] * np.uint64(31) + buf[k]) % np.uint64(dim)
            val[c] = w
            c += 1
    n_resp = c
    # each instruction word moves the preferred response length: value = centred log length
    wi = (np.log1p(n) / 4.0 - 1.0) / np.sqrt(m + 1.0)
    for k in range(m):
        idx[c] = fmix64(ibuf[k] ^ np.uint64(0xA5A5A5A5)) % np.uint64(dim)
        val[c] = wi
        c += 1
    return c, n_resp, m


@numba.njit(cache=True, nogil=True)
def _gate_index(h, dim_gate):
    return fmix64(h ^ GATE_SALT) % np.uint64(dim_gate)


@numba.njit(cache=True, nogil=True)
def _scratch(r_off, i_off):
    """Buffers for the longest row: token hashes of response and instruction, features, dense."""
    cap = 16
    for r in range(r_off.shape[0] // 2):
        cap = max(cap, r_off[2 * r + 1] - r_off[2 * r] + 2, i_off[2 * r + 1] - i_off[2 * r] + 2)
    return (
        np.empty(cap, np.uint64),
        np.empty(cap, np.uint64),
        np.empty(3 * cap, np.uint64),
        np.empty(3 * cap, np.float64),
        np.empty(N_DENSE, np.float64),
    )


@numba.njit(cache=True, nogil=True)
def _score_rows(data, r_off, i_off, dim, w_hash, w_dense, bias, w_harm, w_harm_dense, w_gate, gate_bias, out):
    n_rows = r_off.shape[0] // 2
    buf, ibuf, idx, val, dense = _scratch(r_off, i_off)
    dim_gate = w_gate.shape[0]
    wg = 0.0
    for r in range(n_rows):
        c, n_resp, m = _row(
            data, r_off[2 * r], r_off[2 * r + 1], i_off[2 * r], i_off[2 * r + 1], dim, buf, ibuf, idx, val, dense
        )
        s = bias
        for k in range(c):
            s += w_hash[idx[k]] * val[k]
        for k in range(N_DENSE):
            s += w_dense[k] * dense[k]
        g = gate_bias
        if m:
            wg = 1.0 / np.sqrt(m + 1.0)
        for k in range(m):
            g += w_gate[_gate_index(ibuf[k], dim_gate)] * wg
        g = 1.0 / (1.0 + np.exp(-g))
        if g > 1e-4:  # an Alpaca-style task: the harmless head would add nothing
            h = 0.0
            for k in range(n_resp):
                h += w_harm[idx[k]] * val[k]
            for k in range(N_DENSE):
                h += w_harm_dense[k] * dense[k]
            s += g * h
        out[r] = s


@numba.njit(cache=True, nogil=True)
def _sparse_rows(
    data, r_off, i_off, dim, dim_gate, indptr, indices, values, n_resp_out, dense_out, g_indptr, g_indices
):
    """CSR rows of all hashed features (per row: n_resp_out[r] response n-grams, then the
    instruction's), the dense features, and the gate's CSR rows."""
    n_rows = r_off.shape[0] // 2
    buf, ibuf, idx, val, dense = _scratch(r_off, i_off)
    pos = 0
    gpos = 0
    for r in range(n_rows):
        c, n_resp, m = _row(
            data, r_off[2 * r], r_off[2 * r + 1], i_off[2 * r], i_off[2 * r + 1], dim, buf, ibuf, idx, val, dense
        )
        for k in range(c):
            indices[pos + k] = idx[k]
            values[pos + k] = val[k]
        pos += c
        indptr[r + 1] = pos
        n_resp_out[r] = n_resp
        dense_out[r, :] = dense
        for k in range(m):
            g_indices[gpos + k] = _gate_index(ibuf[k], dim_gate)
        gpos += m
        g_indptr[r + 1] = gpos


def _buffers(instructions: pa.Array, responses: pa.Array):
    """One byte buffer holding both columns, and (start, end) pairs per row into it."""
    both = pa.concat_arrays([responses.cast(pa.large_string()), instructions.cast(pa.large_string())])
    data, offsets = utf8_buffers(both)
    n = len(responses)
    r_off = np.empty(2 * n, np.int64)
    i_off = np.empty(2 * n, np.int64)
    r_off[0::2], r_off[1::2] = offsets[:n], offsets[1 : n + 1]
    i_off[0::2], i_off[1::2] = offsets[n:-1], offsets[n + 1 :]
    return data, r_off, i_off


def score(
    instructions: pa.Array,
    responses: pa.Array,
    w_hash: np.ndarray,
    w_dense: np.ndarray,
    bias: float,
    w_harm: np.ndarray,
    w_harm_dense: np.ndarray,
    w_gate: np.ndarray,
    gate_bias: float,
) -> np.ndarray:
    """The model's raw score per (instruction, response); nulls read as empty text."""
    out = np.zeros(len(responses), np.float64)
    if len(responses):
        data, r_off, i_off = _buffers(instructions, responses)
        _score_rows(
            data, r_off, i_off, len(w_hash), w_hash, w_dense, float(bias), w_harm, w_harm_dense, w_gate, gate_bias, out
        )
    return out


def sparse_features(instructions: pa.Array, responses: pa.Array, dim: int, dim_gate: int):
    """For training, over `dim` hashed buckets: (indptr, indices, values, n_resp, dense, g_indptr,
    g_indices) where indptr/indices/values are the CSR rows of every hashed feature, of which the
    first n_resp of a row are the response's n-grams (both heads read them), the rest the
    instruction's words (the helpful head's); dense the dense features; g_indptr/g_indices the CSR
    rows of the instruction's tokens in the gate's `dim_gate` buckets (each weighs
    1/sqrt(tokens + 1))."""
    data, r_off, i_off = _buffers(instructions, responses)
    n = len(responses)
    lens = (r_off[1::2] - r_off[0::2]) + 2
    ilens = (i_off[1::2] - i_off[0::2]) + 2
    total = int((2 * lens + ilens).sum())
    indptr = np.zeros(n + 1, np.int64)
    indices = np.empty(total, np.uint64)
    values = np.empty(total, np.float64)
    n_resp = np.empty(n, np.int64)
    dense = np.empty((n, N_DENSE), np.float64)
    g_indptr = np.zeros(n + 1, np.int64)
    g_indices = np.empty(int(ilens.sum()), np.uint64)
    _sparse_rows(data, r_off, i_off, dim, dim_gate, indptr, indices, values, n_resp, dense, g_indptr, g_indices)
    nnz, g_nnz = indptr[-1], g_indptr[-1]
    return (
        indptr,
        indices[:nnz].astype(np.int64),
        values[:nnz],
        n_resp,
        dense,
        g_indptr,
        g_indices[:g_nnz].astype(np.int64),
    )
