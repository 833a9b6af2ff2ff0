"""Runners run the engine's pieces of work (shards, partitions) somewhere; they hold no step logic.

`auto` (the default) picks one from the input's size, the CPUs and whether a cluster was named;
`pick` is that rule, and the README explains the measurements behind it.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

from rich.progress import Progress

from curate.engine import Runner

# Embedded Ray costs its start-up (ray.init, worker processes, shutdown) before any work: ~10 s on
# this 2-CPU VM (benchmarks/README.md: 10.8 s for a 1-row input; 17-26 s when the VM is shared). One
# process runs the default pipeline at ~3 MB/s of ShareGPT JSONL (1M rows, 2.66 GB: 611 s on Ray's
# 2 CPUs at 1.4x), exact + near dedup alone at ~24 MB/s (112 s). Ray on n CPUs is ~0.75 n times as
# fast (1.48x on 2 at 1M rows). Ray pays once the local time T satisfies T (1 - 1/S) > start-up,
# S = 0.75 n: input bytes > 10 s x 3 MB/s x S/(S-1): 90 MB on 2 CPUs, ~33 MB on 16. The rate is the
# default pipeline's, so a dedup-only run of 90-720 MB goes to Ray where one process would be about
# as fast (measured: benchmarks/README.md).
RAY_STARTUP_S = 10.0
LOCAL_MB_PER_S = 3.0
RAY_SPEEDUP_PER_CPU = 0.75


def auto_threshold_bytes(cpus: int) -> float:
    """Input bytes above which embedded Ray beats one process on `cpus` CPUs (inf: never)."""
    speedup = RAY_SPEEDUP_PER_CPU * cpus
    if speedup <= 1:
        return float("inf")
    return RAY_STARTUP_S * LOCAL_MB_PER_S * 1e6 * speedup / (speedup - 1)


def pick(kind: str, address: str | None, input_bytes: int, cpus: int | None) -> str:
    """`local` or `ray` for runner `kind`: an address (or RAY_ADDRESS) means a cluster: Ray; else,
    under `auto`, local while the input is too small for Ray's start-up to pay for itself."""
    if kind != "auto":
        return kind
    if address or os.environ.get("RAY_ADDRESS"):
        return "ray"
    return "ray" if input_bytes > auto_threshold_bytes(cpus or os.cpu_count() or 1) else "local"


def make_runner(kind: str, address: str | None = None, num_cpus: int | None = None, progress: bool = False) -> Runner:
    if kind == "local":
        from curate.runners.local import LocalRunner

        return LocalRunner(progress=progress)
    if address or os.environ.get("RAY_ADDRESS"):
        _use_token_if_given()
    from curate.runners.ray import RayRunner

    return RayRunner(address=address, num_cpus=num_cpus, progress=progress)


@contextmanager
def progress_bar(label: str, total: int, enabled: bool):
    """One bar per map, named after its steps; yields `advance()`."""
    if not enabled or not total:
        yield lambda: None
        return
    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


class Timeline:
    """When each piece ran and on which worker, to print where a runner's time goes: the gap
    between one worker's consecutive pieces, and how long each map waited for its first piece."""

    def __init__(self):
        self.startup_seconds = 0.0
        self.maps: list[tuple[float, list[tuple[object, float, float]]]] = []  # (submitted, [(worker, start, end)])

    @contextmanager
    def map(self):
        pieces: list[tuple[object, float, float]] = []
        self.maps.append((time.time(), pieces))
        yield pieces

    def summary(self) -> dict:
        gaps, first = [], []
        for submitted, pieces in self.maps:
            if not pieces:
                continue
            first.append(min(p[1] for p in pieces) - submitted)
            by_worker: dict[object, list[tuple[float, float]]] = {}
            for worker, start, end in pieces:
                by_worker.setdefault(worker, []).append((start, end))
            for runs in by_worker.values():
                runs.sort()
                gaps += [b[0] - a[1] for a, b in zip(runs, runs[1:])]
        ms = lambda xs, q: (
            round(1000 * statistics.quantiles(xs, n=10)[q] if len(xs) > 1 else 1000 * xs[0], 1) if xs else None
        )  # noqa: E731
        return {
            "startup_s": round(self.startup_seconds, 3),
            "maps": len(self.maps),
            "pieces": sum(len(p) for _, p in self.maps),
            "gap_ms_median": round(1000 * statistics.median(gaps), 1) if gaps else None,
            "gap_ms_p90": ms(gaps, 8),
            "first_piece_ms_median": round(1000 * statistics.median(first), 1) if first else None,
        }


def _use_token_if_given() -> None:
    """Ray (2.5x) clusters may require a token, and a driver sends one only in RAY_AUTH_MODE=token,
    which Ray reads when it is imported. A user who gave a token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH
    or ~/.ray/auth_token) means to use it: turn the mode on for them. A cluster without
    authentication accepts a driver that sends a token, so this never locks anyone out."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    if os.environ.get("RAY_AUTH_TOKEN") or Path(token_file).is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
