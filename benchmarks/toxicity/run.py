"""Toxicity: quality of the offline backends on held-out labelled rows, and speed of every path.

  python benchmarks/toxicity/run.py [--detoxify-texts 256]

1. fasttext (shipped model) and wordlist (LDNOOBW): precision / recall / F1 on rows never trained on
   (Davidson 20% held out, ToxiGen 20% held out, Wikipedia talk comments), texts/s on one core.
2. detoxify "original" architecture (bert-base-uncased config, random weights, built locally: no
   download) through curate's step (sorted, batched, windows) at each precision against a naive
   loop calling Detoxify.predict on one text at a time, on the same texts and thread count.
   benchmarks/toxicity/precision.py measures what bf16 and int8 change in the scores.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from curate.steps.base import StepContext  # noqa: E402
from curate.steps.toxicity import Toxicity, ToxicityParams  # noqa: E402
from tests.helpers import rows_table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precision import random_bert_base  # noqa: E402
from train_offline import held_out  # noqa: E402

TOX = REPO.parent / "shared" / "data" / "toxicity"


def held_out_sets() -> dict[str, list[tuple[str, bool]]]:
    with open(TOX / "davidson_hate_offensive_labeled.csv", newline="") as f:
        dav = [(html.unescape(r["tweet"]), r["class"] in ("0", "1")) for r in csv.DictReader(f)]
    tg = [(r["text"], r["label"] == "hate") for r in map(json.loads, (TOX / "toxigen_demonstrations.jsonl").read_text().splitlines())]
    with open(TOX / "wikipedia_toxicity_nonfuzzed_testset.csv", newline="") as f:
        wiki = [(r["comment"], r["toxic"] == "True") for r in csv.DictReader(f)]
    return {"davidson (held out)": [r for r in dav if held_out(r[0])], "toxigen (held out)": [r for r in tg if held_out(r[0])],
            "wikipedia (never trained on)": wiki}


def offline_table() -> None:
    print("| backend | test set | rows | precision | recall | F1 | texts/s (one core) |\n|---|---|---|---|---|---|---|")
    for backend in ("fasttext", "wordlist"):
        s = Toxicity(ToxicityParams(backend=backend), StepContext(rules_dir=REPO / "curate" / "rules"))
        s.setup()
        for name, rows in held_out_sets().items():
            texts = pa.array([t for t, _ in rows])
            start = time.perf_counter()
            scores = s.backend.score(texts)["toxicity"]
            rate = len(rows) / (time.perf_counter() - start)
            pred = scores >= s.thresholds()["toxicity"]
            gold = [g for _, g in rows]
            tp = sum(p and g for p, g in zip(pred, gold))
            prec, rec = tp / max(pred.sum(), 1), tp / max(sum(gold), 1)
            f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0
            print(f"| {backend} | {name} | {len(rows):,} | {prec:.3f} | {rec:.3f} | {f1:.3f} | {rate:,.0f} |")


def detoxify_table(n: int) -> None:
    import torch
    from detoxify import Detoxify

    texts = [t for rows in held_out_sets().values() for t, _ in rows][:n]
    ckpt = random_bert_base(Path(tempfile.mkdtemp()), texts)
    torch.set_num_threads(1)
    naive = Detoxify(checkpoint=str(ckpt), huggingface_config_path=str(ckpt.parent))
    start = time.perf_counter()
    for t in texts:
        naive.predict(t)
    naive_rate = len(texts) / (time.perf_counter() - start)
    print(f"\ndetoxify 'original' architecture (BERT-base, random weights), {len(texts)} texts, 1 torch thread\n")
    print("| path | texts/s | x naive |\n|---|---|---|")
    print(f"| naive loop: Detoxify.predict(text) per text | {naive_rate:.1f} | 1.0 |")
    from curate.steps.toxicity import native_bf16

    auto = "bf16" if native_bf16() else "fp32"
    for label, kw in ((f"curate toxicity step, default (precision auto = {auto} on this CPU)", {}),
                      ("curate toxicity step, fp32 (sorted, batch 8, 256-token windows)", {"precision": "fp32"}),
                      ("curate toxicity step, bf16 matrix products (autocast)", {"precision": "bf16"}),
                      ("curate toxicity step, int8 dynamic quantisation", {"precision": "int8"})):
        s = Toxicity(ToxicityParams(checkpoint=str(ckpt), hf_config=str(ckpt.parent), **kw), StepContext(rules_dir=REPO / "curate" / "rules"))
        s.setup()
        table = rows_table([[("user", t)] for t in texts])
        start = time.perf_counter()
        s.process(table)
        rate = len(texts) / (time.perf_counter() - start)
        print(f"| {label} | {rate:.1f} | {rate / naive_rate:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detoxify-texts", type=int, default=256)
    args = ap.parse_args()
    offline_table()
    detoxify_table(args.detoxify_texts)


if __name__ == "__main__":
    main()
