"""Train the offline response-quality model shipped as curate/models/quality_linear.npz.

  PYTHONPATH=$PWD python benchmarks/quality/train.py [--out curate/models/quality_linear.npz]
  PYTHONPATH=$PWD python benchmarks/quality/train.py --validate [--harm-l2 ...]   # for choices

The model (curate/steps/_quality_features.py) is
    helpful(instruction, response) + gate(instruction) * harmless(response)
over hashed features of the response given its instruction. Three fits, all L-BFGS on one thread
(deterministic: same data, same file), each loss averaged per source so that each source weighs
the same whatever its size:
  1. the gate: logistic regression on the instruction's hashed words, HH-RLHF's red-team requests
     (1) against the Alpaca / AlpacaEval / AlpaGasus instructions (0), the classes and the sources
     within a class weighing the same;
  2. the helpful head on every source (HH-RLHF's loss times --helpful-harm: 1 ships; its log_chars
     weight may start from --length-prior, 0 ships; helpful_variants.py tried other values):
     - preference pairs (GPT-4 vs davinci-003, AlpacaEval judge, HH-RLHF harmless): Bradley-Terry,
       log(1 + exp(-(s(chosen) - s(rejected))));
     - AlpaGasus rows: logistic loss of rated >= 4.5 against the random 9k;
  3. the harmless head on the same losses, the helpful scores fixed, each row multiplied by the
     gate of a gate fitted without its instruction (5 folds; its logit less --gate-shift, 0 ships),
     the helpfulness sources --keep-helpful times as heavy as HH-RLHF.
Each with L2 (helpful hashed / dense, harmless hashed / dense, gate). Only the 80% training split
of each source (benchmarks/quality/data.py); run.py measures on the other 20%. `--validate` fits on
four fifths of the training split and prints the metrics on the remaining fifth ("validation"):
the defaults below were chosen there (benchmarks/README.md lists the variants).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread: the same floating-point sums, so the same weights, every run

import argparse  # noqa: E402
import hashlib  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import scipy.optimize  # noqa: E402
import scipy.sparse as sp  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402

from curate.steps import _quality_features as qf  # noqa: E402

DIM = 1 << 18
DIM_GATE = 1 << 16
HARM_SOURCE = "hh_harmless"
GATE_FOLDS = 5


@dataclass
class Feats:
    helpful: sp.csr_matrix  # hashed + dense: DIM + N_DENSE columns
    harmless: sp.csr_matrix  # the response's n-grams + dense, before the gate: DIM + N_DENSE columns
    gate: sp.csr_matrix  # the instruction's words: DIM_GATE columns
    fold: np.ndarray  # 0-4 by a hash of the instruction: out-of-fold gates for the heads' fit


def features(instructions: list[str], responses: list[str]) -> Feats:
    indptr, indices, values, n_resp, dense, g_indptr, g_indices = qf.sparse_features(
        pa.array(instructions, pa.string()), pa.array(responses, pa.string()), DIM, DIM_GATE
    )
    n = len(responses)
    counts = np.diff(indptr)
    pos = np.arange(len(indices)) - np.repeat(indptr[:-1], counts)  # each entry's place in its row
    is_resp = pos < np.repeat(n_resp, counts)

    def csr(keep, dim=DIM):
        row_counts = np.bincount(np.repeat(np.arange(n), counts)[keep], minlength=n)
        return sp.csr_matrix(
            (values[keep], indices[keep], np.concatenate([[0], np.cumsum(row_counts)])), shape=(n, dim)
        )

    hashed, resp_hashed = csr(np.ones(len(indices), bool)), csr(is_resp)  # harmless: the response alone
    g_counts = np.diff(g_indptr)
    g_values = np.repeat(1.0 / np.sqrt(g_counts + 1.0), g_counts)
    gate = sp.csr_matrix((g_values, g_indices, g_indptr), shape=(n, DIM_GATE))
    for m in (hashed, resp_hashed, gate):
        m.sum_duplicates()
    dense = sp.csr_matrix(dense)
    fold = np.array([int(hashlib.sha256(b"gate:" + i.encode()).hexdigest(), 16) % GATE_FOLDS for i in instructions])
    return Feats(sp.hstack([hashed, dense], format="csr"), sp.hstack([resp_hashed, dense], format="csr"), gate, fold)


def build(split: str):
    """[(name, chosen-or-rows Feats, rejected Feats or None, labels or None)] for one split."""
    parts = []
    for source in data.PAIR_FILES:
        p = data.pairs(source, split)
        parts.append((source, features(p.instruction, p.chosen), features(p.instruction, p.rejected), None))
    r = data.rated(split)
    parts.append(("alpagasus", features(r.instruction, r.response), None, np.array(r.label, np.float64)))
    return parts


def logistic(X: sp.csr_matrix, y: np.ndarray, sample_w: np.ndarray, l2: float) -> np.ndarray:
    """Weighted L2 logistic regression with a bias (the last entry)."""
    sign = np.where(y > 0, 1.0, -1.0)

    def loss(theta):
        w, b = theta[:-1], theta[-1]
        m = sign * (X @ w + b)
        dm = -sample_w * 0.5 * (1 - np.tanh(m / 2)) * sign
        return (sample_w * np.logaddexp(0, -m)).sum() + 0.5 * l2 * (w @ w), np.append(X.T @ dm + l2 * w, dm.sum())

    theta0 = np.zeros(X.shape[1] + 1)
    return scipy.optimize.minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500}).x


def fit_gate(parts, l2: float, leave_out: int | None = None) -> np.ndarray:
    """The gate on every distinct training instruction (but those of fold `leave_out`): HH-RLHF's (1)
    against the others' (0). The two classes weigh the same, and so do the sources within a class
    (AlpacaEval's few hundred conversational questions are the ones most like HH-RLHF's)."""
    rows, weights, labels = [], [], []
    n_neg = sum(name != HARM_SOURCE for name, *_ in parts)
    for name, chosen, _, _ in parts:
        X = chosen.gate
        # one row per distinct instruction (the same words in the same counts)
        first = {}
        for i in range(X.shape[0]):
            lo, hi = X.indptr[i], X.indptr[i + 1]
            if chosen.fold[i] != leave_out:
                first.setdefault((X.indices[lo:hi].tobytes(), X.data[lo:hi].tobytes()), i)
        keep = sorted(first.values())
        harm = name == HARM_SOURCE
        rows.append(X[keep])
        labels.append(np.full(len(keep), 1.0 if harm else 0.0))
        weights.append(np.full(len(keep), (0.5 if harm else 0.5 / n_neg) / len(keep)))
    X, y, sample_w = sp.vstack(rows, format="csr"), np.concatenate(labels), np.concatenate(weights)
    return logistic(X, y, sample_w, l2)


def out_of_fold_gates(parts, l2: float) -> list[np.ndarray]:
    """Each training row's gate from a gate fitted without its instruction: the heads must learn with
    the gate values unseen requests get (a gate fitted on the same instructions is surer of them)."""
    gates = [fit_gate(parts, l2, k) for k in range(GATE_FOLDS)]
    out = []
    for _, chosen, _, _ in parts:
        g = np.empty(chosen.gate.shape[0])
        for k, gate in enumerate(gates):
            rows = chosen.fold == k
            g[rows] = 1.0 / (1.0 + np.exp(-(chosen.gate[rows] @ gate[:-1] + gate[-1])))
        out.append(g)
    return out


def shift_gate(g: np.ndarray, shift: float) -> np.ndarray:
    """sigmoid(logit(g) - shift): the gate with `shift` taken off its bias (g itself when 0, bit for bit)."""
    if not shift:
        return g
    with np.errstate(divide="ignore"):
        return 1.0 / (1.0 + (1.0 / g - 1.0) * np.exp(shift))


def blocks_of(parts, matrix) -> list[tuple[sp.csr_matrix, np.ndarray | None]]:
    """One (X, labels) per source: X = matrix(chosen) - matrix(rejected) for pairs (labels None),
    matrix(rows) for rated rows."""
    out = []
    for i, (_, chosen, rejected, y) in enumerate(parts):
        X = matrix(i, chosen) if rejected is None else (matrix(i, chosen) - matrix(i, rejected)).tocsr()
        out.append((X, y))
    return out


def fit_linear(blocks, reg: np.ndarray, offsets=None, weights=None, bias: bool = True) -> np.ndarray:
    """L2-regularised linear scores on one loss per source, averaged (times `weights`, 1 each by
    default): Bradley-Terry for pairs, logistic for rated rows; `offsets` are fixed scores added to
    each block's; returns [weights, bias]."""
    offsets = offsets or [0.0] * len(blocks)
    weights = weights or [1.0] * len(blocks)

    def loss(theta):
        w, b = theta[:-1], theta[-1]
        f, g = 0.0, np.zeros_like(theta)
        for (X, y), off, weight in zip(blocks, offsets, weights):
            c = weight / len(blocks) / X.shape[0]
            s = X @ w + off + (b if y is not None else 0.0)
            m = s if y is None else np.where(y > 0, s, -s)  # margin: positive is right
            f += c * np.logaddexp(0, -m).sum()
            dm = -c * 0.5 * (1 - np.tanh(m / 2))  # d/dm log(1 + e^-m) = -sigmoid(-m)
            ds = dm if y is None else np.where(y > 0, dm, -dm)
            g[:-1] += X.T @ ds
            if y is not None and bias:
                g[-1] += ds.sum()
        f += 0.5 * (reg * w * w).sum()
        g[:-1] += reg * w
        return f, g

    theta0 = np.zeros(blocks[0][0].shape[1] + 1)
    return scipy.optimize.minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500}).x


