"""Run ../shared/bench (the peer harness) with curate registered as one of its tools.

The harness reads its tool registry from beside itself, so this makes a scratch copy of it at run
time (nothing of it is copied into this repository), drops benchmarks/dedup/curate_adapter.py in as
its curate adapter, registers curate entries, and calls its run_peers.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(os.environ.get("CURATE_BENCH", REPO.parent / "shared" / "bench"))

# name -> (kind, threads, adapter args)
CURATE_TOOLS = {
    "curate": ("dedup", 1, ["--steps", "dedup", "--src", str(REPO)]),
    "curate-2cpu": ("dedup", 2, ["--steps", "dedup", "--src", str(REPO)]),
    "curate-ray1cpu": ("dedup", 1, ["--steps", "dedup", "--runner", "ray", "--src", str(REPO)]),  # Ray's own scaling
    "curate-decon": ("decon", 1, ["--steps", "decontam", "--src", str(REPO)]),
}
# Another checkout of curate (e.g. `git worktree add /tmp/base <commit>`) as a tool on 2 CPUs: an older
# runner measured beside this one in the same run.
if os.environ.get("CURATE_BASELINE_SRC"):
    CURATE_TOOLS["curate-baseline-2cpu"] = (
        "dedup",
        2,
        ["--steps", "dedup", "--src", os.environ["CURATE_BASELINE_SRC"]],
    )


def harness_copy() -> Path:
    dst = Path(tempfile.mkdtemp(prefix="curate-bench-"))
    shutil.copytree(BENCH, dst / "bench", ignore=shutil.ignore_patterns("results", "__pycache__"))
    shutil.copy(REPO / "benchmarks" / "dedup" / "curate_adapter.py", dst / "bench" / "tools" / "curate_adapter.py")
    reg = json.loads((dst / "bench" / "tools.json").read_text())
    for name, (kind, threads, args) in CURATE_TOOLS.items():
        reg[name] = {
            "kind": kind,
            "python": sys.executable,
            "script": "tools/curate_adapter.py",
            "args": args,
            "threads": threads,
            "enabled": True,
        }
    (dst / "bench" / "tools.json").write_text(json.dumps(reg, indent=1))
    return dst / "bench"


def run_peers(
    corpus: Path, tools: list[str], results: Path, rounds: int = 1, ref: str | None = None, timeout: int = 3600
) -> dict:
    """Run the tools on one corpus, interleaved; return the harness's summary.json."""
    bench = harness_copy()
    cmd = [
        sys.executable,
        str(bench / "run_peers.py"),
        "--corpus",
        str(corpus),
        "--rounds",
        str(rounds),
        "--tools",
        ",".join(tools),
        "--results",
        str(results),
        "--timeout",
        str(timeout),
    ]
    if ref:
        cmd += ["--ref", ref]
    subprocess.run(cmd, check=True)
    shutil.rmtree(bench.parent, ignore_errors=True)
    return json.loads((results / "summary.json").read_text())["tools"]


def make_corpus(n: int, out: Path, *extra: str) -> Path:
    if not (out / "corpus.jsonl").exists():
        subprocess.run(
            [sys.executable, str(BENCH / "make_corpus.py"), "--n", str(n), "--out", str(out), *extra], check=True
        )
    return out
