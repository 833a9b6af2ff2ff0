"""Variants of the offline quality model's harmless head, measured without the eval split.

  PYTHONPATH=$PWD python benchmarks/quality/harmless_variants.py [--folds 5] [--variants NAME,...]

The training split (benchmarks/quality/data.py) is cut in five folds by the hash that makes the
validation split: fold 0 is `train.py --validate`'s validation split (the model fitted on folds
1-4, the same fit), and `--folds 5` fits and measures each fold in turn (5-fold cross-validation,
~1,370 HH-RLHF pairs measured instead of 268: one validation pair moves the figure by 0.004, and
neighbouring settings move it by 0.02-0.03). The 20% eval split is never read.

Each variant is train.py's model (gate, helpful head, then the harmless head on what the helpful
head leaves) with other settings or more inputs to the harmless head:
  toxicity  curate's shipped toxicity fastText model (loaded as the toxicity step loads it) on the
            response: its score, its logit, and the logit minus the instruction's (a response more
            toxic than the request that asked for it);
  no dense  the harmless head without the dense features (length, lines, lists, overlap: L2 1e3),
            so that it cannot learn "shorter is better", which HH-RLHF teaches and AlpacaEval's
            conversational questions (where the gate is partly open) contradict;
  keep K    the helpfulness sources K times as heavy as HH-RLHF in the harmless head's fit (3 ships).
Prints per variant and source the pooled figure (pairwise accuracy; AlpaGasus ChatGPT-rated vs the
random 9k: mean ROC AUC over folds) and each fold's, beside "the longer response wins".
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # as train.py: one thread, the same sums every run

import argparse  # noqa: E402
import hashlib  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import scipy.sparse as sp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402
import run  # noqa: E402
import train  # noqa: E402

from curate.steps.toxicity import _FastText  # noqa: E402


@dataclass(frozen=True)
class Variant:
    toxicity: bool = False
    harm_dense_l2: float = 1e-3
    keep: float = 3.0


VARIANTS = {
    "shipped": Variant(),
    "toxicity": Variant(toxicity=True),
    "no-dense": Variant(harm_dense_l2=1e3),
    "no-dense+toxicity": Variant(toxicity=True, harm_dense_l2=1e3),
    "no-dense keep 1": Variant(harm_dense_l2=1e3, keep=1.0),
    "no-dense+toxicity keep 1": Variant(toxicity=True, harm_dense_l2=1e3, keep=1.0),
    "no-dense+toxicity keep 0.5": Variant(toxicity=True, harm_dense_l2=1e3, keep=0.5),
}


def pick(arg: str, variants: dict, prog: str) -> list[str]:
    """The comma-separated variant names of `arg`; a one-line error for an unknown one."""
    names = arg.split(",")
    unknown = [n for n in names if n not in variants]
    if unknown:
        raise SystemExit(f"{prog}: unknown variant(s) {unknown}; choose from {list(variants)}")
    return names


def fold_of(instruction: str) -> int:
    """data.in_split's validation hash: fold 0 is the validation split."""
    return int(hashlib.sha256(b"validation:" + instruction.encode()).hexdigest(), 16) % 5


def toxicity_columns(tox: _FastText, instructions: list[str], responses: list[str]) -> np.ndarray:
    """The response's toxicity, its logit, and the logit minus the instruction's."""

    def logit(texts):
        p = np.clip(tox.score(pa.array(texts, pa.string()))["toxicity"].astype(np.float64), 1e-6, 1 - 1e-6)
        return p, np.log(p / (1 - p))

    p_r, l_r = logit(responses)
    _, l_i = logit(instructions)
    return np.column_stack([p_r, l_r / 10, (l_r - l_i) / 10])


def with_extra(f: train.Feats, extra: np.ndarray) -> train.Feats:
    return train.Feats(f.helpful, sp.hstack([f.harmless, sp.csr_matrix(extra)], format="csr"), f.gate, f.fold)


def rows_of(f: train.Feats, rows: np.ndarray) -> train.Feats:
    return train.Feats(f.helpful[rows], f.harmless[rows], f.gate[rows], f.fold[rows])


def load(toxicity: bool):
    """train.build("train") (with the toxicity columns appended to the harmless features), each
    part's folds, and the AlpaGasus raters."""
    parts = train.build("train")
    rated = data.rated("train")
    tox = _FastText() if toxicity else None
    out, folds = [], []
    for name, chosen, rejected, y in parts:
        if name == "alpagasus":
            instr, sides = rated.instruction, [rated.response]
        else:
            p = data.pairs(name, "train")
            instr, sides = p.instruction, [p.chosen, p.rejected]
        folds.append(np.array([fold_of(i) for i in instr]))
        if tox is not None:
            chosen = with_extra(chosen, toxicity_columns(tox, instr, sides[0]))
            if rejected is not None:
                rejected = with_extra(rejected, toxicity_columns(tox, instr, sides[1]))
        out.append((name, chosen, rejected, y))
    return out, folds, np.array(rated.rater)


