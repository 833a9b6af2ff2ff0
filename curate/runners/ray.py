"""Ray Data runner: the only module that imports ray.data.

Each piece of work (a shard of a segment, a partition of a global step) is one row of a small
dataset; map_batches runs the engine on it inside a Ray worker, which reads and writes its own
files, so no data passes through the driver. Segments whose steps hold a model run on an actor
pool, so each actor loads the model once; the rest run as tasks (worker processes are reused, and
the engine is cached per process).
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import ray
import ray.data

from curate.engine import RunPlan, engine_for


def _named(fn, label: str):
    """Ray names an operator (and its progress bar) after the function: show the steps."""
    fn.__name__ = fn.__qualname__ = label
    return fn


def _schedule_promptly() -> None:
    """Let Ray Data hand a free CPU its next shard within ~20 ms instead of ~100 ms.

    Its executor waits for *all* running tasks, up to WAIT_FOR_TASK_COMPLETION_TIMEOUT_S (0.1 s),
    before it schedules more; with ~1 s shards that left each worker idle 0.1-0.2 s per shard.
    Measured on 1M rows, 2 CPUs, exact + near dedup, two runs each: ~105 s -> ~94 s (the executor's
    loop costs the driver a little more CPU). A private constant of the driver's Ray: if a release drops it,
    nothing breaks, runs are only slower."""
    try:
        from ray.data._internal.execution import streaming_executor_state as state
    except ImportError:
        return
    if isinstance(getattr(state, "WAIT_FOR_TASK_COMPLETION_TIMEOUT_S", None), float):
        state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S = min(state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S, 0.02)


class _SegmentActor:
    """One per actor: the engine (and its models) survives across shards.

    The plan and segment are class attributes of a subclass made per segment, not constructor
    arguments: Ray keeps constructor arguments in the object store and warns on every actor."""

    plan: RunPlan
    segment: int

    def __init__(self):
        self.engine = engine_for(self.plan)

    def __call__(self, batch: dict) -> dict:
        out = [json.dumps(self.engine.run_shard(self.segment, int(s))) for s in batch["item"]]
        return {"stats": np.array(out, dtype=object)}


class RayRunner:
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, progress: bool = False):
        self.address = address or os.environ.get("RAY_ADDRESS")
        self.num_cpus = num_cpus
        self._started_ray = False
        # Ray's chatter (auth tokens, "execution finished", its own copy of a task's traceback) is noise
        # in a CLI: errors reach the user once, through the exception the driver re-raises.
        logging.getLogger("ray").setLevel(logging.ERROR)
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(num_cpus=num_cpus, **kwargs)
                self._started_ray = True
        _schedule_promptly()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        for attr in ("enable_operator_progress_bars", "print_on_execution_start"):
            if hasattr(ctx, attr):
                setattr(ctx, attr, progress)
        ctx.execution_options.preserve_order = True

    def _items(self, items: list[int]):
        return ray.data.from_items([{"item": i} for i in items], override_num_blocks=len(items))

    def run_shards(self, plan: RunPlan, segment: int, shards: list[int], label: str, actors: bool) -> list[dict]:
        if not shards:
            return []
        ds = self._items(shards)
        if actors:
            cls = type(label, (_SegmentActor,), {"plan": plan, "segment": segment})
            ds = ds.map_batches(cls, batch_size=1,
                                concurrency=(1, self._cpus()), num_cpus=1)
        else:
            def run(batch: dict) -> dict:
                engine = engine_for(plan)
                out = [json.dumps(engine.run_shard(segment, int(s))) for s in batch["item"]]
                return {"stats": np.array(out, dtype=object)}

            ds = ds.map_batches(_named(run, label), batch_size=1, num_cpus=1)
        return [json.loads(r["stats"]) for r in ds.take_all()]

    def resolve_partitions(self, plan: RunPlan, step: int, partitions: list[int], label: str) -> None:
        if not partitions:
            return

        def resolve(batch: dict) -> dict:
            engine = engine_for(plan)
            return {"rows": np.array([engine.resolve_partition(step, int(p)) for p in batch["item"]])}

        self._items(partitions).map_batches(_named(resolve, label), batch_size=1, num_cpus=1).take_all()

    def _cpus(self) -> int:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def close(self) -> None:
        # An embedded Ray we started is ours to stop; a cluster we joined (or a test's Ray) is not.
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
