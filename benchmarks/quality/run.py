"""Pairwise accuracy and AUC of the quality scorers on ../shared/data/quality's held-out split.

  PYTHONPATH=$PWD python benchmarks/quality/run.py [--model PATH]

Per source: how often the chosen response scores above the rejected one (ties count half), beside
chance (0.5) and "the longer response wins"; AlpaGasus: ROC AUC of LLM-rated >= 4.5 rows against the
random 9k. The 20% held out by benchmarks/quality/data.py (by instruction), never trained on; the
80% training split is shown too, to see over-fitting. Then rows/s on one core over Alpaca 52k's rows.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402

from curate.steps.quality_score import DEFAULT_MODEL, OfflineScorer  # noqa: E402


def pair_accuracy(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a > b) + 0.5 * (a == b)))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney U / (n_pos n_neg), ties counted half (average ranks)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    s = scores[order]
    # average rank over ties
    _, first, counts = np.unique(s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(scorer, split: str) -> list[tuple]:
    rows = []
    for source in data.PAIR_FILES:
        p = data.pairs(source, split)
        instr = pa.array(p.instruction, pa.string())
        sc = scorer.score(instr, pa.array(p.chosen, pa.string()))
        sr = scorer.score(instr, pa.array(p.rejected, pa.string()))
        longer = pair_accuracy(np.array([len(x) for x in p.chosen]), np.array([len(x) for x in p.rejected]))
        rows.append((source, len(p.chosen), "pairwise acc", pair_accuracy(sc, sr), 0.5, longer))
    r = data.rated(split)
    s = scorer.score(pa.array(r.instruction, pa.string()), pa.array(r.response, pa.string()))
    labels, raters = np.array(r.label), np.array(r.rater)
    lengths = np.array([len(x) for x in r.response], float)
    for rater in ("claude", "chatgpt", "any"):
        keep = (raters == "random") | ((raters == rater) if rater != "any" else True)
        rows.append(
            (
                f"alpagasus_{rater}",
                int(keep.sum()),
                "ROC AUC",
                auc(s[keep], labels[keep]),
                0.5,
                auc(lengths[keep], labels[keep]),
            )
        )
    return rows


def throughput(scorer, repeats: int = 3) -> tuple[int, float]:
    with gzip.open(data.DATA / "alpaca_davinci003_raw.jsonl.gz", "rt", encoding="utf-8") as f:
        recs = [json.loads(line) for line in f]
    instr = pa.array([data._alpaca_instruction(r) for r in recs], pa.string())
    resp = pa.array([r["output"] for r in recs], pa.string())
    scorer.score(instr[:10], resp[:10])  # compile / load
    best = min(_timed(scorer, instr, resp) for _ in range(repeats))
    return len(recs), len(recs) / best


def _timed(scorer, instr, resp) -> float:
    t0 = time.perf_counter()
    scorer.score(instr, resp)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    args = ap.parse_args()
    scorer = OfflineScorer(Path(args.model))
    print(f"offline quality model {Path(args.model).name}")
    print(f"{'source':22s} {'split':6s} {'n':>6s} {'metric':13s} {'curate':>7s} {'chance':>7s} {'longer':>7s}")
    for split in ("eval", "train"):
        for source, n, metric, value, chance, longer in evaluate(scorer, split):
            print(f"{source:22s} {split:6s} {n:6d} {metric:13s} {value:7.3f} {chance:7.3f} {longer:7.3f}")
    n, rate = throughput(scorer)
    print(f"\nthroughput: {n} Alpaca rows (instruction + response), one core: {rate:,.0f} rows/s")


if __name__ == "__main__":
    main()
