"""Train the offline toxicity model shipped as curate/models/toxicity_fasttext.ftz, and evaluate it.

  python benchmarks/toxicity/train_offline.py [--out curate/models]

Training data (MIT): Davidson et al. tweets (hate speech or offensive = toxic), ToxiGen human-written
hate/neutral sentences; plus clean chat turns as negatives (Apache-2.0: OASST, Self-Instruct seed
tasks, FastChat dummy conversations, LLaMA-Factory's glaive tool-call and DPO demo files; MIT: the
assistant turns of HH-RLHF harmless-base's preferred replies), so the model knows what ordinary instruction data looks like.
A deterministic 80/20 split by hash of the text; the 20% is held out, and Wikipedia talk-page
comments (never trained on) are an out-of-domain test. Prints precision/recall/F1 per test set.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import json
import sys
import tempfile
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from curate.steps._toxicity_text import prepare  # noqa: E402

DATA = REPO.parent / "shared" / "data"


THRESHOLD = 0.9  # the default in rules/toxicity.yaml


def held_out(text: str) -> bool:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 5 == 0


def datasets() -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {}
    with open(DATA / "toxicity" / "davidson_hate_offensive_labeled.csv", newline="", encoding="utf-8") as f:
        out["davidson"] = [(html.unescape(r["tweet"]), int(r["class"] in ("0", "1"))) for r in csv.DictReader(f)]
    out["toxigen"] = [(r["text"], int(r["label"] == "hate")) for r in map(json.loads, (DATA / "toxicity" / "toxigen_demonstrations.jsonl").read_text().splitlines())]
    clean = []
    for line in (DATA / "instructions" / "oasst_en_100_trees.jsonl").read_text().splitlines():
        stack = [json.loads(line)["prompt"]]
        while stack:
            m = stack.pop()
            clean.append(m["text"])
            stack += m.get("replies", [])
    clean += [json.loads(x)["instruction"] for x in (DATA / "instructions" / "self_instruct_seed_tasks.jsonl").read_text().splitlines()]
    clean += [t["value"] for r in json.loads((DATA / "instructions" / "sharegpt_fastchat_dummy_conversation.json").read_text()) for t in r["conversations"]]
    for name in ("sharegpt_llamafactory_glaive_toolcall_en_demo.json", "sharegpt_llamafactory_dpo_en_demo.json"):
        for r in json.loads((DATA / "instructions" / name).read_text()):
            clean += [t["value"] for t in r["conversations"] if isinstance(t.get("value"), str)]
    # HH-RLHF harmless-base (MIT): the assistant turns of the preferred replies, short and informal
    import gzip
    import re

    with gzip.open(DATA / "instructions" / "hh_rlhf_harmless_base_test.jsonl.gz", "rt") as f:
        for line in f:
            for turn in re.split(r"\n\n(?=Human:|Assistant:)", json.loads(line)["chosen"]):
                if turn.startswith("Assistant:"):
                    clean.append(turn.removeprefix("Assistant:").strip())
    out["chat_clean"] = [(t, 0) for t in clean if t.strip()]
    # Real ShareGPT turns (the data curate cleans), split by conversation: without them the tweets'
    # prior (77% of Davidson is offensive) called short chat turns ("Yo.", "still same error") toxic.
    sharegpt = json.loads((DATA / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())
    out["sharegpt"] = [(t["value"], 0) for r in sharegpt if not held_out(r["id"]) for t in r["conversations"] if t["value"].strip()]
    with open(DATA / "toxicity" / "wikipedia_toxicity_nonfuzzed_testset.csv", newline="", encoding="utf-8") as f:
        out["wikipedia"] = [(r["comment"], int(r["toxic"] == "True")) for r in csv.DictReader(f)]
    return out


def scores(pred: list[int], gold: list[int]) -> tuple[float, float, float]:
    tp = sum(p and g for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    fn = sum(g and not p for p, g in zip(pred, gold))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return prec, rec, 2 * prec * rec / (prec + rec) if prec + rec else 0.0


def main() -> None:
    import fasttext

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=REPO / "curate" / "models")
    args = ap.parse_args()
    data = datasets()
    train, tests = [], {}
    for name, rows in data.items():
        if name == "wikipedia":
            tests[name] = rows
            continue
        if name == "sharegpt":  # split by conversation above: all of these are training rows
            train += rows
            continue
        tests[name] = [r for r in rows if held_out(r[0])]
        train += [r for r in rows if not held_out(r[0])]
    # repeat the small sources so the tweets do not drown them
    small = set(data["toxigen"]) | set(data["chat_clean"]) | set(data["sharegpt"])
    train = train + [r for r in train if r in small] * 3
    prepared = prepare(pa.array([t for t, _ in train])).to_pylist()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for text, (_, label) in zip(prepared, train):
            f.write(f"__label__{'toxic' if label else 'clean'} {text}\n")
    # thread >= 11: fastText's train_supervised can fail with "Encountered NaN" below 10 (issue #1061)
    model = fasttext.train_supervised(f.name, lr=0.5, epoch=25, wordNgrams=2, dim=50, minCount=2, loss="softmax", seed=1, thread=12, verbose=0)
    model.quantize(input=f.name, qnorm=True, retrain=True, cutoff=100000, thread=12, verbose=0)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_model(str(args.out / "toxicity_fasttext.ftz"))
    print(f"trained on {len(train):,} texts; model {(args.out / 'toxicity_fasttext.ftz').stat().st_size / 1e6:.2f} MB\n")
    # clean ShareGPT turns the model never saw: the false-positive rate where curate is used
    sharegpt = [t["value"] for r in json.loads((DATA / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())
                if held_out(r["id"]) for t in r["conversations"]]
    tests["sharegpt turns of held-out conversations (no labels; flagged = likely false positives)"] = [(t, 0) for t in sharegpt]
    print("| held-out set | rows | toxic | flagged | precision | recall | F1 |\n|---|---|---|---|---|---|---|")
    for name, rows in tests.items():
        texts = prepare(pa.array([t for t, _ in rows])).to_pylist()
        labels, probs = model.predict(texts)
        pred = [int(lab[0] == "__label__toxic" and p[0] >= THRESHOLD) for lab, p in zip(labels, probs)]
        prec, rec, f1 = scores(pred, [g for _, g in rows])
        flagged = sum(pred)
        where = ' (out of domain, never trained on)' if name == 'wikipedia' else '' if name.startswith('sharegpt') else ' (20% held out)'
        print(f"| {name}{where} | {len(rows):,} | "
              f"{sum(g for _, g in rows):,} | {flagged:,} | {prec:.3f} | {rec:.3f} | {f1:.3f} |")


if __name__ == "__main__":
    main()
