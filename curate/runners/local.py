"""In-process runner for tests and debugging: the same pieces, one after another."""

from __future__ import annotations

from rich.progress import Progress

from curate.engine import RunPlan, engine_for


class LocalRunner:
    name = "local"

    def __init__(self, progress: bool = False):
        self.progress = progress

    def _each(self, items: list[int], label: str, fn) -> list:
        if not self.progress or not items:
            return [fn(i) for i in items]
        with Progress(transient=True) as bar:
            task = bar.add_task(label, total=len(items))
            out = []
            for i in items:
                out.append(fn(i))
                bar.advance(task)
            return out

    def run_shards(self, plan: RunPlan, segment: int, shards: list[int], label: str, actors: bool) -> list[dict]:
        engine = engine_for(plan)
        return self._each(shards, label, lambda s: engine.run_shard(segment, s))

    def resolve_partitions(self, plan: RunPlan, step: int, partitions: list[int], label: str) -> None:
        engine = engine_for(plan)
        self._each(partitions, label, lambda p: engine.resolve_partition(step, p))

    def close(self) -> None:
        pass
