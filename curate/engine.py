"""The work of a run, cut into pieces a runner can schedule anywhere: no Ray in here.

The step list is cut at every global step into *segments*. A segment reads each shard (from the
input, or from the previous segment's output), applies the previous global step's decisions, runs
its map steps, and, if it ends at a global step, writes that step's summaries. Between segments the
global step resolves its summaries partition by partition and finalizes them into decisions.

Everything a piece writes goes to a file named by (segment, shard) or (step, partition), written
atomically, with the shard's stats beside it: a rerun with --resume skips pieces already done, and
any runner produces the same bytes.

Run directory while running (DIR/_work), moved into place at the end:
  seg<k>/shard-<s>.arrow         rows after segment k (all rows, rejected ones still marked)
  seg<k>/shard-<s>.stats.json    what that piece counted
  step<i>/summary/part-<p>/shard-<s>.arrow, step<i>/partial-<p>.arrow, step<i>/decisions.arrow
  (Arrow IPC files: see writers.write_work_atomic)
  out/kept, out/rejected, out/quarantine, out/kept_jsonl
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from curate.hugepages import disable_transparent_huge_pages
from curate.readers import MAX_RECORD_BYTES, SHARD_SHIFT, Shard, assemble, index_range, plan_ranges, read_shard
from curate.records import FieldNames
from curate.registry import get_step
from curate.report import distributions
from curate.resources import RULES_DIR
from curate.schema import DROP_COLUMNS, KEY, alive_mask, public_columns, published
from curate.stats import RunStats, StepStats
from curate.steps.base import GlobalStep, Resources, Step, StepContext, apply_decisions, apply_map_step, concat_or_empty
from curate.writers import atomic_path, read_work, write_jsonl, write_parquet_atomic, write_work_atomic

DEFAULT_RULES_DIR = RULES_DIR  # the rules shipped inside the package; `rules:` points elsewhere

# Map steps see at most this many rows at a time, whatever input.shard_rows is. Measured 2026-12-05
# (n20k, five-step recipe, one core): 10,000-row batches spent 4-5 s of 13 s CPU in the kernel, zeroing
# fresh transparent huge pages for each batch's transient arrays; 2,000-row batches 0.6 s.
MAP_BATCH_ROWS = 2000


@dataclass(frozen=True)
class Segment:
    index: int
    apply_global: int | None  # position of the global step whose decisions start this segment
    map_steps: tuple[int, ...]
    summarize: int | None  # position of the global step this segment ends at
    final: bool

    def label(self, names: list[str]) -> str:
        parts = [f"{names[self.apply_global]}:apply"] if self.apply_global is not None else ["read"]
        parts += [names[i] for i in self.map_steps]
        if self.summarize is not None:
            parts.append(f"{names[self.summarize]}:summarize")
        return "+".join(parts)


def plan_segments(kinds: list[bool]) -> list[Segment]:
    """kinds[i] is True for a global step. One segment per global step, plus the last."""
    segments: list[Segment] = []
    current: list[int] = []
    apply_global = None
    for pos, is_global in enumerate(kinds):
        if is_global:
            segments.append(Segment(len(segments), apply_global, tuple(current), pos, False))
            apply_global, current = pos, []
        else:
            current.append(pos)
    segments.append(Segment(len(segments), apply_global, tuple(current), None, True))
    return segments


@dataclass(frozen=True)
class RunPlan:
    """Everything a worker needs, picklable: sent once to every Ray worker."""

    steps: tuple[tuple[str, dict], ...]  # (name, params as JSON-able dict)
    shards: tuple[Shard, ...]
    work_dir: str
    rules_dir: str
    field_names: dict = field(default_factory=dict)
    output_format: str = "parquet"
    stats_by: str | None = "source"  # counts per value of this column (output.stats_by)
    fingerprint: str = ""  # of inputs + config + code version: what --resume trusts

    def segment_fingerprint(self, seg: Segment) -> str:
        """Changes when anything that segment's output depends on changes."""
        last = seg.summarize if seg.summarize is not None else len(self.steps) - 1
        h = hashlib.sha256(self.fingerprint.encode())
        h.update(json.dumps([list(s) for s in self.steps[: last + 1]], sort_keys=True).encode())
        return h.hexdigest()[:16]


