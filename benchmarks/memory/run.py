"""Peak memory on hostile input: a decompression bomb, a 2 GB JSONL with one 500 MB line, 1M rows.

    PYTHONPATH=$PWD python benchmarks/memory/run.py [--runners local,ray] [--bomb-gb 4] [--big-gb 2]
        [--long-line-mb 500] [--rows 1000000] [--tmp /tmp/curate-memory]

The inputs are generated under --tmp at run time (and deleted after), never committed:
  bomb       a .jsonl.gz of a few MB holding one good record, then one line of --bomb-gb GB with no
             newline (what a zip bomb looks like to a line reader)
  big        --big-gb GB of JSONL: ~20 KB records around one record of --long-line-mb MB
  rows       --rows ordinary ShareGPT records (~300 bytes each)
Each runs `curate run` with `normalize, format_rules, exact_dedup` and the default
input.max_record_mb (64); the table gives the peak RSS of the whole process tree (driver, Ray's
processes and workers: sampled every 0.1 s by pipeline_overhead.run_measured), wall time and the
row counts. The target: every peak under 4 GB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline_overhead import run_measured

STEPS = "[{normalize: {}}, {format_rules: {}}, {exact_dedup: {}}]"
CHUNK = 1 << 24


def _record(i: int, pad: int = 0) -> bytes:
    text = f"question {i}: how do I sort a list of {i % 997} numbers in place?" + " and why" * pad
    return (
        json.dumps(
            {
                "id": f"r{i}",
                "conversations": [
                    {"from": "human", "value": text},
                    {"from": "gpt", "value": f"Use list.sort() ({i})."},
                ],
            }
        ).encode()
        + b"\n"
    )


def make_bomb(path: Path, gigabytes: float) -> None:
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(_record(0))
        f.write(b'{"conversations": [{"from": "human", "value": "')
        block = b"A" * CHUNK
        for _ in range(int(gigabytes * (1 << 30)) // CHUNK):
            f.write(block)


def make_big(path: Path, gigabytes: float, long_mb: int) -> None:
    target = int(gigabytes * (1 << 30)) - long_mb * (1 << 20)
    with open(path, "wb") as f:
        written, i = 0, 0
        while written < target:
            if i == 1000:  # the long record, early, so later shards follow it
                head = b'{"conversations": [{"from": "human", "value": "'
                f.write(head)
                block = b"B" * CHUNK
                for _ in range(long_mb * (1 << 20) // CHUNK):
                    f.write(block)
                f.write(b'"}, {"from": "gpt", "value": "ok"}]}\n')
            line = _record(i, pad=2500)
            f.write(line)
            written += len(line)
            i += 1


def make_rows(path: Path, n: int) -> None:
    with open(path, "wb") as f:
        for start in range(0, n, 100_000):
            f.write(b"".join(_record(i) for i in range(start, min(n, start + 100_000))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runners", default="local,ray")
    ap.add_argument("--bomb-gb", type=float, default=4.0)
    ap.add_argument("--big-gb", type=float, default=2.0)
    ap.add_argument("--long-line-mb", type=int, default=500)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cases", default="bomb,big,rows")
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/curate-memory"))
    args = ap.parse_args()
    args.tmp.mkdir(parents=True, exist_ok=True)
    makers = {
        "bomb": ("bomb.jsonl.gz", lambda p: make_bomb(p, args.bomb_gb), f"gzip, {args.bomb_gb:g} GB line"),
        "big": (
            "big.jsonl",
            lambda p: make_big(p, args.big_gb, args.long_line_mb),
            f"{args.big_gb:g} GB, one {args.long_line_mb} MB line",
        ),
        "rows": ("rows.jsonl", lambda p: make_rows(p, args.rows), f"{args.rows:,} rows"),
    }
    print("| input | file size | runner | wall s | peak RSS MB (tree) | in | kept | rejected | quarantined |")
    print("|---|---|---|---|---|---|---|---|---|")
    try:
        for case in args.cases.split(","):
            name, make, label = makers[case]
            src = args.tmp / name
            make(src)
            size = src.stat().st_size
            for runner in args.runners.split(","):
                out = args.tmp / f"out-{case}-{runner}"
                pipeline = args.tmp / f"{case}-{runner}.yaml"
                pipeline.write_text(
                    f"input: {{path: {src}}}\noutput: {{path: {out}}}\n"
                    f"runner: {{type: {runner}, num_cpus: 2}}\nsteps: {STEPS}\n"
                )
                wall, peak, _ = run_measured(
                    [sys.executable, "-m", "curate", "run", str(pipeline), "--overwrite", "--no-progress"]
                )
                s = json.loads((out / "stats.json").read_text())
                print(
                    f"| {label} | {size / 2**20:,.0f} MB | {runner} | {wall:.1f} | {peak:,.0f} | {s['rows_in']:,} | "
                    f"{s['rows_kept']:,} | {s['rows_rejected']:,} | {s['rows_quarantined']:,} |",
                    flush=True,
                )
                shutil.rmtree(out, ignore_errors=True)
            src.unlink()
    finally:
        shutil.rmtree(args.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
