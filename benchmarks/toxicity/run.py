"""Toxicity: the offline model against the one it replaced, the word list, and the speed of every path.

  python benchmarks/toxicity/run.py [--detoxify-texts 256] [--skip-detoxify]

1. Per source, on its test split (split 0 of benchmarks/toxicity/sources.py: never trained on by
   either model, never used to choose a threshold): F1, precision, recall of the shipped fasttext
   model (through the step: calibrated score, rules/toxicity.yaml threshold), of the previous model
   (git PREVIOUS, raw score, its threshold 0.9, its text preparation) and of the word list; the share
   of held-out clean conversations (ShareGPT, OpenAI-messages, Alpaca files of shared/data/instructions,
   read by curate's reader) each flags; texts/s on one core.
2. detoxify "original" architecture (bert-base-uncased config, random weights, built locally: no
   download) through curate's step (sorted, batched, windows) at each precision against a naive
   loop calling Detoxify.predict on one text at a time, on the same texts and thread count.
   benchmarks/toxicity/precision.py measures what bf16 and int8 change in the scores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from curate.steps._fasttext import open_predictor  # noqa: E402
from curate.steps._toxicity_text import prepare, toxic_probability  # noqa: E402
from curate.steps.base import StepContext  # noqa: E402
from curate.steps.toxicity import Toxicity, ToxicityParams  # noqa: E402
from tests.helpers import rows_table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precision import random_bert_base  # noqa: E402
from sources import chat_key, chat_tables, held_out, labelled  # noqa: E402

PREVIOUS = "b1d2234"  # the last commit that shipped the tweet-trained model (threshold 0.9)


def held_out_sets() -> dict[str, list[tuple[str, bool]]]:
    return {name: [(t, bool(y)) for t, y in rows if held_out(t)] for name, rows in labelled().items()}


def held_out_chats() -> dict[str, pa.Table]:
    out = {}
    for name, table in chat_tables().items():
        keep = np.array([held_out(k) for k in chat_key(name, table)])
        out[name] = table.filter(pa.array(keep))
    return out


class _Previous:
    """The model curate shipped before, scored as it was: its own text preparation, raw softmax."""

    name = "fasttext (previous)"

    def __init__(self, path: Path):
        self.model = open_predictor(path)

    def score(self, texts: pa.Array) -> dict[str, np.ndarray]:
        return {"toxicity": toxic_probability(self.model, prepare(texts).to_pylist()).astype(np.float32)}


def steps(tmp: Path) -> dict[str, Toxicity]:
    ctx = StepContext(rules_dir=REPO / "curate" / "rules")
    out = {"fasttext (shipped)": Toxicity(ToxicityParams(backend="fasttext"), ctx)}
    old = tmp / "previous.ftz"
    old.write_bytes(
        subprocess.run(
            ["git", "-C", str(REPO), "show", f"{PREVIOUS}:curate/models/toxicity_fasttext.ftz"],
            check=True,
            capture_output=True,
        ).stdout
    )
    previous = Toxicity(ToxicityParams(backend="fasttext", thresholds={"toxicity": 0.9}), ctx)
    previous.backend = _Previous(old)
    out["fasttext (previous, 0.9)"] = previous
    out["wordlist"] = Toxicity(ToxicityParams(backend="wordlist"), ctx)
    for s in out.values():
        s.setup()
    return out


def offline_table() -> None:
    sets, chats = held_out_sets(), held_out_chats()
    with tempfile.TemporaryDirectory() as tmp:
        backends = steps(Path(tmp))
        print(
            "| model | test split | rows | toxic | precision | recall | F1 | texts per CPU second |\n|---|---|---|---|---|---|---|---|"
        )
        summary = {}
        for label, s in backends.items():
            f1s = []
            for name, rows in sets.items():
                texts = pa.array([t for t, _ in rows])
                start = time.process_time()  # CPU seconds: a per-core rate that a loaded machine does not halve
                scores = s.backend.score(texts)["toxicity"]
                rate = len(rows) / max(time.process_time() - start, 1e-9)
                pred, gold = scores >= s.thresholds()["toxicity"], np.array([g for _, g in rows])
                tp = int((pred & gold).sum())
                prec, rec = tp / max(int(pred.sum()), 1), tp / max(int(gold.sum()), 1)
                f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
                f1s.append(f1)
                print(
                    f"| {label} | {name} | {len(rows):,} | {int(gold.sum())} | {prec:.3f} | {rec:.3f} | {f1:.3f} | {rate:,.0f} |"
                )
            flagged = {name: int(sum(r is not None for r in s.process(t).reason)) for name, t in chats.items()}
            summary[label] = (np.mean(f1s), min(f1s), flagged, speed(s, sets, chats))
        n = sum(t.num_rows for t in chats.values())
        print(
            f"\n| model | mean F1 (3 sources) | lowest F1 | clean conversations flagged (of {n} held out) | texts per CPU second, all test texts, best of 3 |\n|---|---|---|---|---|"
        )
        for label, (mean, low, flagged, rate) in summary.items():
            total = sum(flagged.values())
            where = ", ".join(f"{k.split('.')[0]} {v}" for k, v in flagged.items() if v)
            print(
                f"| {label} | {mean:.3f} | {low:.3f} | {total} ({total / n:.2%}){': ' + where if where else ''} | {rate:,.0f} |"
            )


def speed(s: Toxicity, sets: dict, chats: dict) -> float:
    """Texts per CPU second over every test text and held-out chat turn (the backend alone)."""
    from curate.schema import turns_of

    texts = pa.array(
        [t for rows in sets.values() for t, _ in rows]
        + [x for t in chats.values() for x in turns_of(t).text.to_pylist()]
    )
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        s.backend.score(texts)
        best = min(best, time.process_time() - start)
    return len(texts) / best


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
    for label, kw in (
        (f"curate toxicity step, default (precision auto = {auto} on this CPU)", {}),
        ("curate toxicity step, fp32 (sorted, batch 8, 256-token windows)", {"precision": "fp32"}),
        ("curate toxicity step, bf16 matrix products (autocast)", {"precision": "bf16"}),
        ("curate toxicity step, int8 dynamic quantisation", {"precision": "int8"}),
    ):
        s = Toxicity(
            ToxicityParams(checkpoint=str(ckpt), hf_config=str(ckpt.parent), **kw),
            StepContext(rules_dir=REPO / "curate" / "rules"),
        )
        s.setup()
        table = rows_table([[("user", t)] for t in texts])
        start = time.perf_counter()
        s.process(table)
        rate = len(texts) / (time.perf_counter() - start)
        print(f"| {label} | {rate:.1f} | {rate / naive_rate:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detoxify-texts", type=int, default=256)
    ap.add_argument("--skip-detoxify", action="store_true")
    args = ap.parse_args()
    offline_table()
    if not args.skip_detoxify:
        detoxify_table(args.detoxify_texts)


if __name__ == "__main__":
    main()
