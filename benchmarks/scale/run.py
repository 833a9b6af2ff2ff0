"""The default pipeline at scale: rows/s, peak RSS of the process tree, and resume after a kill at 80%.

    python3 ../shared/bench/make_corpus.py --n 200000 --out /tmp/bench/data/n200k
    python benchmarks/scale/run.py /tmp/bench/data/n200k [--pipeline pipelines/sharegpt.yaml] [--runner ray]

For each corpus: (1) an uninterrupted run; (2) a run killed with SIGKILL (the driver and every Ray
process it started) once 80% of its pieces of work are done; (3) `--resume` of that run, timed, and
its kept set compared byte for byte with (1).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline_overhead import run_measured


def _cmd(pipeline: Path, corpus: Path, out: Path, runner: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "curate",
        "run",
        str(pipeline),
        "--input",
        str(corpus),
        "--output",
        str(out),
        "--runner",
        runner,
        "--no-progress",
        *extra,
    ]


def _pieces(out: Path) -> int:
    work = out / "_work"
    return sum(1 for _ in work.glob("seg*/shard-*.stats.json")) if work.exists() else 0


def _kill_at(cmd: list[str], out: Path, total_pieces: int, fraction: float) -> float:
    """Start the run, SIGKILL its whole process group when `fraction` of the pieces are done."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    target = max(1, int(total_pieces * fraction))
    while proc.poll() is None and _pieces(out) < target:
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # Ray processes that outlive their driver would skew the next measurement.
    for p in psutil.process_iter(["cmdline"]):
        if p.info["cmdline"] and any("ray" in c and "session_" in c for c in p.info["cmdline"][:3]):
            try:
                p.kill()
            except psutil.Error:
                pass
    return time.perf_counter() - start


def _kept(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "kept").glob("*.parquet"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpora", nargs="+", type=Path)
    ap.add_argument("--pipeline", type=Path, default=Path("pipelines/sharegpt.yaml"))
    ap.add_argument("--runner", default="ray", choices=["ray", "local"])
    ap.add_argument("--kill-at", type=float, default=0.8)
    args = ap.parse_args()
    table = []
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        for corpus in args.corpora:
            src = corpus / "corpus.jsonl"
            full = Path(tmp) / f"{corpus.name}-full"
            wall, rss, _ = run_measured(_cmd(args.pipeline, src, full, args.runner, "--overwrite"))
            stats = json.loads((full / "stats.json").read_text())
            total = stats["shards"] * _segments(full)
            crashed = Path(tmp) / f"{corpus.name}-crash"
            killed_after = _kill_at(
                _cmd(args.pipeline, src, crashed, args.runner, "--overwrite"), crashed, total, args.kill_at
            )
            done = _pieces(crashed)
            rwall, rrss, _ = run_measured(_cmd(args.pipeline, src, crashed, args.runner, "--resume"))
            rstats = json.loads((crashed / "stats.json").read_text())
            identical = _kept(full) == _kept(crashed)
            table.append((corpus.name, stats, wall, rss, killed_after, done, total, rwall, rrss, rstats, identical))
    print(f"runner: {args.runner}, pipeline: {args.pipeline}")
    print(
        "| corpus | rows in | kept | rejected | quarantined | wall s | rows/s | peak RSS MB (tree) "
        "| killed at (pieces done / total, s) | resume wall s | resume peak RSS MB | resumed pieces | kept identical |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|")
    for name, s, wall, rss, killed, done, total, rwall, rrss, rs, same in table:
        print(
            f"| {name} | {s['rows_in']:,} | {s['rows_kept']:,} | {s['rows_rejected']:,} | {s['rows_quarantined']:,} "
            f"| {wall:.1f} | {s['rows_in'] / wall:,.0f} | {rss:,.0f} | {done}/{total} after {killed:.1f} s "
            f"| {rwall:.1f} | {rrss:,.0f} | {rs['resumed_shards']} | {same} |"
        )


def _segments(run_dir: Path) -> int:
    """Segments = global steps + 1 (read from the resolved pipeline)."""
    import yaml

    from curate.registry import all_steps
    from curate.steps.base import GlobalStep

    steps = yaml.safe_load((run_dir / "pipeline.yaml").read_text())["steps"]
    registry = all_steps()
    return 1 + sum(1 for s in steps if issubclass(registry[next(iter(s))], GlobalStep))


if __name__ == "__main__":
    main()
