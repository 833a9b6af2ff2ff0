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
    """Two private constants of Ray Data's executor that cost a 2-CPU run seconds, lowered.

    - It waits for *all* running tasks, up to WAIT_FOR_TASK_COMPLETION_TIMEOUT_S (0.1 s), before it
      schedules more: with ~1 s shards each worker sat idle 0.1-0.2 s per shard. Lowered to 0.02 s.
      On 1M rows, 2 CPUs, exact + near dedup, two runs each: ~105 s -> ~94 s.
    - It learns the cluster's CPUs from an actor's cached answer, re-read at most every
      GLOBAL_LIMITS_UPDATE_INTERVAL_S (1 s); until then it runs one task at a time. Every dataset
      execution (one per segment and per global step's resolve) started with ~1 s on one CPU.
      Lowered to 0.1 s: 10 tasks of 0.2 s on 2 CPUs went from 1.75 s to 1.28 s; the default
      exact + near dedup on 200k rows from ~27 s to ~23 s.
    If a Ray release drops either, nothing breaks; runs are only slower."""
    try:
        from ray.data._internal.execution import streaming_executor_state as state
        from ray.data._internal.execution.resource_manager import ResourceManager
    except ImportError:
        return
    if isinstance(getattr(state, "WAIT_FOR_TASK_COMPLETION_TIMEOUT_S", None), float):
        state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S = min(state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S, 0.02)
    if isinstance(getattr(ResourceManager, "GLOBAL_LIMITS_UPDATE_INTERVAL_S", None), (int, float)):
        ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S = min(ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S, 0.1)


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
