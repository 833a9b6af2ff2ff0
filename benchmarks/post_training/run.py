"""The reasoning, tool_calls and token_budget steps on ~100k rows built from the real records in
../shared/data/post_training, one core; and token_budget's chat-template count against its
character estimate (speed, and how often the two decide differently at a 4k budget).

    PYTHONPATH=$PWD python benchmarks/post_training/run.py [--rows 100000] [--template-rows 20000]

Rows: a third each of the reasoning set (traces inline, `<think>`), glaive and BFCL (see data.py),
cycled; each copy of a reasoning record has its traces and answers repeated k times (k = 1 for 70%,
else 2 / 3 / 4 / 6), glaive copies their final answer, so the lengths straddle 4k tokens. The rows
are written as JSONL and read through curate's readers in shards of 10,000 (what a worker gets);
each step's `process` is timed per shard with one thread (RAYON_NUM_THREADS=1, Arrow on one CPU).
No real model tokenizer ships offline, so the counts use a byte-level BPE tokenizer.json trained
here on these records (8k vocabulary) with both templates' control tokens added.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # tokenizers' encode_batch: one core

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import SETS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO.parent / "shared" / "data" / "chat_templates"
DEEPSEEK = TEMPLATES / "deepseek-r1-distill-qwen-32b.tokenizer_config.json"
NEMOTRON = TEMPLATES / "nvidia-nemotron-nano-v2.chat_template.jinja"
SPECIALS = [
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<｜tool▁calls▁begin｜>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁sep｜>",
    "<｜tool▁call▁end｜>",
    "<｜tool▁calls▁end｜>",
    "<｜tool▁outputs▁begin｜>",
    "<｜tool▁output▁begin｜>",
    "<｜tool▁output▁end｜>",
    "<｜tool▁outputs▁end｜>",
    "<SPECIAL_10>",
    "<SPECIAL_11>",
    "<SPECIAL_12>",
    "<think>",
    "</think>",
    "<TOOLCALL>",
    "</TOOLCALL>",
    "<TOOL_RESPONSE>",
    "</TOOL_RESPONSE>",
]


def varied(rec: dict, name: str, rng: random.Random) -> dict:
    k = 1 if rng.random() < 0.7 else rng.choice([2, 3, 4, 6])
    if k == 1 or name == "bfcl":
        return rec
    rec = json.loads(json.dumps(rec))
    if name == "reasoning":
        for m in rec["messages"]:
            if m["role"] == "assistant" and "</think>" in m["content"]:
                trace, answer = m["content"].split("</think>", 1)
                m["content"] = trace + ("\n" + trace.replace("<think>", "")) * (k - 1) + "</think>" + answer * k
    else:
        last = rec["conversations"][-1]
        last["value"] = "\n\n".join([last["value"]] * k)
    return rec


def corpus(n: int, path: Path) -> None:
    rng = random.Random(0)
    sets = {name: load() for name, load in SETS.items()}
    names = list(sets)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            name = names[i % 3]
            recs = sets[name]
            rec = varied(recs[(i // 3) % len(recs)], name, rng)
            f.write(json.dumps(dict(rec, id=f"{name}-{i}"), ensure_ascii=False) + "\n")


def tokenizer(path: Path, src: Path) -> Path:
    from curate.testing import byte_level_tokenizer

    with src.open(encoding="utf-8") as f:
        sample = [next(f) for _ in range(3000)]
    return byte_level_tokenizer(path, sample, 8000, SPECIALS)


def shards(path: Path, limit: int | None = None) -> list[pa.Table]:
    from curate.readers import plan, read_shard
    from curate.records import FieldNames

    out, rows = [], 0
    for shard in plan([str(path)], "auto", 10_000):
        table, _ = read_shard(shard, FieldNames())
        out.append(table)
        rows += table.num_rows
        if limit is not None and rows >= limit:
            break
    return out


def timed(step_name: str, params: dict, tables: list[pa.Table]) -> tuple[float, int, list[pa.Table]]:
    from curate.registry import get_step
    from curate.steps.base import StepContext, apply_map_step

    cls = get_step(step_name)
    step = cls(cls.Params(**params), StepContext(rules_dir=REPO / "curate" / "rules"))
    step.setup()
    seconds, rows, outs = 0.0, 0, []
    for t in tables:
        start = time.perf_counter()
        out, _ = apply_map_step(step, t)
        seconds += time.perf_counter() - start
        rows += t.num_rows
        outs.append(out)
    return seconds, rows, outs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument(
        "--template-rows", type=int, default=20_000, help="rows for the chat-template runs (Python per row)"
    )
    args = ap.parse_args()
    pa.set_cpu_count(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "rows.jsonl"
        corpus(args.rows, src)
        tok = tokenizer(tmp / "tokenizer.json", src)
        t0 = time.perf_counter()
        tables = shards(src)
        read_s = time.perf_counter() - t0
        mb = src.stat().st_size / 1e6
        print(f"{sum(t.num_rows for t in tables):,} rows, {mb:,.0f} MB of JSONL, read in {read_s:.1f} s\n")
        print("| step | params | rows | seconds | rows/s (one core) | rejected |")
        print("|---|---|---:|---:|---:|---:|")

        def line(name, params, label, tabs):
            s, n, outs = timed(name, params, tabs)
            rej = sum(o.column("_curate_drop_step").is_valid().to_numpy(zero_copy_only=False).sum() for o in outs)
            print(f"| {name} | {label} | {n:,} | {s:.2f} | {n / s:,.0f} | {rej:,} |")
            return outs

        split = line("reasoning", {}, "defaults", tables)
        line("tool_calls", {"open_end": "keep"}, "open_end: keep (BFCL items end on their call)", tables)
        est = line(
            "token_budget", {"max_total_tokens": 4096, "max_completion_tokens": None}, "estimate, 4k total", split
        )
        few = []
        rows = 0
        for t in split:
            if rows >= args.template_rows:
                break
            few.append(t.slice(0, min(t.num_rows, args.template_rows - rows)))
            rows += few[-1].num_rows
        runs = {}
        for label, template in (("DeepSeek-R1", DEEPSEEK), ("Nemotron v2", NEMOTRON)):
            for how, tok_path in (("tokenizer.json", str(tok)), ("estimate", None)):
                params = {
                    "chat_template": str(template),
                    "tokenizer": tok_path,
                    "max_total_tokens": 4096,
                    "max_completion_tokens": None,
                }
                runs[label, how] = line("token_budget", params, f"{label} template + {how}, 4k total", few)
        line(
            "token_budget",
            {"tokenizer": str(tok), "max_total_tokens": 4096, "max_completion_tokens": None},
            "per turn + tokenizer.json, 4k total",
            few,
        )

        def column(outs, name):
            return np.concatenate([o.column(name).to_numpy(zero_copy_only=False) for o in outs])

        n = sum(t.num_rows for t in few)
        per_turn_over = column(est, "_curate_drop_reason")[:n] == "over_total_tokens"
        per_turn_tokens = column(est, "tokens_total")[:n].astype(float)
        print("\nAt a 4k total budget, rows over it by each count, and rows decided differently from the count through")
        print("the template and tokenizer.json (the trainer's view), same rows:\n")
        print(
            "| template | rows | over 4k: template + tokenizer | template + estimate (differ) | per-turn estimate (differ) | per-turn estimate / template tokens (median) |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for label in ("DeepSeek-R1", "Nemotron v2"):
            truth = column(runs[label, "tokenizer.json"], "_curate_drop_reason") == "over_total_tokens"
            rendered_est = column(runs[label, "estimate"], "_curate_drop_reason") == "over_total_tokens"
            t_tokens = column(runs[label, "tokenizer.json"], "tokens_total").astype(float)
            ok = ~np.isnan(t_tokens) & ~np.isnan(per_turn_tokens)
            ratio = np.median(per_turn_tokens[ok] / np.maximum(t_tokens[ok], 1))
            d1, d2 = (rendered_est != truth), (per_turn_over != truth)
            print(
                f"| {label} | {n:,} | {truth.sum():,} | {rendered_est.sum():,} ({d1.sum():,}, {d1.mean():.2%}) | "
                f"{per_turn_over.sum():,} ({d2.sum():,}, {d2.mean():.2%}) | {ratio:.2f} |"
            )


if __name__ == "__main__":
    main()
