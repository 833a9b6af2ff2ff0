"""Ray Data runner: the only module that imports ray.data.

Each piece of work (a shard of a segment, a partition of a global step) is one row of a small
dataset; map_batches runs the engine on it inside a Ray worker, which reads and writes its own
files, so no data passes through the driver. Segments whose steps hold a model run on an actor
pool, so each actor loads the model once; the rest run as tasks (worker processes are reused, and
the engine is cached per process).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import tempfile
import types
from contextlib import contextmanager

import numpy as np
import ray
import ray.data

from curate.engine import RunPlan, engine_for
from curate.errors import UserError


def _named(fn, label: str):
    """Ray names an operator (and its progress bar) after the function: show the steps."""
    fn.__name__ = fn.__qualname__ = label
    return fn


class _RayWithPromptWait(types.ModuleType):
    """The `ray` module as Ray Data's executor sees it, but for `wait` (see _schedule_promptly)."""

    def __getattr__(self, name):
        return getattr(ray, name)

    @staticmethod
    def wait(refs, *, num_returns=1, timeout=None, fetch_local=True):
        # Block until the first task is ready (or the timeout), then take every task ready by then:
        # the answer Ray's wait-for-all-with-a-timeout gives, without sleeping out the timeout.
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout, fetch_local=fetch_local)
        if not ready:
            return ready, refs
        return ray.wait(refs, num_returns=num_returns, timeout=0, fetch_local=fetch_local)


def _schedule_promptly() -> None:
    """Two places where Ray Data's executor leaves a 2-CPU run idle, mended (private APIs, guarded:
    if a Ray release changes them, nothing breaks, runs are only slower).

    - After each scheduling round it waits for *all* running tasks, up to 0.1 s
      (WAIT_FOR_TASK_COMPLETION_TIMEOUT_S), so a worker whose task ended sat idle until the timeout.
      Its module's `ray.wait` is made to return as soon as one task is ready. 40 tasks of 0.2 s on
      2 CPUs: 50 ms -> 16 ms between a worker's tasks, and the driver's CPU 0.9 -> 0.6 s (lowering
      the timeout to 0.02 s, as this runner did before, gave the same 50 ms: each round's Python
      work fills it; at 0.002 s, 18 ms but twice the driver's CPU).
    - It learns the cluster's CPUs from an actor's cached answer, re-read at most every
      GLOBAL_LIMITS_UPDATE_INTERVAL_S (1 s); until then it runs one task at a time. Every dataset
      execution (one per segment and per global step's resolve) started with ~1 s on one CPU.
      Lowered to 0.1 s: 10 tasks of 0.2 s on 2 CPUs went from 1.75 s to 1.28 s."""
    try:
        from ray.data._internal.execution import streaming_executor_state as state
        from ray.data._internal.execution.resource_manager import ResourceManager
    except ImportError:
        return
    if getattr(state, "ray", None) is ray:
        state.ray = _RayWithPromptWait("ray")
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
                _join(self.address, kwargs)
            else:
                # "local": a new embedded Ray, even when /tmp/ray/ray_current_cluster names a cluster
                # (a stale file sent a bare ray.init() to a dead address)
                ray.init(address="local", num_cpus=num_cpus, **kwargs)
                self._started_ray = True
        _schedule_promptly()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        for attr in ("enable_operator_progress_bars", "print_on_execution_start"):
            if hasattr(ctx, attr):
                setattr(ctx, attr, progress)
        ctx.execution_options.preserve_order = True
        # A worker's exception comes back as itself (inside RayTaskError.cause), not as a
        # UserCodeException whose cause is lost on the way: see _take_all.
        ctx.raise_original_map_exception = True

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
        return [json.loads(r["stats"]) for r in _take_all(ds)]

    def resolve_partitions(self, plan: RunPlan, step: int, partitions: list[int], label: str) -> None:
        if not partitions:
            return

        def resolve(batch: dict) -> dict:
            engine = engine_for(plan)
            return {"rows": np.array([engine.resolve_partition(step, int(p)) for p in batch["item"]])}

        _take_all(self._items(partitions).map_batches(_named(resolve, label), batch_size=1, num_cpus=1))

    def _cpus(self) -> int:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def close(self) -> None:
        # An embedded Ray we started is ours to stop; a cluster we joined (or a test's Ray) is not.
        if self._started_ray and ray.is_initialized():
            # Object references left in reference cycles (datasets, executor state) are freed now,
            # while Ray can take them, not by a later garbage collection after its core worker is gone.
            gc.collect()
            ray.shutdown()


def _take_all(ds) -> list[dict]:
    """Run the dataset. A UserError a worker raised (a broken rules file, a missing model) is raised
    here as itself, from RayTaskError.cause: the same one line as on the local runner."""
    try:
        return ds.take_all()
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, UserError):
            raise error.cause from None
        raise


@contextmanager
def _stderr_held():
    """Ray's C++ core retries a refused connection for ~20 s, printing a warning line per try to the
    process's stderr (file descriptor 2, out of Python's reach). Hold those lines aside; the list
    yielded receives them on exit, to show only if joining fails in a way curate cannot say in one line."""
    lines: list[bytes] = []
    with tempfile.TemporaryFile() as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines.append(held.read())


def _causes(error: BaseException | None):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def _check_reachable(address: str) -> None:
    """Ray retries a GCS address where nothing listens for minutes; a plain TCP connect says so in
    seconds. Only for host:port addresses (not ray://, auto, or a cluster found another way)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in address:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as error:
        raise UserError(
            f"Ray cluster at {address}: cannot connect ({error.strerror or error}); is `ray start --head` running there?"
        ) from None


def _refused_token(error: BaseException) -> bool:
    # Ray 2.60 raises AuthenticationError inside its GCS client, then reports it as the text of a
    # RuntimeError ("Last connection error: <traceback>"): the class name in that text is all that
    # is left of it.
    auth = ray.exceptions.AuthenticationError
    return isinstance(error, auth) or auth.__name__ in str(error)


def _join(address: str, kwargs: dict) -> None:
    """Join a running cluster; a wrong address or a missing token is the user's to fix: one line."""
    _check_reachable(address)
    failure = None
    with _stderr_held() as held:
        try:
            ray.init(address=address, **kwargs)
        except Exception as error:
            failure = error
    if failure is None:
        return
    if any(_refused_token(e) for e in _causes(failure)):
        raise UserError(
            f"Ray cluster at {address}: authentication token missing or incorrect; set RAY_AUTH_TOKEN to the "
            "cluster's token (or put it in ~/.ray/auth_token, or name its file in RAY_AUTH_TOKEN_PATH)"
        ) from None
    if isinstance(failure, ConnectionError):
        raise UserError(f"Ray cluster at {address}: cannot connect ({failure}); is `ray start --head` running there?") from None
    os.write(2, b"".join(held))
    raise failure
