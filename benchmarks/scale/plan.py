"""Planning a large JSONL input: the driver's work before any worker starts, before and after
byte-range planning.

    python benchmarks/scale/plan.py --gb 10 --baseline-src /tmp/base [--corpus /tmp/bench/data/n1m/corpus.jsonl]

Makes a JSONL of about --gb GB by repeating a corpus (kept in /tmp/bench/data/plan<gb>g), then times:
  before  the baseline checkout's planning: a line scan of every byte for shard boundaries, and a
          sha256 of every byte, in two threads (what its run.py did while Ray started);
  after   this checkout's driver: file sizes, each file's first MB, a sampled fingerprint; then the
          index pass the workers do (every byte once, in parallel), in one process and on Ray.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BEFORE = """
import hashlib, sys, time
from concurrent.futures import ThreadPoolExecutor
from curate.readers import plan
def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
start = time.perf_counter()
with ThreadPoolExecutor(2) as pool:
    shards, digest = pool.submit(plan, [sys.argv[1]], "auto", int(sys.argv[2])), pool.submit(sha256, sys.argv[1])
    n = len(shards.result()); digest.result()
print(f"{time.perf_counter() - start:.2f} {n}")
"""

AFTER = """
import logging, sys, time
from curate.readers import plan_ranges
from curate.run import describe_input
start = time.perf_counter()
ranges = plan_ranges([sys.argv[1]], "auto", int(sys.argv[2]))
describe_input(sys.argv[1])
driver = time.perf_counter() - start
from curate.engine import plan_input
from curate.runners.local import LocalRunner
start = time.perf_counter()
n = len(plan_input(LocalRunner(), [sys.argv[1]], "auto", int(sys.argv[2])))
local = time.perf_counter() - start
from curate.runners.ray import RayRunner
runner = RayRunner(num_cpus=2)
start = time.perf_counter()
assert len(plan_input(runner, [sys.argv[1]], "auto", int(sys.argv[2]))) == n
ray_s = time.perf_counter() - start
runner.close()
print(f"{driver:.3f} {local:.2f} {ray_s:.2f} {len(ranges)} {n} {runner.timeline.startup_seconds:.1f}")
"""


def make_input(gb: float, corpus: Path) -> Path:
    out = Path(f"/tmp/bench/data/plan{gb:g}g/corpus.jsonl")
    if out.exists() and out.stat().st_size >= gb * 1e9 * 0.99:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    block = corpus.read_bytes()
    with open(out, "wb") as f:
        while f.tell() < gb * 1e9:
            f.write(block)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=10)
    ap.add_argument("--corpus", type=Path, default=Path("/tmp/bench/data/n1m/corpus.jsonl"))
    ap.add_argument(
        "--baseline-src", type=Path, required=True, help="a checkout of the commit before byte-range planning"
    )
    ap.add_argument("--shard-rows", type=int, default=20000)
    args = ap.parse_args()
    src = make_input(args.gb, args.corpus)
    size = src.stat().st_size

    def run(code: str, tree: Path) -> list[str]:
        env = dict(os.environ, PYTHONPATH=str(tree))
        return subprocess.run(
            [sys.executable, "-c", code, str(src), str(args.shard_rows)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            cwd=tree,
        ).stdout.split()  # cwd: -c puts it first on sys.path

    before, shards_before = run(BEFORE, args.baseline_src)
    driver, local, on_ray, ranges, shards, startup = run(AFTER, REPO)
    print(
        f"{size / 1e9:.1f} GB JSONL ({src}), shard_rows {args.shard_rows}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print("| planning | driver reads | wall s | shards |")
    print("|---|---|---:|---:|")
    print(f"| before: line scan + sha256 in the driver | every byte, twice | {float(before):.1f} | {shards_before} |")
    print(
        f"| after: the driver (sizes, first MB, sampled fingerprint) | ~2 MB per file | {float(driver):.3f} | {ranges} ranges |"
    )
    print(
        f"| after: the workers' index pass, one process | (workers) every byte once | {float(local):.1f} | {shards} |"
    )
    print(
        f"| after: the workers' index pass, Ray on 2 CPUs (start-up {startup} s apart) | (workers) every byte once | {float(on_ray):.1f} | {shards} |"
    )


if __name__ == "__main__":
    main()
