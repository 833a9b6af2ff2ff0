"""curate's default ShareGPT pipeline against FastChat's own ShareGPT cleaning, same input, one core.

FastChat (the `fschat` package, in its own venv, see benchmarks/README.md) runs the way the Vicuna
team cleaned ShareGPT:
  python -m fastchat.data.clean_sharegpt --in-file dump.json --out-file clean.json
  python -m fastchat.data.optional_clean --in-file clean.json --out-file clean_en.json --keep-lang en --reduce-rep
curate runs pipelines/sharegpt.yaml with the local runner, its decontaminate step also given the
corpus's eval sets. Every command is pinned to CPU 0
(`taskset -c 0`, FastChat's process pool included), so rows/s is per core; wall time includes
start-up and imports for both.

Then what each kept, scored against the corpus's ground truth (../shared/bench/make_corpus.py):
duplicates left in (rows beyond the first of each true cluster), contaminated rows left in,
non-English rows left in, HTML tag residue and ChatGPT-page chrome ("Copy code") in kept text, and
why rows were dropped.

  python benchmarks/cleaning/vs_fastchat.py --n 20000 [--fastchat-python /tmp/bench/venv-fastchat/bin/python]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import make_corpus  # noqa: E402
from pipeline_overhead import run_measured  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TAG_RESIDUE = re.compile(
    r"</?(?:div|p|span|pre|code|ol|ul|li|table|tr|td|th|a|b|strong|em|br|h[1-6]|svg|button)\b[^>]*>"
)
CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.S)
CHROME = re.compile(r"Copy code|Copy\d+ chars / \d+ words|^\d+ / \d+", re.M)
FASTCHAT_REASON = re.compile(
    r"^id (\S+) (is too short|has a wrong format|contains blocked words|contains parser errors"
    r"|is an id duplication|is a value duplication|contains plugin)"
)


def read_corpus(corpus: Path) -> list[dict]:
    return [json.loads(line) for line in (corpus / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]


def run_fastchat(python: str, rows: list[dict], work: Path) -> dict:
    dump, clean, clean_en = work / "dump.json", work / "clean.json", work / "clean_en.json"
    dump.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    pin = ["taskset", "-c", "0"]
    w1, rss1, out = run_measured(
        pin + [python, "-m", "fastchat.data.clean_sharegpt", "--in-file", str(dump), "--out-file", str(clean)]
    )
    reasons = {m.group(1): m.group(2) for m in map(FASTCHAT_REASON.match, out.splitlines()) if m}
    w2, rss2, _ = run_measured(
        pin
        + [
            python,
            "-m",
            "fastchat.data.optional_clean",
            "--in-file",
            str(clean),
            "--out-file",
            str(clean_en),
            "--keep-lang",
            "en",
            "--reduce-rep",
        ]
    )
    after_clean = {r["id"] for r in json.loads(clean.read_text(encoding="utf-8"))}
    kept = json.loads(clean_en.read_text(encoding="utf-8"))
    kept_ids = {r["id"] for r in kept}
    for i in after_clean - kept_ids:
        reasons[i] = "optional_clean: not English or a digit repeated 9 times"
    texts = {r["id"]: "\n".join(t["value"] for t in r["conversations"]) for r in kept}
    return {
        "wall": w1 + w2,
        "rss": max(rss1, rss2),
        "kept": kept_ids,
        "texts": texts,
        "reasons": reasons,
        "stages": f"clean_sharegpt {w1:.1f} s + optional_clean {w2:.1f} s",
    }


def pipeline_with_corpus_evals(corpus: Path, work: Path) -> Path:
    """pipelines/sharegpt.yaml as shipped, with the corpus's eval sets added to the shipped ones (a
    user points decontaminate at the benchmarks they will report; FastChat has no such step)."""
    spec = yaml.safe_load((REPO / "pipelines" / "sharegpt.yaml").read_text())
    registry = yaml.safe_load((REPO / "curate" / "rules" / "eval_sets.yaml").read_text())
    shipped = [name for name, e in registry.items() if e.get("default")]
    for step in spec["steps"]:
        if "decontaminate" in step:
            step["decontaminate"] = {
                **(step["decontaminate"] or {}),
                "eval_sets": shipped + [{"name": "corpus_evals", "path": str(corpus / "evals")}],
            }
    path = work / "sharegpt_with_corpus_evals.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# The checks FastChat's two scripts make, as curate steps: the same work, for a like-for-like speed.
FASTCHAT_EQUIVALENT = """\
input: {path: sample_data/}
output: {path: runs/fastchat_equivalent}
runner: {type: local}
steps:
  - html_to_markdown: {}
  - format_rules: {}
  - ai_boilerplate: {lists: [openai_mentions], actions: {openai_mentions: drop}}
  - language: {keep: [en]}
  - quality_heuristics: {rules: [repeated_digits]}
  - exact_dedup: {turns: first_pair}
