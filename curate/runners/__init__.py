"""Runners schedule the engine's pieces (shards, partitions); they hold no step logic."""

from __future__ import annotations

from typing import Protocol

from curate.engine import RunPlan


class Runner(Protocol):
    name: str

    def run_shards(self, plan: RunPlan, segment: int, shards: list[int], label: str, actors: bool) -> list[dict]:
        """Run one segment on these shards; return each shard's stats."""

    def resolve_partitions(self, plan: RunPlan, step: int, partitions: list[int], label: str) -> None:
        """Resolve a global step's summaries, one partition per task."""

    def close(self) -> None: ...


def make_runner(kind: str, address: str | None = None, num_cpus: int | None = None, progress: bool = False) -> Runner:
    if kind == "local":
        from curate.runners.local import LocalRunner

        return LocalRunner(progress=progress)
    from curate.runners.ray import RayRunner

    return RayRunner(address=address, num_cpus=num_cpus, progress=progress)
