"""semantic_dedup alone at scale: docs/s and peak RSS of the process tree, local and Ray, same kept set;
the 1-minute load average before and after each run (the machine is shared: read docs/s beside it).

python3 ../shared/bench/make_corpus.py --n 200000 --out /tmp/bench/data/n200k
PYTHONPATH=$PWD python benchmarks/semantic/scale.py /tmp/bench/data/n200k/corpus.jsonl [--cpus 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_overhead import run_measured  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--runners", default="local,ray")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="semdedup-"))
    digests = {}
    print(
        f"{'runner':7s} {'rows':>8s} {'removed':>8s} {'seconds':>8s} {'docs/s':>8s} {'peak RSS MB':>12s} {'load':>9s}"
    )
    for runner in args.runners.split(","):
        out = tmp / runner
        yaml_path = tmp / f"{runner}.yaml"
        yaml_path.write_text(
            f"input: {{path: {args.corpus}, format: sharegpt, shard_rows: 20000}}\noutput: {{path: {out}}}\n"
            f"runner: {{type: {runner}, num_cpus: {args.cpus}}}\nsteps:\n  - semantic_dedup: {{}}\n"
        )
        load_before = os.getloadavg()[0]
        wall, peak, _ = run_measured([sys.executable, "-m", "curate", "run", str(yaml_path), "--no-progress"])
        stats = json.loads((out / "stats.json").read_text())
        digests[runner] = hashlib.sha256(
            b"".join(p.read_bytes() for p in sorted((out / "kept").glob("*.parquet")))
        ).hexdigest()
        print(
            f"{runner:7s} {stats['rows_in']:8d} {stats['rows_rejected']:8d} {wall:8.1f} {stats['rows_in'] / wall:8.0f} {peak:12.0f} {load_before:4.1f}-{os.getloadavg()[0]:<4.1f}",
            flush=True,
        )
    if len(set(digests.values())) == 1:
        print("kept sets identical across runners")
    else:
        print(f"kept sets DIFFER: {digests}")


if __name__ == "__main__":
    main()
