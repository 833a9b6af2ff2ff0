"""Where a runner's time goes on Ray, without the work: N pieces that each sleep 0.2 s on an
embedded Ray with 2 CPUs (ideal: N x 0.2 / 2 s), through this checkout's Ray core runner and
through a baseline checkout's Ray Data runner (patched: its prompt wait and 0.1 s CPU refresh).

    python benchmarks/scale/gaps.py --baseline-src /tmp/base [--pieces 40] [--rounds 3]

Sleeping pieces leave the CPUs to Ray, so the figures hold on a busy machine better than a real
workload's. Prints per runner: ray.init, the map's wall, the gap between one worker's consecutive
pieces (median, p90), the wait for the first piece, and the driver's CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

COMMON = """
import json, os, sys, time, resource
N = int(sys.argv[1])
def nap(item):
    start = time.time(); time.sleep(0.2); return (os.getpid(), start, time.time())
def summary(init_s, submitted, wall, pieces):
    gaps = []
    for pid in {p[0] for p in pieces}:
        runs = sorted((s, e) for q, s, e in pieces if q == pid)
        gaps += [b[0] - a[1] for a, b in zip(runs, runs[1:])]
    gaps.sort()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"init_s": init_s, "wall_s": wall, "gap_ms_median": 1000 * gaps[len(gaps) // 2],
                      "gap_ms_p90": 1000 * gaps[int(len(gaps) * 0.9)], "first_ms": 1000 * (min(p[1] for p in pieces) - submitted),
                      "driver_cpu_s": cpu.ru_utime + cpu.ru_stime}))
"""

NEW = (
    COMMON
    + """
from curate.runners.ray import RayRunner
from curate.steps.base import Resources
t = time.perf_counter(); runner = RayRunner(num_cpus=2); init_s = time.perf_counter() - t
runner.map(lambda shared, item: nap(item), None, list(range(4)), "warm", Resources())  # workers up, as a run's first segment does
submitted = time.time(); t = time.perf_counter()
pieces = runner.map(lambda shared, item: nap(item), None, list(range(N)), "toy", Resources())
summary(init_s, submitted, time.perf_counter() - t, pieces)
runner.close()
"""
)

BASELINE = (
    COMMON
    + """
import numpy as np, ray, ray.data
from curate.runners.ray import RayRunner
t = time.perf_counter(); runner = RayRunner(num_cpus=2); init_s = time.perf_counter() - t  # applies its patches
def run(n):
    def fn(batch):
        return {"out": np.array([json.dumps(nap(int(i))) for i in batch["item"]], dtype=object)}
    ds = ray.data.from_items([{"item": i} for i in range(n)], override_num_blocks=n).map_batches(fn, batch_size=1, num_cpus=1)
    return [tuple(json.loads(r["out"])) for r in ds.take_all()]
run(4)
submitted = time.time(); t = time.perf_counter()
pieces = run(N)
summary(init_s, submitted, time.perf_counter() - t, pieces)
runner.close()
"""
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-src", type=Path, required=True)
    ap.add_argument("--pieces", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, list[dict]] = {"Ray core tasks (this checkout)": [], "Ray Data, patched (baseline)": []}
    for _ in range(args.rounds):
        for out, (code, tree) in zip(results.values(), ((NEW, REPO), (BASELINE, args.baseline_src))):
            p = subprocess.run(
                [sys.executable, "-c", code, str(args.pieces)],
                capture_output=True,
                text=True,
                cwd=tree,
                env=dict(os.environ, PYTHONPATH=str(tree)),
                timeout=600,
            )
            if p.returncode:
                sys.exit(p.stderr[-3000:])
            out.append(json.loads(p.stdout.strip().splitlines()[-1]))
    print(
        f"{args.pieces} pieces of 0.2 s on 2 CPUs (ideal {args.pieces * 0.1:.1f} s), medians of {args.rounds} rounds, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end"
    )
    print(
        "| runner | ray.init s | map wall s | gap between a worker's pieces ms (median / p90) | first piece ms | driver CPU s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, rs in results.items():
        m = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(
            f"| {name} | {m['init_s']:.1f} | {m['wall_s']:.2f} | {m['gap_ms_median']:.1f} / {m['gap_ms_p90']:.1f} | "
            f"{m['first_ms']:.0f} | {m['driver_cpu_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
