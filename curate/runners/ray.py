"""Ray runner: the only module that imports Ray, and it uses Ray's public core API only
(tests/test_ray_public_api.py fails on any private name).

Each piece of work (a shard of a segment, a partition of a global step, a byte range to plan) is
one Ray task, submitted with the resources its steps declare (curate/steps/base.py, Resources);
the driver waits on them with `ray.wait` and holds no rows: workers read and write their own
files. Pieces whose steps hold a model or a GPU run on a pool of actors instead, one per worker
the cluster can fit, so a model loads once per actor and stays on the GPU Ray gave that actor.
Task workers are reused by Ray across tasks, and the engine is cached per process, so models a
task-step loads in setup() load once per worker process too.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import tempfile
import time
from collections import deque
from contextlib import contextmanager

import ray

from curate.errors import UserError
from curate.runners import Timeline, progress_bar
from curate.steps.base import Resources

# A worker that dies mid-piece (OOM kill, lost node) is retried; pieces write atomically under
# names fixed by the piece, so a retry rewrites the same files.
RETRIES = 3
# Calls queued on each actor: the next piece is already there when one ends.
ACTOR_QUEUE = 2


_SHARED: dict[str, object] = {}


def _shared(box: list):
    """The map's shared value (the run plan), fetched once per worker process, not once per piece.
    It travels as a reference inside a list, so Ray passes the reference instead of the value."""
    key = box[0].hex()
    if key not in _SHARED:
        _SHARED.clear()
        _SHARED[key] = ray.get(box[0])
    return _SHARED[key]


def _call(fn, box, item):
    """Run one piece; report which worker ran it, when, and on which GPUs (Ray's assignment)."""
    start = time.time()
    result = fn(_shared(box), item)
    return result, (ray.get_runtime_context().get_worker_id(), start, time.time(), ray.get_gpu_ids())


_task = ray.remote(_call)


class _Worker:
    """An actor of a pool: keeps its process (and the models its engine loaded) for a whole map."""

    def __init__(self, box: list):
        self.box = box

    def call(self, fn, item):
        return _call(fn, self.box, item)


_Actor = ray.remote(_Worker)


def _result(ref):
    """A piece's result; an exception raised in the worker is raised here, in the driver. A
    UserError comes back as itself (its one line), not as Ray's wrapper with the worker's traceback."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, UserError):
            raise e.cause from None
        raise


def _options(r: Resources) -> dict:
    opts = {"num_cpus": r.cpus, "num_gpus": r.gpus}
    if r.memory_gb:
        opts["memory"] = int(r.memory_gb * 2**30)
    return opts


class RayRunner:
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, progress: bool = False):
        self.address = address or os.environ.get("RAY_ADDRESS")
        self.progress = progress
        self.timeline = Timeline()
        self._started_ray = False
        self.gpu_ids: dict[str, list] = {}  # worker id -> the GPU ids Ray assigned it
        start = time.perf_counter()
        if not ray.is_initialized():
            # Worker logs stay in Ray's log files: a worker's error reaches the user once, as the
            # exception the driver re-raises. Ray's own warnings (deprecations) still show.
            kwargs = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
            if self.address:
                _join(self.address, kwargs)
            else:
                ray.init(
                    address="local", num_cpus=num_cpus, **kwargs
                )  # "local": our own, never a Ray that `ray start` left
                self._started_ray = True
        self.timeline.startup_seconds = time.perf_counter() - start

    def map(self, fn, shared, items: list, label: str, resources: Resources) -> list:
        if not items:
            return []
        self._check_fits(resources, label)
        box = [ray.put(shared)]  # once per map, not once per piece
        out: list = [None] * len(items)
        with self.timeline.map() as pieces, progress_bar(label, len(items), self.progress) as advance:
            if resources.actor:
                self._on_actors(fn, box, items, resources, out, pieces, advance)
            else:
                task = _task.options(**_options(resources), name=label, max_retries=RETRIES)
                running = {task.remote(fn, box, item): i for i, item in enumerate(items)}
                self._collect(running, out, pieces, advance, lambda ref: None)
        return out

    def _on_actors(self, fn, box, items, resources, out, pieces, advance) -> None:
        actor = _Actor.options(**_options(resources), max_restarts=RETRIES, max_task_retries=RETRIES)
        pool = [actor.remote(box) for _ in range(min(len(items), self._fits(resources)))]
        waiting = deque(range(len(items)))
        running: dict = {}
        owner: dict = {}
        unavailable = 0

        def feed(a) -> None:
            if waiting:
                i = waiting.popleft()
                ref = a.call.remote(fn, items[i])
                running[ref], owner[ref] = i, a

        def again(ref, i) -> bool:
            # An actor Ray could not reach (restarting after its process died, or slow to come up on
            # a loaded node) may or may not have run the piece; pieces are idempotent (atomic writes
            # under fixed names), so it runs again, up to RETRIES times per map.
            nonlocal unavailable
            unavailable += 1
            if unavailable > RETRIES * len(pool):
                return False
            waiting.appendleft(i)
            feed(owner.pop(ref))
            return True

        try:
            for a in pool:
                for _ in range(ACTOR_QUEUE):
                    feed(a)
            self._collect(running, out, pieces, advance, lambda ref: feed(owner.pop(ref)), again)
        finally:
            for a in pool:
                ray.kill(a)  # frees its CPUs and GPU for the next segment

    def _collect(self, running: dict, out: list, pieces: list, advance, on_done, again=None) -> None:
        """Wait for pieces as they finish (not in order); on a failure, cancel the rest and raise."""
        try:
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    i = running.pop(ref)
                    try:
                        result = _result(ref)
                    except ray.exceptions.ActorUnavailableError:
                        if again is not None and again(ref, i):
                            continue
                        raise
                    out[i], (worker, start, end, gpus) = result
                    pieces.append((worker, start, end))
                    self.gpu_ids[worker] = gpus
                    advance()
                    on_done(ref)
        except BaseException:
            for ref in running:
                ray.cancel(ref)
            raise

    def _fits(self, r: Resources) -> int:
        """How many workers with these needs the cluster holds at once."""
        total = ray.cluster_resources()
        n = int(total.get("CPU", 0) // r.cpus) if r.cpus else 1 << 20
        if r.gpus:
            n = min(n, int(total.get("GPU", 0) // r.gpus))
        if r.memory_gb:
            n = min(n, int(total.get("memory", 0) // (r.memory_gb * 2**30)))
        return n

    def _check_fits(self, r: Resources, label: str) -> None:
        if self._fits(r) < 1:
            total = ray.cluster_resources()
            raise UserError(
                f"{label}: one worker needs {r.cpus:g} CPU, {r.gpus:g} GPU, {r.memory_gb:g} GB of memory; the Ray cluster "
                f"has {total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU, {total.get('memory', 0) / 2**30:.1f} GB"
            )

    def timing(self) -> dict:
        return self.timeline.summary()

    def close(self) -> None:
        # An embedded Ray we started is ours to stop; a cluster we joined (or a test's Ray) is not.
        if self._started_ray and ray.is_initialized():
            # Object references left in reference cycles (a failed map's pieces) are freed now,
            # while Ray can take them, not by a later garbage collection after its core worker is gone.
            gc.collect()
            ray.shutdown()


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
        raise UserError(
            f"Ray cluster at {address}: cannot connect ({failure}); is `ray start --head` running there?"
        ) from None
    os.write(2, b"".join(held))
    raise failure