"""


def run_curate(corpus: Path, work: Path, pipeline: Path, name: str) -> dict:
    out = work / name
    rows_path = corpus / "corpus.jsonl"
    cmd = [
        "taskset",
        "-c",
        "0",
        sys.executable,
        "-m",
        "curate",
        "run",
        str(pipeline),
        "--input",
        str(rows_path),
        "--output",
        str(out),
        "--runner",
        "local",
        "--overwrite",
        "--no-progress",
    ]
    wall, rss, _ = run_measured(cmd)
    kept = pa.concat_tables(
        [pq.read_table(f) for f in sorted((out / "kept").glob("*.parquet"))], promote_options="default"
    )
    split_of = kept.column("split_of").to_pylist() if "split_of" in kept.column_names else [None] * kept.num_rows
    ids = [of or i for i, of in zip(kept.column("id").to_pylist(), split_of)]
    texts: dict[str, str] = collections.defaultdict(str)
    for i, conv in zip(ids, kept.column("conversations").to_pylist()):
        texts[i] += "\n".join(t["text"] for t in conv) + "\n"
    reasons = {}
    rej_files = sorted((out / "rejected").glob("*.parquet"))
    if rej_files:
        rej = pa.concat_tables(
            [pq.read_table(f, columns=["id", "_curate_drop_step", "_curate_drop_reason"]) for f in rej_files]
        )
        for i, step, reason in zip(
            *(rej.column(c).to_pylist() for c in ("id", "_curate_drop_step", "_curate_drop_reason"))
        ):
            reasons[i] = f"{step}: {reason}"
    stats = json.loads((out / "stats.json").read_text())
    return {
        "wall": wall,
        "rss": rss,
        "kept": set(ids),
        "texts": texts,
        "reasons": reasons,
        "stages": f"{stats['rows_kept']:,} samples after splitting",
    }


def judge(result: dict, truth: list[dict]) -> dict:
    kept = result["kept"]
    clusters: dict[str, list[dict]] = collections.defaultdict(list)
    for t in truth:
        clusters[t["cluster"]].append(t)
    surplus = collections.Counter()
    for members in clusters.values():
        alive = [m for m in members if m["id"] in kept]
        for m in sorted(alive, key=lambda m: m["dup_kind"] == "source", reverse=True)[1:]:
            kind = m["dup_kind"]
            surplus["html re-render" if kind == "near_html" else "exact" if kind.startswith("exact") else "near"] += 1
    texts = {i: CODE_BLOCK.sub("", t) for i, t in result["texts"].items()}  # tags inside code are code
    html_code = [t["id"] for t in truth if t["html"] and t["code"] and t["id"] in kept]
    return {
        "html_code": f"{sum(1 for i in html_code if '```' in result['texts'][i])}/{len(html_code)}",
        "kept": len(kept),
        "dup_exact": surplus["exact"],
        "dup_near": surplus["near"],
        "dup_html": surplus["html re-render"],
        "contaminated": sum(1 for t in truth if t["contaminated"] and t["id"] in kept),
        "non_english": sum(1 for t in truth if t["lang"] != "en" and t["id"] in kept),
        "tag_residue": sum(1 for t in texts.values() if TAG_RESIDUE.search(t)),
        "chrome": sum(1 for t in texts.values() if CHROME.search(t)),
    }


def html_dump(copies: int, work: Path) -> Path:
    """The 667 real ShareGPT conversations of ../shared/data with every reply rendered as the 2023
    ChatGPT-page HTML (what raw ShareGPT dumps hold, and what FastChat's clean_sharegpt was written
    for), `copies` times over with distinct ids (copies 2.. are exact duplicates of copy 1)."""
    sys.path.insert(0, str(REPO / "sample_data"))
    from build import as_chatgpt_html, sharegpt_rows

    rows = sharegpt_rows(REPO.parent / "shared" / "data")
    out = work / f"sharegpt_html_x{copies}"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for k in range(copies):
            for r in rows:
                conv = [
                    {"from": t["from"], "value": as_chatgpt_html(t["value"]) if t["from"] == "gpt" else t["value"]}
                    for t in r["conversations"]
                ]
                f.write(json.dumps({"id": f"{r['id']}.{k}", "conversations": conv}, ensure_ascii=False) + "\n")
    return out


def print_reasons(results: dict) -> None:
    for name, r in results.items():
        print(f"\n{name}: {r['stages']}; dropped {len(r['reasons']):,} rows:")
        for reason, count in collections.Counter(r["reasons"].values()).most_common():
            print(f"  {count:6,}  {reason}")


def compare_on_html_dump(args, equivalent: Path) -> None:
    corpus = html_dump(args.html_copies, args.work)
    rows = read_corpus(corpus)
    results = {
        "FastChat (clean_sharegpt + optional_clean)": run_fastchat(args.fastchat_python, rows, args.work),
        "curate, FastChat's checks only": run_curate(corpus, args.work, equivalent, "html_curate_equivalent"),
        "curate, default pipeline (12 steps)": run_curate(
            corpus, args.work, REPO / "pipelines" / "sharegpt.yaml", "html_curate"
        ),
    }
    fc_speed = len(rows) / results["FastChat (clean_sharegpt + optional_clean)"]["wall"]
    print(
        f"\n{len(rows):,} rows: real ShareGPT conversations, replies as 2023 ChatGPT-page HTML ({args.html_copies} copies)\n"
    )
    print(
        "| tool | wall s (1 core) | rows/s per core | x FastChat | peak RSS MB | kept | tag residue outside code | page chrome |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        texts = [CODE_BLOCK.sub("", t) for t in r["texts"].values()]
        print(
            f"| {name} | {r['wall']:.1f} | {len(rows) / r['wall']:,.0f} | {len(rows) / r['wall'] / fc_speed:.1f} | {r['rss']:,.0f} "
            f"| {len(r['kept']):,} | {sum(1 for t in texts if TAG_RESIDUE.search(t))} | {sum(1 for t in texts if CHROME.search(t))} |"
        )
    print_reasons(results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--data", type=Path, default=Path("/tmp/bench/data"))
    ap.add_argument("--fastchat-python", default="/tmp/bench/venv-fastchat/bin/python")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench/vs_fastchat"))
    ap.add_argument("--html-copies", type=int, default=15, help="copies of the real ShareGPT HTML dump (0: skip it)")
    args = ap.parse_args()
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin both tools to one core")
    corpus = make_corpus(args.n, args.data / f"n{args.n // 1000}k" if args.n % 1000 == 0 else args.data / f"n{args.n}")
    truth = [json.loads(line) for line in (corpus / "truth.jsonl").read_text().splitlines()]
    rows = read_corpus(corpus)
    args.work.mkdir(parents=True, exist_ok=True)
    equivalent = args.work / "fastchat_equivalent.yaml"
    equivalent.write_text(FASTCHAT_EQUIVALENT)
    results = {
        "FastChat (clean_sharegpt + optional_clean)": run_fastchat(args.fastchat_python, rows, args.work),
        "curate, FastChat's checks only": run_curate(corpus, args.work, equivalent, "curate_equivalent"),
        "curate, default pipeline (12 steps)": run_curate(
            corpus, args.work, pipeline_with_corpus_evals(corpus, args.work), "curate"
        ),
    }
    n = len(rows)
    truth_counts = collections.Counter()
    for t in truth:
        truth_counts["contaminated"] += t["contaminated"]
        truth_counts["non_english"] += t["lang"] != "en"
        truth_counts["html"] += bool(t["html"])
    fc_speed = n / results["FastChat (clean_sharegpt + optional_clean)"]["wall"]
    print(
        f"\n{n:,} ShareGPT rows ({corpus}); truth: {truth_counts['contaminated']} contaminated, "
        f"{truth_counts['non_english']} non-English, {truth_counts['html']} HTML rows\n"
    )
    print(
        "| tool | wall s (1 core) | rows/s per core | x FastChat | peak RSS MB | kept | exact dups left | near dups left "
        "| HTML re-renders left | contaminated left | non-English left | tag residue outside code | page chrome "
        "| kept HTML rows with code: code fenced |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        j = judge(r, truth)
        print(
            f"| {name} | {r['wall']:.1f} | {n / r['wall']:,.0f} | {n / r['wall'] / fc_speed:.1f} | {r['rss']:,.0f} | {j['kept']:,} "
            f"| {j['dup_exact']} | {j['dup_near']} | {j['dup_html']} | {j['contaminated']} | {j['non_english']} "
            f"| {j['tag_residue']} | {j['chrome']} | {j['html_code']} |"
        )
    print_reasons(results)
    if args.html_copies:
        compare_on_html_dump(args, equivalent)


if __name__ == "__main__":
    main()