def fit(
    parts,
    gates: list[np.ndarray],
    l2: float,
    dense_l2: float,
    harm_l2: float,
    harm_dense_l2: float,
    keep: float,
    extra_l2: float = 1e-3,
    helpful_harm: float = 1.0,
    length_prior: float = 0.0,
    keep_by_source: dict[str, float] | None = None,
):
    """(helpful weights, bias, harmless weights). The helpful head first, on every source; then the
    harmless head on what it leaves, the helpful scores fixed and each row's gate fixed, still on
    every source, the helpfulness sources `keep` times as heavy as HH-RLHF: the harmless head must
    not disturb them where the gate is partly open (AlpacaEval's conversational questions).
    Columns of `harmless` past DIM + N_DENSE (features tried by harmless_variants.py; the shipped
    model has none) get L2 `extra_l2`."""
    helpful = blocks_of(parts, lambda i, f: f.helpful)
    reg = np.concatenate([np.full(DIM, l2), np.full(qf.N_DENSE, dense_l2)])
    # HH-RLHF's pairs weigh `helpful_harm` in the helpful head's fit (1: as much as each other source)
    # the helpful head's log_chars weight is `length_prior` plus what it learns (L2 dense_l2 pulls it
    # to the prior, not to 0): the fit starts from "the longer answer wins" and learns what differs
    col = DIM + qf.DENSE.index("log_chars")
    prior = [length_prior * X[:, col].toarray().ravel() for X, _ in helpful]
    weights = [helpful_harm if name == HARM_SOURCE else 1.0 for name, *_ in parts]
    theta_h = fit_linear(helpful, reg, prior, weights)
    theta_h[col] += length_prior
    offsets = [X @ theta_h[:-1] + (theta_h[-1] if y is not None else 0.0) for X, y in helpful]
    harmless = blocks_of(parts, lambda i, f: (sp.diags(gates[i]) @ f.harmless).tocsr())
    n_extra = harmless[0][0].shape[1] - DIM - qf.N_DENSE
    reg = np.concatenate([np.full(DIM, harm_l2), np.full(qf.N_DENSE, harm_dense_l2), np.full(n_extra, extra_l2)])
    weights = [1.0 if name == HARM_SOURCE else (keep_by_source or {}).get(name, keep) for name, *_ in parts]
    theta_r = fit_linear(harmless, reg, offsets, weights, bias=False)
    return theta_h[:-1], theta_h[-1], theta_r[:-1]


