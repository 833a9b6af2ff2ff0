"""How well semantic_dedup's duplicate score tells paraphrases apart, and how fast it embeds, on
../shared/data/semantic.

  PYTHONPATH=$PWD python benchmarks/semantic/run.py

A pair is a duplicate by its MRPC paraphrase label, or when its STS-B score is >= 4. The score is
the step's own (`SemanticDedup.features` + `pair_scores`: int8 embeddings, one-byte word MinHash):
(1 - lexical_weight) cosine + lexical_weight word Jaccard.

1. Validation (MRPC train, STS-B train): ROC AUC per lexical_weight; the default is the weight with
   the best mean AUC. The default threshold is the lowest whose precision on the pooled validation
   pairs is at least that of "cosine >= 0.9" (the previous default), so recall is gained at the same
   precision.
2. Test (MRPC test, STS-B test): ROC AUC of wordllama's plain mean embeddings (`WordLlama.embed`),
   of the step's cosine alone and of its default score; precision / recall at the default threshold,
   beside the previous default.
3. Embedding speed, one process.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks" / "quality"))
from run import auc  # noqa: E402

from curate.steps._embed import _wordllama  # noqa: E402
from curate.steps.base import StepContext  # noqa: E402
from curate.steps.semantic_dedup import SemanticDedup, pair_scores  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "semantic"
MRPC = ("string1", "string2", lambda r: int(r["quality"]))
STSB = ("sentence1", "sentence2", lambda r: int(r["score"] >= 4))
VALIDATION = {
    "MRPC train": ("mrpc_msr_paraphrase_train.jsonl.gz", *MRPC),
    "STS-B train": ("stsb_sts_train.jsonl.gz", *STSB),
}
TEST = {"MRPC test": ("mrpc_msr_paraphrase_test.jsonl.gz", *MRPC), "STS-B test": ("stsb_sts_test.jsonl.gz", *STSB)}
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
OLD_DEFAULT = 0.9  # cosine alone


def load(name: str, a: str, b: str, label) -> tuple[list[str], list[str], np.ndarray]:
    with gzip.open(DATA / name, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [r[a] for r in rows], [r[b] for r in rows], np.array([label(r) for r in rows])


class Pairs:
    """One set's pairs through the step's features: score(w) for any lexical weight."""

    def __init__(self, step: SemanticDedup, spec):
        s1, s2, self.y = load(*spec)
        self.s1, self.s2 = s1, s2
        n = len(s1)
        _, emb, sketch = step.features(pa.array(s1 + s2))
        self.emb, self.sketch, self.idx = emb, sketch, np.arange(n)

    def score(self, w: float) -> np.ndarray:
        n = len(self.idx)
        return pair_scores(self.emb, self.sketch, self.idx, self.idx + n, w)


def pr(score: np.ndarray, y: np.ndarray, t: float) -> tuple[float, float]:
    pred = score >= t
    tp = (pred & (y == 1)).sum()
    return tp / max(1, pred.sum()), tp / max(1, (y == 1).sum())


def main() -> None:
    step = SemanticDedup(SemanticDedup.Params(), StepContext(rules_dir=REPO / "curate" / "rules"))
    default = step.params
    val = {name: Pairs(step, spec) for name, spec in VALIDATION.items()}

    print("1. validation: ROC AUC of the duplicate score per lexical_weight")
    print(f"{'lexical_weight':>14s} " + " ".join(f"{n:>12s}" for n in val) + f" {'mean':>6s}")
    best = (-1.0, None)
    for w in WEIGHTS:
        aucs = [auc(v.score(w), v.y) for v in val.values()]
        best = max(best, (float(np.mean(aucs)), w))
        print(f"{w:14.1f} " + " ".join(f"{a:12.3f}" for a in aucs) + f" {np.mean(aucs):6.3f}")
    print(f"best mean AUC at lexical_weight {best[1]} (default {default.lexical_weight})")

    y = np.concatenate([v.y for v in val.values()])
    cos = np.concatenate([v.score(0.0) for v in val.values()])
    target = pr(cos, y, OLD_DEFAULT)[0]
    score = np.concatenate([v.score(default.lexical_weight) for v in val.values()])
    grid = np.round(np.arange(0.70, 0.951, 0.01), 2)
    chosen = next(t for t in grid if pr(score, y, t)[0] >= target)
    print(
        f"pooled validation: cosine >= {OLD_DEFAULT}: P/R {target:.3f}/{pr(cos, y, OLD_DEFAULT)[1]:.3f}; "
        f"lowest threshold with P >= {target:.3f}: {chosen} (P/R {pr(score, y, chosen)[0]:.3f}/"
        f"{pr(score, y, chosen)[1]:.3f}); default threshold {default.threshold}"
    )

    print("\n2. test: ROC AUC, and P/R of the decision")
    head = f"P/R score>={default.threshold}"
    print(
        f"{'set':11s} {'pairs':>5s} {'dup':>4s} {'wordllama':>9s} {'cosine':>7s} {'score':>6s} "
        f"{'P/R cos>=' + str(OLD_DEFAULT):>14s} {head:>17s}"
    )
    wl = _wordllama()
    for name, spec in TEST.items():
        v = Pairs(step, spec)
        plain = (wl.embed(v.s1, norm=True) * wl.embed(v.s2, norm=True)).sum(1)
        cos, score = v.score(0.0), v.score(default.lexical_weight)
        old, new = pr(cos, v.y, OLD_DEFAULT), pr(score, v.y, default.threshold)
        print(
            f"{name:11s} {len(v.y):5d} {int(v.y.sum()):4d} {auc(plain, v.y):9.3f} {auc(cos, v.y):7.3f} "
            f"{auc(score, v.y):6.3f} {old[0]:9.2f}/{old[1]:.2f} {new[0]:12.2f}/{new[1]:.2f}"
        )

    s1, s2, _ = load(*TEST["STS-B test"])
    texts = pa.array((s1 + s2) * 10)
    step.features(texts[:100])
    t0 = time.perf_counter()
    step.embedder.embed(texts)
    rate = len(texts) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    step.features(texts)
    rate_all = len(texts) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    wl.embed(texts.to_pylist())
    rate_wl = len(texts) / (time.perf_counter() - t0)
    print(
        f"\n3. speed, STS-B sentences, one process: curate embedding {rate:,.0f}/s, embedding + word sketch "
        f"{rate_all:,.0f}/s, WordLlama.embed {rate_wl:,.0f}/s"
    )


if __name__ == "__main__":
    main()
