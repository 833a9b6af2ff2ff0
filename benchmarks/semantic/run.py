"""How well curate's embeddings tell paraphrases apart, and how fast, on ../shared/data/semantic.

  PYTHONPATH=$PWD python benchmarks/semantic/run.py

MRPC test (paraphrase label) and STS-B test (a pair is a duplicate when its score is >= 4): ROC AUC
of the cosine of each pair, for wordllama's plain mean embeddings (`WordLlama.embed`, normalised)
and for curate's embedder (the common direction removed), then precision / recall of "cosine >=
threshold" at semantic_dedup's default, and sentences/s on one core.
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

from curate.steps._embed import WordLlamaEmbedder, _wordllama  # noqa: E402
from curate.steps.semantic_dedup import SemanticDedupParams  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "semantic"


def load(name: str, a: str, b: str, label) -> tuple[list[str], list[str], np.ndarray]:
    with gzip.open(DATA / name, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [r[a] for r in rows], [r[b] for r in rows], np.array([label(r) for r in rows])


SETS = {
    "MRPC test": ("mrpc_msr_paraphrase_test.jsonl.gz", "string1", "string2", lambda r: int(r["quality"])),
    "STS-B test (>= 4)": ("stsb_sts_test.jsonl.gz", "sentence1", "sentence2", lambda r: int(r["score"] >= 4)),
}


def main() -> None:
    wl = _wordllama()
    default = SemanticDedupParams()
    ours = WordLlamaEmbedder(dim=default.dim)
    cuts = (0.8, 0.85, default.threshold)
    print(
        f"{'set':18s} {'pairs':>5s} {'dup':>4s} {'AUC plain':>9s} {'AUC curate':>10s} "
        + " ".join(f"{'P/R@' + str(t):>11s}" for t in cuts)
    )
    for name, spec in SETS.items():
        s1, s2, y = load(*spec)
        plain = (wl.embed(s1, norm=True) * wl.embed(s2, norm=True)).sum(1)
        ea, eb = ours.embed(pa.array(s1)), ours.embed(pa.array(s2))
        cos = (ea * eb).sum(1)
        pr = []
        for t in cuts:
            pred = cos >= t
            pr.append(
                f"{(pred & (y == 1)).sum() / max(1, pred.sum()):.2f}/{(pred & (y == 1)).sum() / max(1, (y == 1).sum()):.2f}"
            )
        print(
            f"{name:18s} {len(y):5d} {int(y.sum()):4d} {auc(plain, y):9.3f} {auc(cos, y):10.3f} "
            + " ".join(f"{x:>11s}" for x in pr)
        )
    s1, s2, _ = load(*SETS["STS-B test (>= 4)"])
    texts = pa.array((s1 + s2) * 10)
    ours.embed(texts[:100])
    t0 = time.perf_counter()
    ours.embed(texts)
    rate = len(texts) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    wl.embed(texts.to_pylist())
    rate_wl = len(texts) / (time.perf_counter() - t0)
    print(f"\nembedding speed, one core, STS-B sentences: curate {rate:,.0f}/s, WordLlama.embed {rate_wl:,.0f}/s")


if __name__ == "__main__":
    main()