def _write_json_atomic(path: Path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


class Engine:
    """Built once per worker process from a RunPlan; holds the steps (and their loaded models)."""

    def __init__(self, plan: RunPlan):
        self.plan = plan
        ctx = StepContext(rules_dir=Path(plan.rules_dir), cache_dir=Path(plan.work_dir) / "cache")
        self.steps: list[Step] = []
        for name, params in plan.steps:
            cls = get_step(name)
            self.steps.append(cls(cls.Params.model_validate(params), ctx))
        self.names = [s.name for s in self.steps]
        self.segments = plan_segments([isinstance(s, GlobalStep) for s in self.steps])
        self.work = Path(plan.work_dir)
        self._ready: set[int] = set()
        self._decisions: dict[int, pa.Table] = {}

    # ---------------------------------------------------------------- paths

    def seg_dir(self, seg: Segment) -> Path:
        return self.work / f"seg{seg.index}-{self.plan.segment_fingerprint(seg)}"

    def step_dir(self, pos: int) -> Path:
        seg = next(s for s in self.segments if s.summarize == pos)
        return self.work / f"step{pos}-{self.plan.segment_fingerprint(seg)}"

    def out_dir(self) -> Path:
        return self.work / "out"

    def shard_rows_path(self, seg: Segment, shard: int) -> Path:
        return self.seg_dir(seg) / f"shard-{shard:06d}.arrow"

    def partial_path(self, pos: int, partition: int) -> Path:
        return self.step_dir(pos) / f"partial-{partition:05d}.arrow"

    def shard_stats_path(self, seg: Segment, shard: int) -> Path:
        return self.seg_dir(seg) / f"shard-{shard:06d}.stats.json"

    # ---------------------------------------------------------------- pieces

    def _step(self, pos: int) -> Step:
        if pos not in self._ready:
            self.steps[pos].setup()
            self._ready.add(pos)
            # What a step sets up (models, tables, indexes and the modules they import: ~240k
            # objects) lives as long as the process: moved out of the cyclic collector's sight, so
            # that its full collections stop walking them (gen-2 collections, n20k default recipe:
            # 0.40 -> 0.12 s of CPU).
            gc.freeze()
        return self.steps[pos]

    def resources(self, seg: Segment) -> Resources:
        """What one worker running this segment needs: the larger need of each of its steps."""
        need = Resources()
        for pos in (seg.apply_global, *seg.map_steps, seg.summarize):
            if pos is not None:
                need = need | self.steps[pos].resources()
        return need

    def shard_done(self, seg: Segment, shard: int) -> bool:
        return self.shard_stats_path(seg, shard).exists()

    def run_shard(self, seg_index: int, shard_index: int) -> dict:
        """Run one segment on one shard; write its outputs and stats; return the stats."""
        disable_transparent_huge_pages()  # in whichever process runs it (see curate/hugepages.py)
        seg = self.segments[seg_index]
        shard = self.plan.shards[shard_index]
        stats = RunStats()
        if seg.index == 0:
            start = time.perf_counter()
            rows, quarantined = read_shard(shard, FieldNames(**self.plan.field_names), stats.read_counters)
            stats.rows_read = rows.num_rows + quarantined.num_rows
            stats.rows_quarantined = quarantined.num_rows
            if quarantined.num_rows:
                write_parquet_atomic(quarantined, self.out_dir() / "quarantine" / f"part-{shard.index:06d}.parquet")
            stats.read_seconds = time.perf_counter() - start
        else:
            prev = self.segments[seg.index - 1]
            rows = read_work(self.shard_rows_path(prev, shard.index))
        if seg.apply_global is not None:
            step = self._step(seg.apply_global)
            rows, st = apply_decisions(step, rows, self._shard_decisions(seg.apply_global, shard.index))
            stats.add_step(f"{seg.apply_global}:{step.name}", st)
        if seg.map_steps:
            rows = self._map_steps(seg, rows, stats)
        _inject_fault("before_write")
        start = time.perf_counter()
        if seg.summarize is not None:
            self._write_summaries(seg.summarize, shard.index, rows)
            stats.steps[f"{seg.summarize}:{self.names[seg.summarize]}"] = StepStats(seconds=time.perf_counter() - start)
            start = time.perf_counter()
        if seg.final:
            self._write_final(rows, shard.index, stats)
        else:
            write_work_atomic(rows, self.shard_rows_path(seg, shard.index))
        stats.write_seconds = time.perf_counter() - start
        result = stats.to_dict()
        _write_json_atomic(self.shard_stats_path(seg, shard.index), result)
        _inject_fault("after_shard")
        return result

    def _map_steps(self, seg: Segment, rows: pa.Table, stats: RunStats) -> pa.Table:
        """The segment's map steps, on slices of at most MAP_BATCH_ROWS rows: a shard is a unit of
        work and an output file, but the steps' transient arrays scale with the batch they are given
        (why the bound: MAP_BATCH_ROWS)."""
        pieces = []
        for start in range(0, max(rows.num_rows, 1), MAP_BATCH_ROWS):
            piece = rows.slice(start, MAP_BATCH_ROWS)
            for pos in seg.map_steps:
                step = self._step(pos)
                piece, st = apply_map_step(step, piece)  # type: ignore[arg-type]
                stats.add_step(f"{pos}:{step.name}", st)
            pieces.append(piece)
        return pieces[0] if len(pieces) == 1 else pa.concat_tables(pieces)

    def _write_summaries(self, pos: int, shard: int, rows: pa.Table) -> None:
        step = self._step(pos)
        assert isinstance(step, GlobalStep)
        mask = alive_mask(rows)
        live = rows if mask.all() else rows.filter(pa.array(mask))
        summary = step.summarize(live)
        base = self.step_dir(pos) / "summary"
        parts = summary.column("_partition").to_numpy() if summary.num_rows else []
        for p in range(step.num_partitions()):
            part = summary.filter(pa.array(parts == p)) if summary.num_rows else summary
            if part.num_rows:
                write_work_atomic(part, base / f"part-{p:05d}" / f"shard-{shard:06d}.arrow")

    def resolve_partition(self, pos: int, partition: int) -> int:
        """Resolve one partition of a global step's summaries; return rows written."""
        step = self._step(pos)
        assert isinstance(step, GlobalStep)
        folder = self.step_dir(pos) / "summary" / f"part-{partition:05d}"
        files = sorted(folder.glob("shard-*.arrow")) if folder.exists() else []
        tables = [read_work(f) for f in files]
        summaries = pa.concat_tables(tables) if tables else None
        result = step.resolve_partition(summaries) if summaries is not None else step.decision_schema().empty_table()
        write_work_atomic(result, self.partial_path(pos, partition))
        return result.num_rows

    def partition_done(self, pos: int, partition: int) -> bool:
        return self.partial_path(pos, partition).exists()

    def finalize(self, pos: int) -> int:
        """Partials -> one decisions file, sorted by key so shards can read their slice."""
        step = self._step(pos)
        assert isinstance(step, GlobalStep)
        partials = [read_work(self.partial_path(pos, p)) for p in range(step.num_partitions())]
        decisions = step.finalize(partials)
        decisions = concat_or_empty([decisions], step.decision_schema())
        decisions = decisions.take(pc.sort_indices(decisions, sort_keys=[(KEY, "ascending")]))
        write_work_atomic(decisions, self.decisions_path(pos))
        return decisions.num_rows

    def decisions_path(self, pos: int) -> Path:
        return self.step_dir(pos) / "decisions.arrow"

    def _shard_decisions(self, pos: int, shard: int) -> pa.Table:
        if pos not in self._decisions:
            self._decisions[pos] = read_work(self.decisions_path(pos))
        decisions = self._decisions[pos]
        keys = decisions.column(KEY)
        lo, hi = shard << SHARD_SHIFT, (shard + 1) << SHARD_SHIFT
        return decisions.filter(pc.and_(pc.greater_equal(keys, lo), pc.less(keys, hi)))

    def _write_final(self, rows: pa.Table, shard: int, stats: RunStats) -> None:
        mask = alive_mask(rows)
        kept = rows.filter(pa.array(mask)).select(public_columns(rows.schema))
        rejected_cols = public_columns(rows.schema) + list(DROP_COLUMNS)
        rejected = rows.filter(pa.array(~mask)).select(rejected_cols)
        out = self.out_dir()
        name = f"part-{shard:06d}"
        write_parquet_atomic(published(kept), out / "kept" / f"{name}.parquet")
        if rejected.num_rows:
            write_parquet_atomic(published(rejected), out / "rejected" / f"{name}.parquet")
        if self.plan.output_format != "parquet":
            write_jsonl(kept, out / "kept_jsonl" / f"{name}.jsonl", self.plan.output_format)
        stats.rows_kept = kept.num_rows
        stats.rows_rejected = rejected.num_rows
        stats.distributions = distributions.count(kept, "kept", self.plan.stats_by) + distributions.count(
            rejected, "rejected", self.plan.stats_by
        )


class Runner(Protocol):
    """Runs pieces of work; curate/runners has the local and the Ray one. It holds no step logic."""

    name: str

    def map(self, fn: Callable, shared, items: list, label: str, resources: Resources) -> list:
        """[fn(shared, item) for item in items], anywhere, each worker given `resources`; in order."""


def plan_input(
    runner: Runner, files: list[str], fmt: str, shard_rows: int, max_record_bytes: int = MAX_RECORD_BYTES
) -> list[Shard]:
    """Shards of the input: the driver cuts byte ranges from file sizes, the runner's workers find
    the record boundaries and counts in them (reading the input in parallel, next to it)."""
    ranges = plan_ranges(files, fmt, shard_rows, max_record_bytes)
    return assemble(ranges, runner.map(index_range, None, ranges, "plan", Resources()))


def run_shard(plan: RunPlan, item: tuple[int, int]) -> dict:
    """One piece: a segment on a shard, in whatever worker the runner chose."""
    return engine_for(plan).run_shard(*item)


def resolve_partition(plan: RunPlan, item: tuple[int, int]) -> int:
    """One piece: a partition of a global step's summaries."""
    return engine_for(plan).resolve_partition(*item)


def execute_plan(plan: RunPlan, runner: Runner, resume: bool, log: Callable[[str], None]) -> tuple[RunStats, int]:
    """The order of work: each segment on every shard not already done, then the global step it
    ends at, partition by partition, then its decisions. Returns the run's counts and how many
    shard pieces a resumed run found done."""
    engine = Engine(plan)  # the driver's copy: plans segments, finalizes global steps
    totals = RunStats()
    resumed = 0
    for seg in engine.segments:
        label = seg.label(engine.names)
        done = {s for s in range(len(plan.shards)) if resume and engine.shard_done(seg, s)}
        todo = [s for s in range(len(plan.shards)) if s not in done]
        resumed += len(done)
        log(
            f"[{seg.index + 1}/{len(engine.segments)}] {label}: {len(todo)} shard(s)"
            + (f", {len(done)} already done" if done else "")
        )
        results = runner.map(run_shard, plan, [(seg.index, s) for s in todo], label, engine.resources(seg))
        results += [json.loads(engine.shard_stats_path(seg, s).read_text()) for s in sorted(done)]
        for r in results:
            totals = totals + RunStats.from_dict(r)
        if seg.summarize is None:
            continue
        pos = seg.summarize
        step = engine.steps[pos]
        assert isinstance(step, GlobalStep)
        start = time.perf_counter()
        if not (resume and engine.decisions_path(pos).exists()):
            parts = [p for p in range(step.num_partitions()) if not (resume and engine.partition_done(pos, p))]
            runner.map(resolve_partition, plan, [(pos, p) for p in parts], f"{step.name}:resolve", step.resources())
            engine.finalize(pos)
        totals.add_step(f"{pos}:{step.name}", StepStats(seconds=time.perf_counter() - start))
    return totals, resumed


_shards_done_here = 0


def _inject_fault(point: str) -> None:
    """Fault injection for the crash/resume tests: CURATE_FAULT=after:N kills this process (kill -9)
    after its N-th finished shard; CURATE_FAULT=once:PATH kills it mid-shard, once (PATH marks it)."""
    spec = os.environ.get("CURATE_FAULT")
    if not spec:
        return
    kind, _, arg = spec.partition(":")
    global _shards_done_here
    if kind == "after" and point == "after_shard":
        _shards_done_here += 1
        if _shards_done_here >= int(arg):
            os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "once" and point == "before_write" and not os.path.exists(arg):
        Path(arg).touch()
        os.kill(os.getpid(), signal.SIGKILL)


# One Engine per worker process and plan: Ray reuses worker processes across tasks, so steps load
# their models once per process, not once per shard.
_ENGINES: dict[str, Engine] = {}


def engine_for(plan: RunPlan) -> Engine:
    key = plan.work_dir + plan.fingerprint
    if key not in _ENGINES:
        _ENGINES.clear()
        _ENGINES[key] = Engine(plan)
    return _ENGINES[key]
