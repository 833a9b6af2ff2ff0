"""Variants of the offline quality model (train.py), by 5-fold cross-validation on the training split.

  PYTHONPATH=$PWD python benchmarks/quality/helpful_variants.py [--folds 5] [--variants NAME,...] [--gate-l2 X]

The folds, the fits and the figures are harmless_variants.py's (fold k held out, the model fitted
on the other four; the 20% eval split is never read); the gates do not depend on the variant, so
each fold's are fitted once per run. The question (issue 18): in cross-validation the shipped model
falls under "the longer response wins" on GPT-4 vs davinci-003 and AlpacaEval. HH-RLHF's harmless
pairs, where the shorter answer usually wins, are one of the helpful head's four equally weighted
losses and pull its length weights down. The knobs (train.fit's and train.py's arguments):
  hh        HH-RLHF's weight in the helpful head's fit (the harmless head, behind the gate, still
            learns from it);
  length    a prior on the helpful head's log_chars weight (it learns the difference, under L2
            `dense_l2`): the fit starts from "the longer answer wins";
  l2, dense_l2, harm_l2, harm_dense_l2, keep: train.py's --l2 ... --keep-helpful;
  gate_shift  taken off the gate's logit (a gate that opens on fewer requests);
  keep_ae   AlpacaEval's weight in the harmless head's fit (the source where the gate is partly open).
Prints per variant and source the pooled figure beside "longer wins" and each fold's, and for the
pair sources the helpful head alone (gate shut): what the harmless head adds or costs.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # as train.py: one thread, the same sums every run

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harmless_variants as hv  # noqa: E402
import run  # noqa: E402
import train  # noqa: E402


@dataclass(frozen=True)
class Variant:
    """train.py's settings (its arguments' names) and AlpacaEval's weight in the harmless fit."""

    helpful_harm: float = 1.0  # HH-RLHF's weight in the helpful head's fit (each other source: 1)
    l2: float = 1e-2  # helpful hashed
    dense_l2: float = 1e-5
    harm_l2: float = 3e-5
    harm_dense_l2: float = 1e-3
    keep_helpful: float = 3.0
    length_prior: float = 0.0  # the prior on log_chars's helpful weight
    gate_shift: float = 0.0  # taken off the gate's logit
    keep_ae: float | None = None  # AlpacaEval's weight in the harmless head's fit (None: keep_helpful)

    @property
    def keep_by_source(self) -> dict[str, float] | None:
        return None if self.keep_ae is None else {"alpaca_eval": self.keep_ae}


VARIANTS = {
    "shipped": Variant(),
    "hh 0": Variant(helpful_harm=0.0),
    "hh 0.3": Variant(helpful_harm=0.3),
    "hh 0 keep 1": Variant(helpful_harm=0.0, keep_helpful=1.0),
    "hh 0 l2 3e-2": Variant(helpful_harm=0.0, l2=3e-2),
    "l2 3e-2": Variant(l2=3e-2),
    "dense only": Variant(l2=1e3),
    "hh 0 dense only": Variant(helpful_harm=0.0, l2=1e3),
    "hh 0 length 10 d 1e-2": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2),
    "hh 0 length 30 d 1e-2": Variant(helpful_harm=0.0, length_prior=30.0, dense_l2=1e-2),
    "hh 0 length 30 d 1e-1": Variant(helpful_harm=0.0, length_prior=30.0, dense_l2=1e-1),
    "length 30 d 1e-1": Variant(length_prior=30.0, dense_l2=1e-1),
    "hh 0 length 5 d 1e-2": Variant(helpful_harm=0.0, length_prior=5.0, dense_l2=1e-2),
    "hh 0 length 10 d 1e-2 hd 1e-1": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_dense_l2=1e-1),
    "hh 0 length 10 d 1e-2 hd 1e-2": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_dense_l2=1e-2),
    "hh 0 length 10 d 1e-2 keep 10": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, keep_helpful=10.0),
    "hh 0 length 10 d 1e-3": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-3),
    "hh 0.3 length 10 d 1e-2": Variant(helpful_harm=0.3, length_prior=10.0, dense_l2=1e-2),
    "hh 0 length 10 d 1e-2 shift 1": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, gate_shift=1.0),
    "hh 0 length 10 d 1e-2 shift 2": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, gate_shift=2.0),
    "hh 0 length 10 d 1e-2 shift 3": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, gate_shift=3.0),
    "hh 0 length 10 d 1e-3 shift 2": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-3, gate_shift=2.0),
    "hh 0 length 5 d 1e-2 shift 2": Variant(helpful_harm=0.0, length_prior=5.0, dense_l2=1e-2, gate_shift=2.0),
    "shift 2": Variant(gate_shift=2.0),
    "hh 0 length 10 d 1e-2 harm 1e-4": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-4),
    "hh 0 length 10 d 1e-2 harm 3e-4": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=3e-4),
    "hh 0 length 10 d 1e-2 keep 1": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, keep_helpful=1.0),
    "hh 0 length 10 d 1e-2 keep 1 shift 1": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, keep_helpful=1.0, gate_shift=1.0
    ),
    "hh 0 length 10 d 1e-2 harm 1e-5": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-5),
    "hh 0 length 10 d 1e-2 keep 1 harm 1e-4": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, keep_helpful=1.0, harm_l2=1e-4
    ),
    "hh 0 length 10 d 1e-2 harm 1e-4 shift 0.5": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-4, gate_shift=0.5
    ),
    "hh 0 length 10 d 1e-2 harm 1e-4 shift 1": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-4, gate_shift=1.0
    ),
    "hh 0 length 10 d 1e-2 harm 2e-4": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=2e-4),
    "hh 0 length 7 d 1e-2 harm 1e-4": Variant(helpful_harm=0.0, length_prior=7.0, dense_l2=1e-2, harm_l2=1e-4),
    "hh 0.3 length 10 d 1e-2 harm 1e-4": Variant(helpful_harm=0.3, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-4),
    "hh 0 length 10 d 3e-2 harm 1e-4": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=3e-2, harm_l2=1e-4),
    "hh 0 length 10 d 1e-2 harm 1.5e-4": Variant(helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1.5e-4),
    "hh 0 length 10 d 1e-2 harm 1e-4 hd 1e3": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-4, harm_dense_l2=1e3
    ),
    "hh 0 length 10 d 1e-2 harm 2e-4 keep 1": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=2e-4, keep_helpful=1.0
    ),
    "hh 0 length 15 d 1e-2 harm 2e-4 keep 1": Variant(
        helpful_harm=0.0, length_prior=15.0, dense_l2=1e-2, harm_l2=2e-4, keep_helpful=1.0
    ),
    "hh 0 length 10 d 1e-2 harm 1e-4 l2 3e-3": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-4, l2=3e-3
    ),
    "hh 0 length 10 d 1e-2 harm 1e-4 l2 3e-2": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-4, l2=3e-2
    ),
    "hh 0 length 10 d 1e-2 harm 1e-4 l2 1e-1": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-4, l2=1e-1
    ),
    "hh 0 length 10 d 1e-2 harm 1e-4 l2 1e-3": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-4, l2=1e-3
    ),
    "hh 0 length 10 d 1e-2 harm 1e-4 ae 10": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-4, keep_ae=10.0
    ),
    "hh 0 length 10 d 1e-2 harm 1e-4 ae 30": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-4, keep_ae=30.0
    ),
    "hh 0 length 10 d 1e-2 keep 1 ae 10": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, keep_helpful=1.0, keep_ae=10.0
    ),
    "hh 0 length 10 d 1e-2 harm 1e-5 ae 10": Variant(
        helpful_harm=0.0, length_prior=10.0, dense_l2=1e-2, harm_l2=1e-5, keep_ae=10.0
    ),
}


