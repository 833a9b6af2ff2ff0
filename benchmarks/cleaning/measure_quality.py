"""What `language` and `quality_heuristics` do to the real instruction files in ../shared/data.

    python benchmarks/cleaning/measure_quality.py [--examples N]

Prints
  1. language accuracy on rows whose language is known (OASST messages carry a `lang` label; Stack
     Exchange coffee posts and Alpaca are English), and the language mix of the Arena file (many
     languages, unlabelled: it prints rows to check by hand);
  2. for each instruction file, how many rows each quality heuristic would drop (each rule alone,
     on the rows that reach it, so the counts are not masked by earlier rules), plus the rows the
     whole step drops with its defaults.

Files the readers understand (ShareGPT, OpenAI messages, Alpaca) go through curate.readers.plan /
read_shard. Three shared files have layouts the readers do not read, and are converted here:
OASST trees (first reply at each level), HH-RLHF transcripts ("Human:"/"Assistant:" blocks, the
`chosen` side) and Self-Instruct seed tasks (instruction + first instance).
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from curate.readers import plan, read_shard, row_key, rows_to_table
from curate.records import FieldNames
from curate.steps.base import StepContext, apply_map_step
from curate.steps.language import Language, LanguageParams
from curate.steps.quality_heuristics import RULES, QualityHeuristics, QualityParams

DATA = REPO.parent / "shared" / "data"
INSTRUCTIONS = DATA / "instructions"
CTX = StepContext(rules_dir=REPO / "curate" / "rules")


def _table(convs: list[list[tuple[str, str]]], source: str) -> pa.Table:
    rows = [
        {
            "id": f"{source}:{i}",
            "conversations": [{"role": r, "text": t, "original_role": r, "extra": None} for r, t in conv],
            "source_file": source,
            "source_index": i,
            "extra": None,
            "_curate_key": row_key(0, i),
        }
        for i, conv in enumerate(convs)
    ]
    return rows_to_table(rows)


def oasst_messages() -> tuple[pa.Table, list[str]]:
    """Every OASST message as a one-turn row, with its labelled language."""
    convs, langs = [], []

    def walk(m):
        convs.append([("user" if m["role"] == "prompter" else "assistant", m["text"])])
        langs.append(m.get("lang"))
        for r in m.get("replies", []):
            walk(r)

    for line in (INSTRUCTIONS / "oasst_en_100_trees.jsonl").open():
        walk(json.loads(line)["prompt"])
    return _table(convs, "oasst_messages"), langs


def oasst_threads() -> pa.Table:
    convs = []
    for line in (INSTRUCTIONS / "oasst_en_100_trees.jsonl").open():
        m, conv = json.loads(line)["prompt"], []
        while m:
            conv.append(("user" if m["role"] == "prompter" else "assistant", m["text"]))
            m = (m.get("replies") or [None])[0]
        convs.append(conv)
    return _table(convs, "oasst_en_100_trees.jsonl")


def hh_rlhf() -> pa.Table:
    convs = []
    with gzip.open(INSTRUCTIONS / "hh_rlhf_harmless_base_test.jsonl.gz", "rt") as f:
        for line in f:
            parts = re.split(r"\n\n(Human|Assistant): ", "\n\n" + json.loads(line)["chosen"].lstrip("\n"))
            convs.append(
                [("user" if parts[i] == "Human" else "assistant", parts[i + 1]) for i in range(1, len(parts) - 1, 2)]
            )
    return _table(convs, "hh_rlhf_harmless_base_test.jsonl.gz")


def self_instruct() -> pa.Table:
    convs = []
    for line in (INSTRUCTIONS / "self_instruct_seed_tasks.jsonl").open():
        r = json.loads(line)
        inst = r["instances"][0]
        prompt = r["instruction"] + (("\n\n" + inst["input"]) if inst.get("input") else "")
        convs.append([("user", prompt), ("assistant", inst["output"])])
    return _table(convs, "self_instruct_seed_tasks.jsonl")


def stackexchange_posts() -> pa.Table:
    text = (DATA / "html" / "stackexchange_coffee_Posts.xml").read_text()
    bodies = [html.unescape(b) for b in re.findall(r' Body="([^"]*)"', text)]
    plain = [re.sub(r"\s+\n", "\n", html.unescape(re.sub(r"<[^>]+>", " ", b))).strip() for b in bodies]
    return _table([[("user", p)] for p in plain if p], "stackexchange_coffee_Posts.xml")


def read_with_curate(path: Path, names: FieldNames | None = None) -> pa.Table:
    tables = [read_shard(s, names or FieldNames())[0] for s in plan([str(path)], "auto", 100_000)]
    return pa.concat_tables(tables)


def instruction_files() -> dict[str, pa.Table]:
    special = {
        "oasst_en_100_trees.jsonl": oasst_threads,
        "hh_rlhf_harmless_base_test.jsonl.gz": hh_rlhf,
        "self_instruct_seed_tasks.jsonl": self_instruct,
        # Arena battles: the conversation is under `conversation_a` (input.columns.conversations in a YAML)
        "openai_messages_arena_refusal_labeled.jsonl": lambda: read_with_curate(
            INSTRUCTIONS / "openai_messages_arena_refusal_labeled.jsonl", FieldNames(conversations="conversation_a")
        ),
    }
    out = {}
    for path in sorted(INSTRUCTIONS.iterdir()):
        out[path.name] = special[path.name]() if path.name in special else read_with_curate(path)
    return out


def language_accuracy(step: Language, files: dict[str, pa.Table]) -> list[tuple[str, int, int, float, str]]:
    """(source, rows, rows with a language call, accuracy among them, what was wrong)."""
    oasst, labels = oasst_messages()
    cases = [
        ("OASST messages (lang label)", oasst, labels),
        ("Stack Exchange coffee posts (en)", stackexchange_posts(), None),
        ("alpaca_en_demo (en)", files["alpaca_llamafactory_alpaca_en_demo.json"], None),
    ]
    rows = []
    for name, table, gold in cases:
        out, _ = apply_map_step(step, table)
        pred = out.column("lang").to_pylist()
        gold = gold or ["en"] * len(pred)
        called = [(p, g) for p, g in zip(pred, gold) if p not in ("unknown", "code")]
        right = sum(p == g for p, g in called)
        wrong = Counter(p for p, g in called if p != g)
        rows.append(
            (
                name,
                len(pred),
                len(called),
                right / max(len(called), 1),
                ", ".join(f"{k}:{v}" for k, v in wrong.most_common()),
            )
        )
    return rows


def measure_rules(files: dict[str, pa.Table], lang_step: Language) -> None:
    names = list(RULES)
    print("\n## Rows each quality rule would drop (rule alone; language step first)\n")
    print("| file | rows | " + " | ".join(names) + " | step (defaults) |")
    print("|---|---:|" + "---:|" * (len(names) + 1))
    for fname, table in files.items():
        table, _ = apply_map_step(lang_step, table)
        counts = []
        for rule in names:
            step = QualityHeuristics(QualityParams(rules=[rule]), CTX)
            st = apply_map_step(step, table)[1]
            counts.append(st.rows_dropped)
        st = apply_map_step(QualityHeuristics(QualityParams(), CTX), table)[1]
        print(f"| {fname} | {table.num_rows} | " + " | ".join(str(c) for c in counts) + f" | {st.rows_dropped} |")


def _loop(text: str, unit: str, sep: str) -> str:
    """A decoding loop: `unit` repeated after `text` until the loop is as long as the text."""
    return text + (sep + unit) * (len(text) // (len(unit) + len(sep)) + 1)


def looping_turns(files: dict[str, pa.Table], limit: int = 400) -> tuple[pa.Table, pa.Table]:
    """(real long assistant turns, the same turns made to loop on their last paragraph / sentence /
    7-word phrase), as one-pair conversations."""
    real = []
    for name in (
        "sharegpt92k_cleaned_sample.json",
        "alpaca_llamafactory_alpaca_en_demo.json",
        "oasst_en_100_trees.jsonl",
        "sharegpt_llamafactory_dpo_en_demo.json",
        "openai_messages_llamafactory_kto_en_demo.json",
    ):
        for conv in files[name].column("conversations").to_pylist():
            real += [t["text"] for t in conv if t["role"] == "assistant" and len(t["text"].split()) >= 80]
    real = real[1::4][:limit]
    looped = []
    for t in real:
        paras = [p for p in t.split("\n\n") if p.strip()]
        sents = re.split(r"(?<=[.!?])\s+", t.strip())
        looped += [_loop(t, paras[-1], "\n\n"), _loop(t, sents[-1], " "), _loop(t, " ".join(t.split()[-7:]), " ")]
    pair = lambda texts: _table([[("user", "Please answer."), ("assistant", x)] for x in texts], "loops")
    return pair(real), pair(looped)


def preset_comparison(files: dict[str, pa.Table], lang_step: Language) -> None:
    real, looped = looping_turns(files)
    everything = pa.concat_tables([apply_map_step(lang_step, t)[0] for t in files.values()], promote_options="default")
    print("\n## Presets: real rows rejected vs looping turns caught\n")
    print(
        f"| preset | all {everything.num_rows} shared rows rejected | {real.num_rows} real long answers rejected | "
        f"{looped.num_rows} looping answers caught |"
    )
    print("|---|---:|---:|---:|")
    for preset in ("chat", "gopher"):
        step = QualityHeuristics(QualityParams(preset=preset), CTX)
        a, b, c = (apply_map_step(step, t)[1].rows_dropped for t in (everything, real, looped))
        print(
            f"| {preset} | {a} ({a / everything.num_rows:.1%}) | {b} ({b / real.num_rows:.1%}) | {c} ({c / looped.num_rows:.1%}) |"
        )


def sharing_model(lang_step: Language) -> Language:
    """A new language step (an empty memo) with the loaded model of `lang_step`."""
    step = Language(lang_step.params, CTX)
    step._model = lang_step.model
    return step


def speed(files: dict[str, pa.Table], lang_step: Language) -> None:
    table = files["sharegpt92k_cleaned_sample.json"]
    mb = sum(len(t["text"].encode()) for c in table.column("conversations").to_pylist() for t in c) / 1e6
    print(f"\n## Speed (one process, sharegpt92k sample: {table.num_rows} rows, {mb:.1f} MB of text)\n")
    for name, new_step in (
        ("language", lambda: sharing_model(lang_step)),
        ("quality_heuristics", lambda: QualityHeuristics(QualityParams(), CTX)),
    ):
        start = time.perf_counter()
        for _ in range(3):
            # a new step each time (the model shared): one step again would serve every turn from its memo
            apply_map_step(new_step(), table)
        sec = (time.perf_counter() - start) / 3
        print(f"- {name}: {sec:.2f} s = {table.num_rows / sec:,.0f} rows/s, {mb / sec:.1f} MB/s")


def show_examples(files: dict[str, pa.Table], lang_step: Language, n: int) -> None:
    print(f"\n## Up to {n} rows dropped per file by the default quality step\n")
    for fname, table in files.items():
        table, _ = apply_map_step(lang_step, table)
        out, _ = apply_map_step(QualityHeuristics(QualityParams(), CTX), table)
        dropped = out.filter(pa.compute.is_valid(out.column("_curate_drop_reason")))
        for r in dropped.slice(0, n).to_pylist():
            span = (r["_curate_drop_span"] or "")[:80].replace("\n", "\\n")
            print(f"- {fname} {r['id']}: {r['_curate_drop_reason']} — {r['_curate_drop_detail']} — span: {span!r}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=3, help="dropped rows to print per file")
    ap.add_argument("--arena", type=int, default=20, help="Arena rows to print for a hand check")
    args = ap.parse_args()
    lang_step = Language(LanguageParams(), CTX)
    lang_step.setup()
    files = instruction_files()

    start = time.perf_counter()
    acc = language_accuracy(lang_step, files)
    print("## Language identification (fastText lid.176, conversation level)\n")
    print("| source | rows | rows with a language call | accuracy | wrong calls |")
    print("|---|---:|---:|---:|---|")
    for name, n, called, a, wrong in acc:
        print(f"| {name} | {n} | {called} | {a:.3f} | {wrong or '-'} |")
    arena, _ = apply_map_step(lang_step, files["openai_messages_arena_refusal_labeled.jsonl"])
    mix = Counter(arena.column("lang").to_pylist())
    print(f"\nArena (unlabelled) language mix: {dict(mix.most_common())}")
    for r in arena.slice(0, args.arena).to_pylist():
        first = r["conversations"][0]["text"][:70].replace("\n", " ")
        print(f"  {r['lang']:>7} {r['lang_score'] or 0:.2f}  {first}")
    print(f"(language: {time.perf_counter() - start:.1f} s)")

    measure_rules(files, lang_step)
    preset_comparison(files, lang_step)
    speed(files, lang_step)
    show_examples(files, lang_step, args.examples)


if __name__ == "__main__":
    main()