def fit_model(parts, gate: np.ndarray, gates: list[np.ndarray], s):
    """(gate, helpful weights, bias, harmless weights) with settings `s` (main()'s arguments, or
    helpful_variants.py's Variant; keep_by_source optional): the gate and each row's gate shifted by
    s.gate_shift, then fit()."""
    gate = np.append(gate[:-1], gate[-1] - s.gate_shift)
    gates = [shift_gate(g, s.gate_shift) for g in gates]
    w, b, r = fit(
        parts,
        gates,
        s.l2,
        s.dense_l2,
        s.harm_l2,
        s.harm_dense_l2,
        s.keep_helpful,
        helpful_harm=s.helpful_harm,
        length_prior=s.length_prior,
        keep_by_source=getattr(s, "keep_by_source", None),
    )
    return gate, w, b, r


def train(split: str, args) -> dict[str, np.ndarray]:
    parts = build(split)
    for name, chosen, *_ in parts:
        print(f"{name:18s} {chosen.helpful.shape[0]:6d} {split} rows")
    gate, w, b, r = fit_model(parts, fit_gate(parts, args.gate_l2), out_of_fold_gates(parts, args.gate_l2), args)
    return {
        "w_hash": w[:DIM].astype(np.float32),
        "w_dense": w[DIM:].astype(np.float32),
        "bias": np.float32(b),
        "w_harm": r[:DIM].astype(np.float32),
        "w_harm_dense": r[DIM:].astype(np.float32),
        "w_gate": gate[:-1].astype(np.float32),
        "gate_bias": np.float32(gate[-1]),
        "dense_names": np.array(qf.DENSE),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "curate" / "models" / "quality_linear.npz"))
    ap.add_argument(
        "--validate", action="store_true", help="fit on 'fit', print metrics on 'validation'; no model written"
    )
    # chosen with --validate (metrics on the validation fifth of the training split)
    ap.add_argument("--l2", type=float, default=1e-2)
    ap.add_argument("--dense-l2", type=float, default=1e-5)
    ap.add_argument("--harm-l2", type=float, default=3e-5)
    ap.add_argument("--harm-dense-l2", type=float, default=1e-3)
    ap.add_argument("--gate-l2", type=float, default=1e-5)
    ap.add_argument("--keep-helpful", type=float, default=3.0)
    # chosen by 5-fold cross-validation (benchmarks/quality/helpful_variants.py)
    ap.add_argument("--helpful-harm", type=float, default=1.0, help="HH-RLHF's weight in the helpful head's fit")
    ap.add_argument("--length-prior", type=float, default=0.0, help="the prior on log_chars's helpful weight")
    ap.add_argument("--gate-shift", type=float, default=0.0, help="taken off the gate's bias")
    args = ap.parse_args()
    t0 = time.perf_counter()
    model = train("fit" if args.validate else "train", args)
    if args.validate:
        import run  # the benchmark's metrics, on the validation split

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.npz"
            np.savez(path, **model)
            scorer = run.OfflineScorer(path)
            for source, n, metric, value, _, longer in run.evaluate(scorer, "validation"):
                print(f"validation {source:20s} {n:6d} {metric:13s} {value:6.3f}  longer {longer:6.3f}")
        return
    np.savez_compressed(args.out, **model)
    print(
        f"wrote {args.out} in {time.perf_counter() - t0:.1f} s; dense weights (helpful / harmless):",
        ", ".join(f"{n} {a:+.2f}/{b:+.2f}" for n, a, b in zip(qf.DENSE, model["w_dense"], model["w_harm_dense"])),
    )


if __name__ == "__main__":
    main()
