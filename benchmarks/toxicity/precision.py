"""What bf16 and int8 change in detoxify's decisions, measured on a trained classifier.

  python benchmarks/toxicity/precision.py [--layers 4] [--hidden 256] [--epochs 1]

Real detoxify weights cannot be downloaded here, and a randomly initialised model says nothing about
decisions (its scores sit near 0.5). So this script trains a small BERT (same architecture family,
fewer layers) on the Davidson tweets that train_offline.py trains on (the 80% split), saves it in
detoxify's checkpoint format, and scores the held-out 20% through curate's toxicity step at fp32,
bf16 and int8: how many decisions flip at the default threshold, the largest score change, speed.
A second table repeats the numeric comparison (no decisions) on BERT-base with random weights,
the size of detoxify `original`, where rounding errors have 12 layers to grow through.
"""

from __future__ import annotations

import argparse
import collections
import csv
import html
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from curate.steps.base import StepContext  # noqa: E402
from curate.steps.toxicity import Toxicity, ToxicityParams  # noqa: E402
from curate.testing import save_detoxify_checkpoint  # noqa: E402
from tests.helpers import rows_table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sources import held_out  # noqa: E402  (the split the shipped model is tested on)

DATA = REPO.parent / "shared" / "data" / "toxicity"
CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def davidson() -> tuple[list[tuple[str, list[int]]], list[tuple[str, list[int]]]]:
    """(train, held out): labels toxic = hate or offensive, identity_hate = hate, insult = offensive."""
    with open(DATA / "davidson_hate_offensive_labeled.csv", newline="", encoding="utf-8") as f:
        rows = [(html.unescape(r["tweet"]), int(r["class"])) for r in csv.DictReader(f)]
    train, test = [], []
    for text, c in rows:
        labels = [int(c in (0, 1)), 0, 0, 0, int(c == 1), int(c == 0)]
        (test if held_out(text) else train).append((text, labels))
    return train, test


def train(args, d: Path) -> Path:
    import torch
    import transformers

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    train_rows, _ = davidson()
    # BERT's basic tokenisation: lower case, words and single punctuation marks
    counts = collections.Counter(w for t, _ in train_rows for w in re.findall(r"\w+|[^\w\s]", t.lower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w, _ in counts.most_common(args.vocab)]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = transformers.BertTokenizer(str(d / "vocab.txt"))
    cfg = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        intermediate_size=4 * args.hidden,
        max_position_embeddings=512,
        num_labels=len(CLASSES),
        problem_type="multi_label_classification",
    )
    model = transformers.BertForSequenceClassification(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    # warm-up: a BERT trained from scratch without it collapses to one constant score
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 200))
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = rng.permutation(len(train_rows))
        for b in range(0, len(order), 32):
            batch = [train_rows[i] for i in order[b : b + 32]]
            enc = tok([t for t, _ in batch], truncation=True, max_length=64, padding=True, return_tensors="pt")
            loss = model(**enc, labels=torch.tensor([lab for _, lab in batch], dtype=torch.float32)).loss
            loss.backward()
            opt.step()
            warm.step()
            opt.zero_grad()
        print(
            f"epoch {epoch + 1}: last batch loss {loss.item():.3f}, {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
    model.eval()
    _, test = davidson()
    with torch.inference_mode():
        enc = tok([t for t, _ in test[:500]], truncation=True, max_length=64, padding=True, return_tensors="pt")
        probs = torch.sigmoid(model(**enc).logits[:, 0]).numpy()
    gold = np.array([lab[0] for _, lab in test[:500]])
    print(
        f"in training: accuracy {((probs >= 0.5) == gold).mean():.3f} on 500 held out, score quartiles "
        f"{np.percentile(probs, [25, 50, 75]).round(3)}",
        file=sys.stderr,
    )
    return save_detoxify_checkpoint(model, tok, d, CLASSES)


def random_bert_base(d: Path, texts: list[str]) -> Path:
    import torch
    import transformers

    words = sorted({w for t in texts for w in t.lower().split()})[:30000]
    (d / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n", encoding="utf-8"
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(
        transformers.BertConfig(vocab_size=len(words) + 5, num_labels=len(CLASSES))
    )
    return save_detoxify_checkpoint(model, transformers.BertTokenizer(str(d / "vocab.txt")), d, CLASSES)


def score(ckpt: Path, texts: list[str], precision: str) -> tuple[np.ndarray, float]:
    s = Toxicity(
        ToxicityParams(checkpoint=str(ckpt), hf_config=str(ckpt.parent), precision=precision, mode="flag"),
        StepContext(rules_dir=REPO / "curate" / "rules"),
    )
    s.setup()
    table = rows_table([[("user", t)] for t in texts])
    start = time.perf_counter()
    out = s.process(table).table
    rate = len(texts) / (time.perf_counter() - start)
    return out.column("tox_toxicity").to_numpy(), rate


def compare(ckpt: Path, texts: list[str], gold: np.ndarray | None, threshold: float) -> None:
    base, base_rate = score(ckpt, texts, "fp32")
    for precision in ("fp32", "bf16", "int8"):
        s, rate = (base, base_rate) if precision == "fp32" else score(ckpt, texts, precision)
        flips = int(((s >= threshold) != (base >= threshold)).sum())
        quality = ""
        if gold is not None:
            pred = s >= threshold
            tp = int((pred & gold).sum())
            p, r = tp / max(int(pred.sum()), 1), tp / max(int(gold.sum()), 1)
            quality = f" {p:.4f} | {r:.4f} |"
        print(
            f"| {precision} | {flips} of {len(texts)} | {np.abs(s - base).max():.4f} | {np.abs(s - base).mean():.5f} |{quality} {rate:.1f} | {rate / base_rate:.1f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=20000)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training (scoring uses the step's 1)")
    ap.add_argument("--base-texts", type=int, default=256, help="texts for the BERT-base comparison")
    args = ap.parse_args()
    threshold = 0.5  # rules/toxicity.yaml's detoxify default
    _, test = davidson()
    texts, gold = [t for t, _ in test], np.array([lab[0] == 1 for _, lab in test])
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = train(args, Path(tmp))
        print(
            f"\nTrained BERT ({args.layers} layers, hidden {args.hidden}) on Davidson's 80%; "
            f"{len(texts):,} held-out tweets, threshold {threshold}, one torch thread\n"
        )
        print(
            "| precision | decisions changed vs fp32 | max abs score change | mean abs change | precision (task) | recall (task) | texts/s | x fp32 |"
        )
        print("|---|---|---|---|---|---|---|---|")
        compare(ckpt, texts, gold, threshold)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = random_bert_base(Path(tmp), texts)
        print(
            f"\nBERT-base (detoxify `original` size), random weights, {args.base_texts} held-out tweets: "
            "score changes only (random weights make no decisions worth counting)\n"
        )
        print("| precision | decisions changed vs fp32 | max abs score change | mean abs change | texts/s | x fp32 |")
        print("|---|---|---|---|---|---|")
        compare(ckpt, texts[: args.base_texts], None, threshold)


if __name__ == "__main__":
    main()
