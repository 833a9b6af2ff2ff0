"""The README's main command, again and again, on a loaded machine: does every run publish and exit 0?

    python benchmarks/stress/run.py [--runs 30] [--ray-runs 30] [--jobs 10] [--load 2]

1. `curate run pipelines/sharegpt.yaml --overwrite` (the default runner, the bundled sample) RUNS times
   in a row while LOAD processes spin on the CPUs; then RAY_RUNS times with `--runner ray` (the
   default picks the local runner for the sample; the shutdown race lived in the embedded Ray). A run counts as failed when it exits non-zero, and as
   unpublished when its output lacks manifest.json or report.html.
2. The cluster path: a Ray head on loopback with token authentication, then `ray job submit -- python -m
   curate run ...` JOBS times, each checked the same way; the head is polled for its job agent first,
   as tests/test_cluster.py does.

Prints one table. Not a test: it takes tens of minutes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.test_cluster import token_cluster  # noqa: E402 (the cluster test's own head, ports and readiness wait)


def _spin(stop) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


def _published(out: Path) -> bool:
    return (out / "manifest.json").exists() and (out / "report.html").exists()


def _main_command(runs: int, tmp: Path, runner: str | None = None) -> dict:
    failed, unpublished, seconds, first_error = 0, 0, [], ""
    for i in range(runs):
        out = tmp / "main"
        t0 = time.perf_counter()
        r = subprocess.run(
            ["curate", "run", "pipelines/sharegpt.yaml", "--overwrite", "--output", str(out)]
            + (["--runner", runner] if runner else []),
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        seconds.append(time.perf_counter() - t0)
        ok_pub = _published(out)
        failed += r.returncode != 0
        unpublished += not ok_pub
        if (r.returncode != 0 or not ok_pub) and not first_error:
            first_error = (r.stderr.strip().splitlines() or ["(no output)"])[-1][:200]
        print(
            f"  {runner or 'default'} run {i + 1}/{runs}: exit {r.returncode}, published {ok_pub}, {seconds[-1]:.1f} s",
            flush=True,
        )
    what = (
        f"curate run pipelines/sharegpt.yaml --runner {runner}"
        if runner
        else "curate run pipelines/sharegpt.yaml (default runner)"
    )
    return {
        "what": what,
        "runs": runs,
        "failed": failed,
        "unpublished": unpublished,
        "median_s": sorted(seconds)[len(seconds) // 2] if seconds else 0,
        "first_error": first_error,
    }


def _cluster_jobs(jobs: int, tmp: Path) -> dict:
    failed, unpublished, seconds, first_error = 0, 0, [], ""
    with token_cluster(tmp) as (_, dashboard, env):
        job_env = dict(env, RAY_ADDRESS=dashboard)
        pipeline = (REPO / "pipelines" / "sharegpt.yaml").resolve()
        for i in range(jobs):
            out = tmp / "job"
            t0 = time.perf_counter()
            r = subprocess.run(
                [
                    "ray",
                    "job",
                    "submit",
                    "--",
                    sys.executable,
                    "-m",
                    "curate",
                    "run",
                    str(pipeline),
                    "--input",
                    str(REPO / "sample_data"),
                    "--output",
                    str(out),
                    "--overwrite",
                    "--runner",
                    "ray",
                ],
                env=job_env,
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            seconds.append(time.perf_counter() - t0)
            ok_pub = _published(out)
            failed += r.returncode != 0
            unpublished += not ok_pub
            if (r.returncode != 0 or not ok_pub) and not first_error:
                first_error = ((r.stderr + r.stdout).strip().splitlines() or ["(no output)"])[-1][:200]
            print(f"  job {i + 1}/{jobs}: exit {r.returncode}, published {ok_pub}, {seconds[-1]:.1f} s", flush=True)
    return {
        "what": "ray job submit -- python -m curate run (token-authenticated head)",
        "runs": jobs,
        "failed": failed,
        "unpublished": unpublished,
        "median_s": sorted(seconds)[len(seconds) // 2] if seconds else 0,
        "first_error": first_error,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--ray-runs", type=int, default=30, help="the same command with --runner ray (an embedded Ray)")
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--load", type=int, default=2, help="CPU-spinning processes beside the runs")
    args = ap.parse_args()
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.load)]
    for p in spinners:
        p.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = [_main_command(args.runs, Path(tmp))] if args.runs else []
            if args.ray_runs:
                rows.append(_main_command(args.ray_runs, Path(tmp), runner="ray"))
            if args.jobs:
                rows.append(_cluster_jobs(args.jobs, Path(tmp)))
    finally:
        stop.set()
        for p in spinners:
            p.join()
    print(f"\nCPU load beside the runs: {args.load} spinning process(es) on {os.cpu_count()} CPUs\n")
    print("| command | runs | non-zero exits | unpublished | median s | first failure |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['what']} | {r['runs']} | {r['failed']} | {r['unpublished']} | {r['median_s']:.1f} | {r['first_error'] or '-'} |"
        )


if __name__ == "__main__":
    main()