def measure(variant: Variant, parts, folds, raters, gates_of, n_folds: int) -> dict[str, tuple[float, list[float]]]:
    """source -> (pooled figure, per-fold figures), as harmless_variants.measure."""
    per_fold: dict[str, list] = {}
    for k in range(n_folds):
        fit_parts = hv.split(parts, folds, k, held=False)
        gate, w, b, r = train.fit_model(fit_parts, *gates_of(k, fit_parts), variant)
        model = (gate, w, b, r)
        for (name, chosen, rejected, y), fold in zip(hv.split(parts, folds, k, held=True), folds):
            if rejected is None:
                chatgpt = raters[fold == k] != "claude"
                s = hv.score(model, chosen)
                per_fold.setdefault("alpagasus_chatgpt", []).append(run.auc(s[chatgpt], y[chatgpt]))
            else:
                sc, sr = hv.score(model, chosen), hv.score(model, rejected)
                per_fold.setdefault(name, []).append((sc > sr) + 0.5 * (sc == sr))
                # the helpful head alone (gate shut): what the harmless head adds or takes away
                hc, hr = chosen.helpful @ w, rejected.helpful @ w
                per_fold.setdefault(name + " (helpful)", []).append((hc > hr) + 0.5 * (hc == hr))
        if k == 0:
            dense = w[train.DIM :]
            print(
                "  fold 0 helpful dense:", " ".join(f"{n} {x:+.2f}" for n, x in zip(train.qf.DENSE, dense)), flush=True
            )
    return {
        name: (
            float(np.mean(v)) if name == "alpagasus_chatgpt" else float(np.concatenate(v).mean()),
            [float(np.mean(x)) for x in v],
        )
        for name, v in per_fold.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, default=5, choices=(1, 5), help="1: the validation split only")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--gate-l2", type=float, default=1e-5)
    args = ap.parse_args()
    names = hv.pick(args.variants, VARIANTS, "helpful_variants.py")
    parts, folds, raters = hv.load(False)
    longer = hv.longer_wins(folds, raters, args.folds)
    cache: dict[int, tuple] = {}

    def gates_of(k, fit_parts):
        if k not in cache:
            cache[k] = (train.fit_gate(fit_parts, args.gate_l2), train.out_of_fold_gates(fit_parts, args.gate_l2))
        return cache[k]

    print(f"{'variant':24s} {'source':18s} {'figure':>6s} {'longer':>6s}  per fold")
    for name in names:
        t0 = time.process_time()
        for source, (value, per) in measure(VARIANTS[name], parts, folds, raters, gates_of, args.folds).items():
            print(
                f"{name:24s} {source:18s} {value:6.3f} {longer[source.split(' (')[0]]:6.3f}  {' '.join(f'{x:.3f}' for x in per)}",
                flush=True,
            )
        print(f"{name:24s} {time.process_time() - t0:.0f} CPU s", flush=True)


if __name__ == "__main__":
    main()