def split(parts, folds, k: int, held: bool):
    """The rows of fold k (held) or of the other folds."""
    out = []
    for (name, chosen, rejected, y), fold in zip(parts, folds):
        rows = np.nonzero((fold == k) == held)[0]
        out.append(
            (
                name,
                rows_of(chosen, rows),
                None if rejected is None else rows_of(rejected, rows),
                None if y is None else y[rows],
            )
        )
    return out


def score(model, f: train.Feats) -> np.ndarray:
    """What OfflineScorer computes (in float64): helpful + gate * harmless."""
    gate, w, b, r = model
    g = 1.0 / (1.0 + np.exp(-(f.gate @ gate[:-1] + gate[-1])))
    return f.helpful @ w + b + g * (f.harmless @ r)


def measure(variant: Variant, parts, folds, raters, n_folds: int, args) -> dict[str, tuple[float, list[float]]]:
    """source -> (pooled figure, per-fold figures) over the first n_folds folds."""
    per_fold: dict[str, list] = {}
    for k in range(n_folds):
        fit_parts = split(parts, folds, k, held=False)
        gate = train.fit_gate(fit_parts, args.gate_l2)
        gates = train.out_of_fold_gates(fit_parts, args.gate_l2)
        w, b, r = train.fit(
            fit_parts, gates, args.l2, args.dense_l2, args.harm_l2, variant.harm_dense_l2, variant.keep, args.extra_l2
        )
        model = (gate, w, b, r)
        for (name, chosen, rejected, y), fold in zip(split(parts, folds, k, held=True), folds):
            if rejected is None:
                chatgpt = raters[fold == k] != "claude"
                per_fold.setdefault("alpagasus_chatgpt", []).append(run.auc(score(model, chosen)[chatgpt], y[chatgpt]))
            else:
                sc, sr = score(model, chosen), score(model, rejected)
                per_fold.setdefault(name, []).append((sc > sr) + 0.5 * (sc == sr))
    return {
        name: (
            float(np.mean(v)) if name == "alpagasus_chatgpt" else float(np.concatenate(v).mean()),
            [float(np.mean(x)) for x in v],
        )
        for name, v in per_fold.items()
    }


def longer_wins(folds, raters, n_folds: int) -> dict[str, float]:
    out = {}
    for source, fold in zip(data.PAIR_FILES, folds):
        p = data.pairs(source, "train")
        keep = fold < n_folds
        c, r = np.array([len(x) for x in p.chosen])[keep], np.array([len(x) for x in p.rejected])[keep]
        out[source] = run.pair_accuracy(c, r)
    rated = data.rated("train")
    lengths, labels = np.array([len(x) for x in rated.response], float), np.array(rated.label)
    out["alpagasus_chatgpt"] = float(
        np.mean(
            [
                run.auc(
                    lengths[(folds[-1] == k) & (raters != "claude")], labels[(folds[-1] == k) & (raters != "claude")]
                )
                for k in range(n_folds)
            ]
        )
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, default=5, choices=(1, 5), help="1: the validation split only")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--l2", type=float, default=1e-2)
    ap.add_argument("--dense-l2", type=float, default=1e-5)
    ap.add_argument("--harm-l2", type=float, default=3e-5)
    ap.add_argument("--gate-l2", type=float, default=1e-5)
    ap.add_argument("--extra-l2", type=float, default=1e-3)
    args = ap.parse_args()
    names = pick(args.variants, VARIANTS, "harmless_variants.py")
    loaded = {}
    print(f"{'variant':28s} {'source':18s} {'figure':>6s} {'longer':>6s}  per fold")
    for name in names:
        variant = VARIANTS[name]
        if variant.toxicity not in loaded:
            loaded[variant.toxicity] = load(variant.toxicity)
        parts, folds, raters = loaded[variant.toxicity]
        longer = longer_wins(folds, raters, args.folds)
        for source, (value, per) in measure(variant, parts, folds, raters, args.folds, args).items():
            print(
                f"{name:28s} {source:18s} {value:6.3f} {longer[source]:6.3f}  {' '.join(f'{x:.3f}' for x in per)}",
                flush=True,
            )


if __name__ == "__main__":
    main()
