"""read -> exact_dedup -> write: curate's Ray runner vs its local runner vs plain pandas.

Prints rows/s and peak RSS of the whole process tree (Ray's workers included) per corpus size.
Corpora come from ../shared/bench/make_corpus.py (ShareGPT JSONL with known duplicates):

    python3 ../shared/bench/make_corpus.py --n 20000 --out /tmp/bench/data/n20k
    python benchmarks/pipeline_overhead.py /tmp/bench/data/n20k [/tmp/bench/data/n200k ...]

Each configuration runs in a fresh process, one at a time; wall time includes interpreter start-up,
imports and (for Ray) ray.init. Ray's start-up is also reported alone (an empty input) so its
per-run overhead can be separated from its throughput.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

PANDAS_BASELINE = textwrap.dedent(
    """
    import json, sys, re
    import pandas as pd
    src, out = sys.argv[1], sys.argv[2]
    df = pd.read_json(src, lines=True)
    text = df["conversations"].map(lambda c: "\\x1e".join(t["value"] for t in c))
    key = text.str.lower().str.replace(r"\\s+", " ", regex=True).str.strip()
    dup = key.duplicated(keep="first")
    df["conversations"] = df["conversations"].map(json.dumps)
    df[~dup].to_parquet(out + "/kept.parquet")
    df[dup].to_parquet(out + "/rejected.parquet")
    print(json.dumps({"rows_in": len(df), "rows_kept": int((~dup).sum())}))
    """
)


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS of the process tree in MB, stdout). Output goes to files, not pipes,
    so a chatty tool (FastChat prints a line per dropped row) cannot block on a full pipe."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                procs = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.1)
        wall = time.perf_counter() - start
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{stderr[-3000:]}")
    return wall, peak / 2**20, stdout


def curate_cmd(corpus: Path, out: Path, runner: str, cpus: int, steps: int = 1) -> list[str]:
    yaml_path = out.with_suffix(".yaml")
    yaml_path.write_text(
        f"input: {{path: {corpus}, format: sharegpt, shard_rows: 20000}}\n"
        f"output: {{path: {out}}}\n"
        f"runner: {{type: {runner}, num_cpus: {cpus}}}\n"
        "steps:\n" + "  - exact_dedup: {}\n" * steps
    )
    return [sys.executable, "-m", "curate", "run", str(yaml_path), "--overwrite", "--no-progress"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpora", nargs="+", type=Path, help="directories made by make_corpus.py")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs for the Ray runner")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        empty = tmp / "empty.jsonl"
        empty.write_text('{"conversations": [{"from": "human", "value": "x"}]}\n')
        wall, rss, _ = run_measured(curate_cmd(empty, tmp / "o_empty", "ray", args.cpus))
        rows.append(("1 row (Ray start-up and per-step overhead)", "curate ray", 1, wall, rss))
        wall5, rss, _ = run_measured(curate_cmd(empty, tmp / "o_empty5", "ray", args.cpus, steps=5))
        rows.append(("1 row, 5 global steps", "curate ray", 1, wall5, rss))
        print(
            f"# Ray overhead per global step (3 dataset executions each): {(wall5 - wall) / 4:.2f} s", file=sys.stderr
        )
        wall, rss, _ = run_measured(curate_cmd(empty, tmp / "o_empty_l", "local", 1))
        rows.append(("1 row", "curate local", 1, wall, rss))
        for corpus in args.corpora:
            src = corpus / "corpus.jsonl"
            n = sum(1 for _ in open(src, "rb"))
            for label, cmd in (
                ("curate ray", curate_cmd(src, tmp / f"o_ray_{corpus.name}", "ray", args.cpus)),
                ("curate local", curate_cmd(src, tmp / f"o_loc_{corpus.name}", "local", 1)),
                ("pandas", [sys.executable, "-c", PANDAS_BASELINE, str(src), str(tmp)]),
            ):
                wall, rss, out = run_measured(cmd)
                rows.append((corpus.name, label, n, wall, rss))
                if label == "curate local":
                    stats = json.loads((tmp / f"o_loc_{corpus.name}" / "stats.json").read_text())
                    print(
                        f"# {corpus.name}: curate kept {stats['rows_kept']:,} of {stats['rows_in']:,}", file=sys.stderr
                    )
                if label == "pandas":
                    print(f"# {corpus.name}: pandas {out.strip()}", file=sys.stderr)
    print("| corpus | runner | rows | wall s | rows/s | peak RSS MB (process tree) |")
    print("|---|---|---:|---:|---:|---:|")
    for corpus, label, n, wall, rss in rows:
        print(f"| {corpus} | {label} | {n:,} | {wall:.2f} | {n / wall:,.0f} | {rss:,.0f} |")


if __name__ == "__main__":
    main()
