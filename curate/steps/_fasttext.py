"""fastText supervised prediction in one compiled pass over a batch: the same numbers as fastText's.

Why: fastText's `predict` was three quarters of the language step (n20k, 2026-12-05). Per line it
copies the text into a stringstream, builds a std::string for every character n-gram and looks each
up in an unordered_map (`Dictionary::pushHash` alone was 12% of the five-step recipe's CPU). This
reads the same model file and computes the same thing over the batch's UTF-8 bytes: FNV-1a hashes
extended byte by byte, the pruned n-gram ids from a dense table, the quantized rows summed in
fastText's order, and its output layer.

Same results, bit for bit: every float32 operation is the one fastText's C++ makes, in its order
(the pinned wheel is built without FMA: a multiply, then a sequential sum), and each exp and log
in the precision fastText's compiled code calls it (`objdump` of the wheel: expf in the
hierarchical softmax and for the returned probability, exp and log in double elsewhere).
tests/steps/test_fasttext.py compares labels and probabilities with fastText's own `predict` on
real and fuzzed text.

Supported: what curate ships and fastText's published language models use: a quantized input
matrix (`.ftz`, with or without norm quantization), a dense output layer, hierarchical softmax or
softmax, character n-grams and word n-grams. Anything else (a `.bin` with a dense input matrix, a
quantized output layer, one-vs-all or negative sampling) raises `Unsupported`, and the callers use
fastText itself for it.

Source read: fastText's src/{dictionary,loss,model,quantmatrix,productquantizer,densematrix}.cc
(facebookresearch/fastText, as forked by fasttext-numpy2 0.10.4, the wheel curate pins).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.kernels import utf8_buffers
from curate.steps import _literal

MAGIC, MAX_VERSION = 793712314, 12
HS, SOFTMAX = 1, 3  # fastText's loss_name values
EOS = b"</s>"
WORD_NGRAM_MULTIPLIER = np.uint64(116049371)


class Unsupported(ValueError):
    """A model file this predictor does not compute (the caller falls back to fastText)."""


class NotAModel(ValueError):
    """Not a fastText model file, or one cut short."""


@dataclass(frozen=True)
class FastTextModel:
    """A supervised fastText model as arrays (see `load`)."""

    labels: list[str]  # without the __label__ prefix
    loss: int
    nwords: int
    minn: int
    maxn: int
    bucket: int
    word_ngrams: int
    prune_mode: int  # -1: n-grams not pruned, 0: all pruned, 1: through `prune`
    prune: np.ndarray  # int32 per hash bucket: the row after the words, or -1 (pruned away)
    word_slots: np.ndarray  # open addressing over FNV hashes: word index or -1
    word_hash: np.ndarray  # uint32 per word
    word_offsets: np.ndarray  # int64, into word_bytes
    word_bytes: np.ndarray
    word_is_label: np.ndarray
    sub_offsets: np.ndarray  # int64: each word's input rows (itself, then its character n-grams)
    sub_ids: np.ndarray
    codes: np.ndarray  # uint8 (rows, nsubq)
    centroids: np.ndarray  # float32, ProductQuantizer layout
    dsub: int
    lastdsub: int
    norm_codes: np.ndarray  # uint8 per row (qnorm), else empty
    norm_centroids: np.ndarray  # float32 (qnorm), else empty
    output: np.ndarray  # float32 (rows, dim)
    tree_left: np.ndarray  # int32 per node (hierarchical softmax), else empty
    tree_right: np.ndarray

    @property
    def dim(self) -> int:
        return self.output.shape[1]


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise NotAModel("the file ends early")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def array(self, dtype, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if self.pos + size > len(self.data):
            raise NotAModel("the file ends early")
        out = np.frombuffer(self.data, dtype, count, self.pos).copy()
        self.pos += size
        return out

    def cstring(self) -> bytes:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise NotAModel("the file ends early")
        s = self.data[self.pos : end]
        self.pos = end + 1
        return s


def load(path: str | Path) -> FastTextModel:
    """Read a fastText model file (FastText::loadModel's layout) into arrays."""
    r = _Reader(Path(path).read_bytes())
    magic, version = r.take("<ii")
    if magic != MAGIC:
        raise NotAModel("not a fastText model file")
    if version > MAX_VERSION:
        raise Unsupported(f"fastText file format version {version}")
    dim, _ws, _epoch, _min_count, _neg, word_ngrams, loss, model, bucket, minn, maxn, _lr_update = r.take("<12i")
    r.take("<d")  # sampling threshold
    if model != 3:
        raise Unsupported("not a supervised model")
    if version == 11:
        maxn = 0  # FastText::loadModel: old supervised models have no character n-grams
    size, nwords, nlabels = r.take("<3i")
    _ntokens, prune_size = r.take("<2q")
    words, counts, types = [], [], []
    for _ in range(size):
        words.append(r.cstring())
        count, kind = r.take("<qb")
        counts.append(count)
        types.append(kind)
    pairs = r.array("<i4", 2 * max(prune_size, 0)).reshape(-1, 2)
    if not r.take("<?"):
        raise Unsupported("the input matrix is not quantized (a .bin model)")
    qnorm = r.take("<?")
    rows, cols = r.take("<2q")
    codesize = r.take("<i")
    codes = r.array(np.uint8, codesize)
    pq_dim, nsubq, dsub, lastdsub = r.take("<4i")
    centroids = r.array("<f4", pq_dim * 256)
    norm_codes = norm_centroids = np.zeros(0, np.float32)
    if qnorm:
        norm_codes = r.array(np.uint8, rows)
        r.take("<4i")  # the norm quantizer: dim 1, one sub-quantizer
        norm_centroids = r.array("<f4", 256)
    if cols != dim or pq_dim != dim or codesize != rows * nsubq:
        raise Unsupported("inconsistent quantized input matrix")
    if r.take("<?"):
        raise Unsupported("the output matrix is quantized (-qout)")
    out_rows, out_cols = r.take("<2q")
    output = r.array("<f4", out_rows * out_cols).reshape(out_rows, out_cols)
    if loss not in (HS, SOFTMAX):
        raise Unsupported("only hierarchical softmax and softmax models are computed here")
    if out_cols != dim or out_rows != nlabels:
        raise Unsupported("inconsistent output matrix")

    prune = np.full(bucket if prune_size > 0 else 0, -1, np.int32)
    if prune_size > 0:
        prune[pairs[:, 0]] = pairs[:, 1]
    prune_mode = 1 if prune_size > 0 else (0 if prune_size == 0 else -1)
    word_bytes = np.frombuffer(b"".join(words) or b"\0", np.uint8).copy()
    word_offsets = np.zeros(size + 1, np.int64)
    word_offsets[1:] = np.cumsum([len(w) for w in words])
    word_hash = np.array([_fnv_py(w) for w in words], np.uint32)
    slots = np.full(max(16, 1 << (2 * size).bit_length()), -1, np.int32)
    _fill_slots(slots, word_hash)
    sub_offsets, sub_ids = _word_subwords(words, nwords, minn, maxn, bucket, prune_mode, prune)
    label_counts = [c for c, t in zip(counts, types) if t == 1]
    left, right = _huffman_tree(label_counts) if loss == HS else (np.zeros(0, np.int32), np.zeros(0, np.int32))
    return FastTextModel(
        labels=[w.decode("utf-8", "replace").removeprefix("__label__") for w, t in zip(words, types) if t == 1],
        loss=loss,
        nwords=nwords,
        minn=minn,
        maxn=maxn,
        bucket=bucket,
        word_ngrams=word_ngrams,
        prune_mode=prune_mode,
        prune=prune,
        word_slots=slots,
        word_hash=word_hash,
        word_offsets=word_offsets,
        word_bytes=word_bytes,
        word_is_label=np.array([t == 1 for t in types], np.bool_),
        sub_offsets=sub_offsets,
        sub_ids=sub_ids,
        codes=codes.reshape(rows, nsubq),
        centroids=centroids,
        dsub=dsub,
        lastdsub=lastdsub,
        norm_codes=norm_codes,
        norm_centroids=norm_centroids,
        output=output,
        tree_left=left,
        tree_right=right,
    )


def _fnv_py(word: bytes) -> int:
    """Dictionary::hash: FNV-1a over the bytes taken as *signed* chars (as fastText's models were made)."""
    h = 2166136261
    for b in word:
        h = ((h ^ (b | 0xFFFFFF00 if b >= 128 else b)) * 16777619) & 0xFFFFFFFF
    return h


def _fill_slots(slots: np.ndarray, word_hash: np.ndarray) -> None:
    mask = len(slots) - 1
    for i, h in enumerate(word_hash.tolist()):
        s = h & mask
        while slots[s] != -1:
            s = (s + 1) & mask
        slots[s] = i


def _word_subwords(words, nwords, minn, maxn, bucket, prune_mode, prune):
    """Dictionary::initNgrams: each word's input rows, itself first, then its character n-grams
    (none for </s>, and none for labels, which never reach the input). One compiled call for all
    words: `(offsets, rows)`."""
    wrapped = [b"<" + w + b">" if w != EOS and i < nwords and maxn > 0 else b"" for i, w in enumerate(words)]
    data = np.frombuffer(b"".join(wrapped) or b"\0", np.uint8)
    starts = np.zeros(len(words) + 1, np.int64)
    starts[1:] = np.cumsum([len(w) for w in wrapped])
    return _all_word_subwords(data, starts, minn, maxn, bucket, prune_mode, prune, nwords)


def _huffman_tree(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """HierarchicalSoftmaxLoss::buildTree: the same tree (labels come sorted by count, descending)."""
    osz = len(counts)
    count = [10**15] * (2 * osz - 1)
    count[:osz] = counts
    left = np.full(2 * osz - 1, -1, np.int32)
    right = np.full(2 * osz - 1, -1, np.int32)
    leaf, node = osz - 1, osz
    for i in range(osz, 2 * osz - 1):
        mini = [0, 0]
        for j in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                mini[j] = leaf
                leaf -= 1
            else:
                mini[j] = node
                node += 1
        left[i], right[i] = mini
        count[i] = count[mini[0]] + count[mini[1]]
    return left, right


# --------------------------------------------------------------------------------------- compiled


@numba.njit(inline="always")
def _fnv_step(h, b):
    """One byte of Dictionary::hash in uint64 arithmetic, kept to 32 bits."""
    v = np.uint64(b) | np.uint64(0xFFFFFF00) if b >= 128 else np.uint64(b)
    return ((h ^ v) * np.uint64(16777619)) & np.uint64(0xFFFFFFFF)


@numba.njit(inline="always")
def _push_hash(out, k, h, prune_mode, prune, nwords):
    """Dictionary::pushHash."""
    if prune_mode == 0:
        return k
    if prune_mode > 0:
        h = prune[h]
        if h < 0:
            return k
    out[k] = nwords + h
    return k + 1


@numba.njit(inline="always")
def _char_ngrams(word, a, b, minn, maxn, bucket, prune_mode, prune, nwords, out, k):
    """Dictionary::computeSubwords on word[a:b] (already wrapped in < >): appends rows to out[k:]."""
    for i in range(a, b):
        if (word[i] & 0xC0) == 0x80:
            continue
        h = np.uint64(2166136261)
        j, n = i, 1
        while j < b and n <= maxn:
            h = _fnv_step(h, word[j])
            j += 1
            while j < b and (word[j] & 0xC0) == 0x80:
                h = _fnv_step(h, word[j])
                j += 1
            if n >= minn and not (n == 1 and (i == a or j == b)):
                k = _push_hash(out, k, np.int64(h % np.uint64(bucket)), prune_mode, prune, nwords)
            n += 1
    return k


@numba.njit(cache=True)
def _all_word_subwords(data, starts, minn, maxn, bucket, prune_mode, prune, nwords):
    """Word i: itself, then the n-grams of data[starts[i]:starts[i + 1]] ("<word>", or empty)."""
    n = len(starts) - 1
    rows = np.empty(n + max(maxn, 1) * (starts[n] + 1), np.int32)
    offsets = np.zeros(n + 1, np.int64)
    k = 0
    for i in range(n):
        rows[k] = i
        k = _char_ngrams(data, starts[i], starts[i + 1], minn, maxn, bucket, prune_mode, prune, nwords, rows, k + 1)
        offsets[i + 1] = k
    return offsets, rows[:k].copy()


@numba.njit(inline="always")
def _is_delimiter(c):
    return c == 32 or c == 10 or c == 13 or c == 9 or c == 11 or c == 12 or c == 0


@numba.njit(inline="always")
def _line_rows(data, a, b, wrapped, rows, hashes, words, minn, maxn, prune_mode):
    """Dictionary::getLine on data[a:b] + "\\n": the input rows in fastText's order (each word's
    rows, then the word n-grams). Returns how many. `words`: FastTextPredictor._words; minn, maxn
    and prune_mode come as compile-time constants where an entry point (_predict_*) fixes them."""
    (nwords, _, _, bucket, word_ngrams, _, prune, slots, word_hash, word_offsets, word_bytes) = words[:11]
    (word_is_label, sub_offsets, sub_ids) = words[11:14]
    mask = len(slots) - 1
    k = 0
    nh = 0
    pos = a
    while True:
        while pos < b and _is_delimiter(data[pos]) and data[pos] != 10:
            pos += 1
        if pos >= b or data[pos] == 10:  # the newline ends the line with </s>
            s, e, eos = 0, 0, True
        else:
            s = pos
            while pos < b and not _is_delimiter(data[pos]):
                pos += 1
            e, eos = pos, False
        h = np.uint64(2166136261)
        if eos:
            for c in (60, 47, 115, 62):  # "</s>"
                h = _fnv_step(h, c)
        else:
            for i in range(s, e):
                h = _fnv_step(h, data[i])
            # a literal "</s>" token is the end of the line too
            eos = e - s == 4 and data[s] == 60 and data[s + 1] == 47 and data[s + 2] == 115 and data[s + 3] == 62
        wid = -1
        slot = np.int64(h) & mask
        while slots[slot] != -1:
            w = slots[slot]
            if word_hash[w] == h:
                ws, we = word_offsets[w], word_offsets[w + 1]
                if eos:
                    same = we - ws == 4 and word_bytes[ws] == 60 and word_bytes[ws + 1] == 47
                    same = same and word_bytes[ws + 2] == 115 and word_bytes[ws + 3] == 62
                else:
                    same = we - ws == e - s
                    i = 0
                    while same and i < e - s:
                        same = word_bytes[ws + i] == data[s + i]
                        i += 1
                if same:
                    wid = w
                    break
            slot = (slot + 1) & mask
        if wid >= 0:
            if not word_is_label[wid]:
                for t in range(sub_offsets[wid], sub_offsets[wid + 1]):
                    rows[k] = sub_ids[t]
                    k += 1
                hashes[nh] = h
                nh += 1
        elif not (not eos and e - s >= 9 and _starts_with_label(data, s)):
            if not eos and maxn > 0:
                wrapped[0] = 60  # "<" + token + ">"
                n = e - s
                for i in range(n):  # (a slice assignment costs more than this loop per token)
                    wrapped[i + 1] = data[s + i]
                wrapped[n + 1] = 62
                k = _char_ngrams(wrapped, 0, n + 2, minn, maxn, bucket, prune_mode, prune, nwords, rows, k)
            hashes[nh] = h
            nh += 1
        if eos:
            break
    for i in range(nh):  # Dictionary::addWordNgrams (the hashes as int32, sign-extended)
        hh = np.uint64(np.int64(np.int32(np.uint32(hashes[i]))))
        for j in range(i + 1, min(nh, i + word_ngrams)):
            hh = hh * WORD_NGRAM_MULTIPLIER + np.uint64(np.int64(np.int32(np.uint32(hashes[j]))))
            k = _push_hash(rows, k, np.int64(hh % np.uint64(bucket)), prune_mode, prune, nwords)
    return k


@numba.njit(inline="always")
def _starts_with_label(data, s):
    return (
        data[s] == 95
        and data[s + 1] == 95
        and data[s + 2] == 108
        and data[s + 3] == 97
        and data[s + 4] == 98
        and data[s + 5] == 101
        and data[s + 6] == 108
        and data[s + 7] == 95
        and data[s + 8] == 95
    )


@numba.njit(inline="always")
def _hidden(rows, k, decoded, hidden):
    """QuantMatrix::averageRowsToVector: the rows' vectors summed in order, times 1/k."""
    hidden[:] = np.float32(0.0)
    for r in range(k):
        row = rows[r]
        for j in range(hidden.shape[0]):
            hidden[j] += decoded[row, j]
    scale = np.float32(1.0 / k)
    for j in range(hidden.shape[0]):
        hidden[j] *= scale


def decode_rows(m: FastTextModel) -> np.ndarray:
    """Every row of the quantized input matrix as the float32 values ProductQuantizer::addcode adds
    (alpha * centroid, alpha the row's quantized norm or 1): the same numbers, looked up once.
    (rows, dim) float32: 3.2 MB for lid.176.ftz."""
    rows, nsubq = m.codes.shape
    out = np.empty((rows, m.dim), np.float32)
    for sub in range(nsubq):
        c = m.codes[:, sub].astype(np.int64)
        last = sub == nsubq - 1
        d = m.lastdsub if last else m.dsub
        base = sub * 256 * m.dsub + c * m.lastdsub if last else (sub * 256 + c) * m.dsub
        for n in range(d):
            out[:, sub * m.dsub + n] = m.centroids[base + n]
    if len(m.norm_codes):
        out *= m.norm_centroids[m.norm_codes][:, None]  # float32 products, as alpha * c[n] in C++
    return out


@numba.njit(inline="always")
def _dot(output, row, hidden):
    """DenseMatrix::dotRow: a float32 multiply, then a sequential float32 sum."""
    d = np.float32(0.0)
    for j in range(hidden.shape[0]):
        d += output[row, j] * hidden[j]
    return d


@numba.njit(inline="always")
def _std_log(x):
    """loss.cc's std_log(real x): log(x + 1e-5) in double, returned as float."""
    return np.float32(math.log(np.float64(x) + 1e-5))


@numba.njit(inline="always")
def _predict(data, offsets, words, decoded, output, hs_tree, nlabels, minn, maxn, prune_mode):
    """Per line: the input rows (Dictionary::getLine), their average (QuantMatrix::
    averageRowsToVector), then the output layer with threshold 0 as FastText::predictLine computes
    it: hierarchical softmax's top label (k=1), or every label's probability for softmax.
    Returns (top label or -1 when the line has no input rows, its probability, all probabilities
    (softmax only; zeros for hierarchical softmax)). Entry points: the three below."""
    left, right = hs_tree
    word_ngrams = words[4]
    n = len(offsets) - 1
    label = np.full(n, -1, np.int32)
    prob = np.zeros(n, np.float32)
    probs = np.zeros((n, nlabels if len(left) == 0 else 0), np.float32)
    longest = 0
    for d in range(n):
        longest = max(longest, offsets[d + 1] - offsets[d])
    wrapped = np.empty(longest + 2, np.uint8)
    # a word of L bytes gives itself and at most maxn n-grams per starting byte of "<word>"
    rows = np.empty((3 * (maxn + 1) + word_ngrams + 1) * (longest + 2) + 16, np.int32)
    hashes = np.empty(longest + 2, np.uint64)
    hidden = np.empty(output.shape[1], np.float32)
    out = np.empty(output.shape[0], np.float32)
    stack_node = np.empty(2 * output.shape[0] + 2, np.int32)
    stack_score = np.empty(2 * output.shape[0] + 2, np.float32)
    for d in range(n):
        k = _line_rows(data, offsets[d], offsets[d + 1], wrapped, rows, hashes, words, minn, maxn, prune_mode)
        if k == 0:
            continue  # FastText::predict returns no prediction for a line with no input rows
        _hidden(rows, k, decoded, hidden)
        if len(left):
            label[d], score = _hs_top1(output, hidden, left, right, stack_node, stack_score)
            prob[d] = math.exp(score)
        else:
            _softmax(output, hidden, out)
            best, best_score = -1, np.float32(0.0)
            for i in range(out.shape[0]):
                score = _std_log(out[i])  # findKBest with k=1: a later label as good replaces
                if best < 0 or score >= best_score:
                    best, best_score = i, score
                probs[d, i] = math.exp(score)
            label[d], prob[d] = best, math.exp(best_score)
    return label, prob, probs


@numba.njit(inline="always")
def _hs_top1(output, hidden, left, right, stack_node, stack_score):
    """HierarchicalSoftmaxLoss::dfs with k=1 and threshold 0, its recursion as a stack."""
    osz = output.shape[0]
    floor = _std_log(np.float32(0.0))  # std_log(threshold)
    best, best_score = -1, np.float32(0.0)
    stack_node[0], stack_score[0] = 2 * osz - 2, np.float32(0.0)
    top = 1
    while top:
        top -= 1
        node, score = stack_node[top], stack_score[top]
        if score < floor:
            continue
        if best >= 0 and score < best_score:
            continue
        if left[node] == -1 and right[node] == -1:
            best, best_score = node, score  # reached only when >= the best: a later leaf replaces
            continue
        f = _dot(output, node - osz, hidden)
        f = np.float32(1.0 / np.float64(np.float32(1.0) + np.float32(math.exp(-f))))
        # right pushed first, so that the left subtree is searched first, as dfs() recurses
        stack_node[top], stack_score[top] = right[node], score + _std_log(f)
        stack_node[top + 1], stack_score[top + 1] = left[node], score + _std_log(np.float32(1.0 - np.float64(f)))
        top += 2
    return best, best_score


@numba.njit(inline="always")
def _softmax(output, hidden, out):
    """SoftmaxLoss::computeOutput."""
    for i in range(output.shape[0]):
        out[i] = _dot(output, i, hidden)
    top = out[0]
    for i in range(out.shape[0]):
        top = max(out[i], top)
    z = np.float32(0.0)
    for i in range(out.shape[0]):
        out[i] = np.float32(math.exp(np.float64(out[i] - top)))  # exp in double here (the wheel calls exp, not expf)
        z += out[i]
    for i in range(out.shape[0]):
        out[i] /= z


@numba.njit(cache=True, nogil=True)
def _predict_any(data, offsets, words, decoded, output, hs_tree, nlabels):
    return _predict(data, offsets, words, decoded, output, hs_tree, nlabels, words[1], words[2], words[5])


@numba.njit(cache=True, nogil=True)
def _predict_2_4_pruned(data, offsets, words, decoded, output, hs_tree, nlabels):
    """lid.176's shape (character 2- to 4-grams, pruned), compiled with those as constants: the
    n-gram loop unrolls, 2x faster than with them read at run time."""
    return _predict(data, offsets, words, decoded, output, hs_tree, nlabels, 2, 4, 1)


@numba.njit(cache=True, nogil=True)
def _predict_no_char_ngrams(data, offsets, words, decoded, output, hs_tree, nlabels):
    """No character n-grams (fastText's supervised default; curate's toxicity model)."""
    return _predict(data, offsets, words, decoded, output, hs_tree, nlabels, 0, 0, words[5])


class FastTextPredictor:
    """fastText's predictions for a batch of one-line texts, from a model file (`load`)."""

    def __init__(self, path: str | Path):
        self.model = m = load(path)
        self.labels = m.labels
        self._words = (
            m.nwords,
            m.minn,
            m.maxn,
            m.bucket,
            m.word_ngrams,
            m.prune_mode,
            m.prune,
            m.word_slots,
            m.word_hash,
            m.word_offsets,
            m.word_bytes,
            m.word_is_label,
            m.sub_offsets,
            m.sub_ids,
        )
        self._decoded = decode_rows(m)
        self._tree = (m.tree_left, m.tree_right)

    def predict(self, lines: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(top label index or -1, its probability, every label's probability (softmax models;
        an empty second axis for hierarchical softmax)) per line: one-line texts (fastText reads a
        text up to its first newline; a newline is refused here as by fastText's predict)."""
        _refuse_newlines(lines)
        data, offsets = utf8_buffers(lines)
        m = self.model
        if (m.minn, m.maxn, m.prune_mode) == (2, 4, 1):
            kernel = _predict_2_4_pruned
        elif m.maxn == 0:
            kernel = _predict_no_char_ngrams
        else:
            kernel = _predict_any
        return kernel(data, offsets, self._words, self._decoded, m.output, self._tree, len(self.labels))


class LibraryPredictor:
    """The same `predict` through the fasttext package, for model files FastTextPredictor does not
    compute (`Unsupported`)."""

    def __init__(self, path: str | Path):
        import fasttext

        fasttext.FastText.eprint = lambda *a, **k: None  # its load warning is noise here
        model = fasttext.load_model(str(path))
        self.fasttext = model
        self.labels = [label.removeprefix("__label__") for label in model.labels]
        self._index = {f"__label__{name}": i for i, name in enumerate(self.labels)}

    def predict(self, lines: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(lines)
        label, prob = np.full(n, -1, np.int32), np.zeros(n, np.float32)
        if self.fasttext.f.getArgs().loss.name == "hs":
            labels, probs = predict_lines(self.fasttext, lines, 1)
            probs_all = np.zeros((n, 0), np.float32)
        else:
            labels, probs = predict_lines(self.fasttext, lines, len(self.labels))
            probs_all = np.zeros((n, len(self.labels)), np.float32)
        for i, (names, ps) in enumerate(zip(labels, probs)):
            if len(names):
                label[i], prob[i] = self._index[names[0]], ps[0]
                if probs_all.shape[1]:
                    probs_all[i, [self._index[x] for x in names]] = ps
        return label, prob, probs_all


def open_predictor(path: str | Path) -> FastTextPredictor | LibraryPredictor:
    """The compiled predictor for the model file, or fastText's own where it is not supported.
    NotAModel for a file that is not a whole fastText model (fastText itself may crash on one)."""
    try:
        return FastTextPredictor(path)
    except Unsupported:
        return LibraryPredictor(path)


def predict_lines(model, lines: pa.Array, k: int) -> tuple[list, list]:
    """fastText's `model.predict(list_of_lines, k)`, the same call into its C++ (multilinePredict, no
    threshold, strict UTF-8) without its per-line Python check and "\n" append. Every caller hands
    it one-line texts; a newline would make fastText read only the text before it, so one
    vectorised scan refuses that as predict() does."""
    _refuse_newlines(lines)
    empty, newline = pa.scalar("", lines.type), pa.scalar("\n", lines.type)
    return model.f.multilinePredict(pc.binary_join_element_wise(lines, empty, newline).to_pylist(), k, 0.0, "strict")


def _refuse_newlines(lines: pa.Array) -> None:
    """fastText's predict() refuses a text with a newline (it would read only the text before it)."""
    if pc.any(_literal.contains(lines, "\n")).as_py():
        raise ValueError("predict processes one line at a time (remove '\\n')")
