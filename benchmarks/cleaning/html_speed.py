"""HTML to Markdown speed on the all-HTML ShareGPT dump, one core, curate's step beside FastChat's cleaning.

    python benchmarks/cleaning/html_speed.py [--copies 3] [--passes 3] [--rounds 5] [--fastchat-python /tmp/bench/venv-fastchat/bin/python]

The dump: the 667 real ShareGPT conversations of ../shared/data with every reply rendered as the 2023
ChatGPT page HTML (vs_fastchat.html_dump), `copies` times. Each tool runs in its own process pinned to
CPU 0 (`taskset -c 0`) and times only the HTML work after reading the rows and converting one row to warm
up (imports, I/O and one-off pattern compiles excluded: per-row rates on a large dump), `passes` times over
the whole dump (FastChat on freshly parsed rows each pass: it rewrites them in place), taking the median:
  - FastChat: `clean_html_one_sample` from fastchat/data/clean_sharegpt.py (markdownify 0.11.6 on every
    turn plus its regex clean-up), in its own venv: pip install fschat --no-deps, markdownify==0.11.6,
    beautifulsoup4, tqdm;
  - curate: the `html_to_markdown` step alone on the rows as an Arrow table (detection, conversion, columns);
  - the beautifulsoup4 paths an engine could be built on: markdownify (current) on every HTML turn, and
    BeautifulSoup(html, "html.parser") parsing alone (a floor for any beautifulsoup4-based converter).
Prints rows/s per core and the ratio to FastChat (the median of `rounds` rounds that alternate the two, each
round's ratio taken within it, with the load average): run the tools in one go (ratios, the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

FASTCHAT = """
import json, statistics, sys, time
import argparse
import fastchat.data.clean_sharegpt as cs
cs.args = argparse.Namespace(debug=False)  # html_to_markdown reads the script's global args
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
cs.clean_html_one_sample(json.loads(lines[0]))  # warm-up: one-off costs out of the per-row rate
seconds = []
for _ in range(int(sys.argv[2])):
    rows = [json.loads(l) for l in lines]  # fresh rows each pass: clean_html_one_sample rewrites them in place
    start = time.process_time()
    out = [cs.clean_html_one_sample(r) for r in rows]
    seconds.append(time.process_time() - start)
print(json.dumps({"seconds": statistics.median(seconds), "rows": len(rows)}))
"""

CURATE = """
import json, statistics, sys, time
from curate.readers import plan, read_shard
from curate.records import FieldNames
from curate.steps.base import StepContext, apply_map_step
from curate.steps.html_to_markdown import HtmlParams, HtmlToMarkdown
table = read_shard(plan([sys.argv[1]], "auto", 10**9)[0], FieldNames())[0]
step = HtmlToMarkdown(HtmlParams(), StepContext(rules_dir=None))
apply_map_step(step, table.slice(0, 1))  # warm-up: pattern compiles and the converter's options, once per process
seconds = []
for _ in range(int(sys.argv[2])):
    start = time.process_time()
    out, stats = apply_map_step(step, table)
    seconds.append(time.process_time() - start)
print(json.dumps({"seconds": statistics.median(seconds), "rows": table.num_rows}))
"""

BS4_PATHS = """
import json, statistics, sys, time
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
turns = [t["value"] for r in rows for t in r["conversations"] if t["from"] == "gpt"]
if sys.argv[3] == "markdownify":
    from markdownify import markdownify as convert
else:
    from bs4 import BeautifulSoup
    convert = lambda h: BeautifulSoup(h, "html.parser")
convert(turns[0])  # warm-up
seconds = []
for _ in range(int(sys.argv[2])):
    start = time.process_time()
    for h in turns:
        convert(h)
    seconds.append(time.process_time() - start)
print(json.dumps({"seconds": statistics.median(seconds), "rows": len(rows)}))
"""


def run_pinned(python: str, script: str, *args: str) -> dict:
    cmd = ["taskset", "-c", "0", python, "-c", script, *args]
    out = subprocess.run(
        cmd,
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--passes", type=int, default=3, help="timed passes over the dump per process (median)")
    ap.add_argument("--rounds", type=int, default=5, help="FastChat and curate alternate this many times")
    ap.add_argument("--fastchat-python", default="/tmp/bench/venv-fastchat/bin/python")
    args = ap.parse_args()
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin every tool to one core")
    from vs_fastchat import html_dump

    work = Path(tempfile.mkdtemp(prefix="html-speed-"))
    corpus = html_dump(args.copies, work) / "corpus.jsonl"
    passes = str(args.passes)
    fastchat = "FastChat clean_html_one_sample (markdownify 0.11.6)"
    has_fastchat = Path(args.fastchat_python).exists()
    load_before = os.getloadavg()
    # FastChat and curate alternate for `rounds` rounds (the machine's load drifts; each round's ratio is taken
    # within the round); the beautifulsoup4 paths, for context, once.
    rounds: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        if has_fastchat:
            rounds.setdefault(fastchat, []).append(run_pinned(args.fastchat_python, FASTCHAT, str(corpus), passes))
        rounds.setdefault("curate html_to_markdown step", []).append(
            run_pinned(sys.executable, CURATE, str(corpus), passes)
        )
    rounds["markdownify (current) on the replies"] = [
        run_pinned(sys.executable, BS4_PATHS, str(corpus), passes, "markdownify")
    ]
    rounds["beautifulsoup4 html.parser, parse only"] = [
        run_pinned(sys.executable, BS4_PATHS, str(corpus), passes, "parse")
    ]
    results = {name: sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2] for name, runs in rounds.items()}
    rows = next(iter(results.values()))["rows"]
    mb = corpus.stat().st_size / 1e6
    ref = results.get(fastchat)
    print(
        f"\n{rows:,} rows ({mb:.1f} MB): real ShareGPT conversations, replies as 2023 ChatGPT-page HTML, {args.copies} copies; CPU seconds on one core"
        f" (median of {args.passes} passes per process; median of {args.rounds} rounds for FastChat and curate); load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after\n"
    )
    print("| tool | CPU s | rows/s per core | x FastChat |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        speed = r["rows"] / r["seconds"]
        ratio = f"{speed / (ref['rows'] / ref['seconds']):.1f}" if ref else "-"
        print(f"| {name} | {r['seconds']:.2f} | {speed:,.0f} | {ratio} |")
    if has_fastchat:
        ratios = sorted(
            f["seconds"] / c["seconds"] for f, c in zip(rounds[fastchat], rounds["curate html_to_markdown step"])
        )
        print(
            f"\ncurate / FastChat per round: {', '.join(f'{r:.2f}x' for r in ratios)}; median {ratios[len(ratios) // 2]:.2f}x"
        )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
