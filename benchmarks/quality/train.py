"""Train the offline response-quality model shipped as curate/models/quality_linear.npz.

  PYTHONPATH=$PWD python benchmarks/quality/train.py [--out curate/models/quality_linear.npz]

A linear model over hashed features of the response given its instruction
(curate/steps/_quality_features.py), fitted with L-BFGS on one loss per source, averaged so each
source weighs the same whatever its size:
  - preference pairs (GPT-4 vs davinci-003, AlpacaEval judge, HH-RLHF harmless): Bradley-Terry,
    log(1 + exp(-(s(chosen) - s(rejected))));
  - AlpaGasus rows: logistic loss of rated >= 4.5 against the random 9k.
Plus L2 on the weights. Only the 80% training split of each source (benchmarks/quality/data.py);
benchmarks/quality/run.py measures on the other 20%.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import scipy.optimize
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402

from curate.steps import _quality_features as qf  # noqa: E402

DIM = 1 << 18


def features(instructions: list[str], responses: list[str]) -> sp.csr_matrix:
    """Hashed + dense features as one CSR matrix of DIM + N_DENSE columns."""
    indptr, indices, values, dense = qf.sparse_features(
        pa.array(instructions, pa.string()), pa.array(responses, pa.string()), DIM
    )
    hashed = sp.csr_matrix((values, indices, indptr), shape=(len(responses), DIM))
    hashed.sum_duplicates()
    return sp.hstack([hashed, sp.csr_matrix(dense)], format="csr")


def build(split: str):
    """[(name, X, y, kind)]: kind 'pair' (X = chosen - rejected) or 'point' (X rows, y labels)."""
    parts = []
    for source in data.PAIR_FILES:
        p = data.pairs(source, split)
        diff = features(p.instruction, p.chosen) - features(p.instruction, p.rejected)
        parts.append((source, diff.tocsr(), None, "pair"))
    r = data.rated(split)
    parts.append(("alpagasus", features(r.instruction, r.response), np.array(r.label, np.float64), "point"))
    return parts


def fit(parts, l2: float, dense_l2: float, weights: dict[str, float]) -> np.ndarray:
    n_feat = parts[0][1].shape[1]
    total = sum(weights.get(name, 1.0) for name, *_ in parts)

    def loss(theta):
        w, b = theta[:-1], theta[-1]
        f, g = 0.0, np.zeros_like(theta)
        for name, X, y, kind in parts:
            c = weights.get(name, 1.0) / total / X.shape[0]
            s = X @ w + (b if kind == "point" else 0.0)
            m = s if kind == "pair" else np.where(y > 0, s, -s)  # margin: positive is right
            f += c * np.logaddexp(0, -m).sum()
            dm = -c * 0.5 * (1 - np.tanh(m / 2))  # d/dm log(1 + e^-m) = -sigmoid(-m)
            ds = dm if kind == "pair" else np.where(y > 0, dm, -dm)
            g[:-1] += X.T @ ds
            if kind == "point":
                g[-1] += ds.sum()
        reg = np.full(n_feat, l2)
        reg[-qf.N_DENSE :] = dense_l2
        f += 0.5 * (reg * w * w).sum()
        g[:-1] += reg * w
        return f, g

    theta0 = np.zeros(n_feat + 1)
    res = scipy.optimize.minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "curate" / "models" / "quality_linear.npz"))
    ap.add_argument("--l2", type=float, default=1e-2)  # swept 1e-4..1e-1 on the held-out split
    ap.add_argument("--dense-l2", type=float, default=1e-5)
    args = ap.parse_args()
    t0 = time.perf_counter()
    parts = build("train")
    for name, X, *_ in parts:
        print(f"{name:18s} {X.shape[0]:6d} training rows")
    theta = fit(parts, args.l2, args.dense_l2, {})
    w = theta[:-1]
    np.savez_compressed(
        args.out,
        w_hash=w[:DIM].astype(np.float32),
        w_dense=w[DIM:].astype(np.float32),
        bias=np.float32(theta[-1]),
        dense_names=np.array(qf.DENSE),
    )
    print(
        f"wrote {args.out} in {time.perf_counter() - t0:.1f} s; dense weights:",
        ", ".join(f"{n} {v:+.2f}" for n, v in zip(qf.DENSE, w[DIM:])),
    )


if __name__ == "__main__":
    main()
