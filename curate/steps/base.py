"""What a step is, and the one place that applies a step to a batch.

A step scores, then decides, then annotates. It sees only the rows still alive (no earlier step
rejected them) and returns them with its score columns and, for rows it rejects, a reason code.
`apply_map_step` owns the bookkeeping (alive/dead rows, drop columns, counts), so steps only
decide, and every step is a unit test on a three-row table without Ray.

Two kinds:
  MapStep     a function of one batch (html_to_markdown, language, ...).
  GlobalStep  needs all rows (dedup, ...): summarize each batch to a small table, resolve those
              per partition, finalize into decisions keyed by `_curate_key`, which the runner
              then applies to every batch. The runner, not the step, decides where each phase runs.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict

from curate.errors import UserError
from curate.schema import DROP_DETAIL, DROP_REASON, DROP_SPAN, DROP_STEP, DROP_TURN, KEY, alive_mask
from curate.stats import StepStats


class Params(BaseModel):
    """Base for every step's parameters: unknown keys are errors, limits live in the types."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _rules_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(
            f"{path}: file not found ({what}; the rules folder is set by `rules:` in the pipeline)"
        ) from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a file ({what})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: cannot read {what}: invalid UTF-8 at byte {e.start}") from None


def read_rules_yaml(path: Path, what: str, expect: type = dict):
    """Every YAML file under rules/ is read here: parsed, an empty file is an empty `expect`, and
    anything wrong (missing, unreadable, malformed, not a mapping) is one line naming the file, the
    line where there is one, and the problem."""
    text = _rules_text(path, what)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{where}: cannot read {what}: {problem}") from None
    if data is None:
        return expect()
    if not isinstance(data, expect):
        shape = "a mapping (key: value)" if expect is dict else f"a {expect.__name__}"
        raise UserError(f"{path}: {what} must be {shape}, not a {type(data).__name__}")
    return data


def read_rules_lines(path: Path, what: str) -> list[str]:
    """A word or phrase list under rules/: its non-blank lines, stripped (errors as read_rules_yaml)."""
    lines = [w.strip() for w in _rules_text(path, what).splitlines()]
    words = [w for w in lines if w]
    if not words:
        raise UserError(f"{path}: {what} is empty")
    return words


@dataclass(frozen=True)
class StepContext:
    """Where a step finds its data files and may cache things."""

    rules_dir: Path
    cache_dir: Path | None = None

    def rules_yaml(self, name: str, what: str, expect: type = dict):
        """A YAML file of the rules folder, through read_rules_yaml."""
        return read_rules_yaml(Path(self.rules_dir) / name, what, expect)


@dataclass(frozen=True)
class Resources:
    """What one worker needs to run a step, as data; the runner turns it into its resource requests.

    cpus, gpus: may be fractions (gpus: 0.5 lets two workers share one GPU; 1 never shares).
    memory_gb:  reserved per worker (0: no reservation).
    model:      setup() loads a model worth keeping loaded (a transformer): such workers live for a
                whole segment (a Ray actor), so the model loads once per worker.
    """

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.0
    model: bool = False

    @property
    def actor(self) -> bool:
        """The one rule for actor or task: a worker that holds a model or a GPU is an actor, so the
        model stays loaded and pinned to its device; everything else is a task."""
        return self.model or self.gpus > 0

    def __or__(self, other: Resources) -> Resources:
        """Needs of one worker that runs both steps in turn: the larger of each."""
        return Resources(
            max(self.cpus, other.cpus),
            max(self.gpus, other.gpus),
            max(self.memory_gb, other.memory_gb),
            self.model or other.model,
        )


@dataclass
class StepOutput:
    """A step's verdict on the live rows it was given.

    table:   the same rows in the same order, possibly rewritten, with score columns added
    reason:  per row, a reason code to reject it, or None to keep it (None alone: keep all)
    detail:  per row, optional free text for the report (what matched, which threshold)
    span:    per row, optional: the exact text that triggered the rule (highlighted in the report)
    turn:    per row, optional: the index of the turn it was found in
    counters: step-specific counts for stats.json (e.g. redactions per type)
    """

    table: pa.Table
    reason: list[str | None] | pa.Array | None = None
    detail: list[str | None] | pa.Array | None = None
    span: list[str | None] | pa.Array | None = None
    turn: list[int | None] | pa.Array | None = None
    counters: Counter = field(default_factory=Counter)


class Step:
    """Common to both kinds. Subclasses set `name`, `Params` and `columns`."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]] = Params
    # Score/annotation columns the step adds, with their types: declared so every output file has
    # the same schema even when a batch has no live rows.
    columns: ClassVar[dict[str, pa.DataType]] = {}
    # What one worker running this step needs; resources() may derive it from the params.
    default_resources: ClassVar[Resources] = Resources()

    def __init__(self, params: Params, ctx: StepContext):
        self.params = params
        self.ctx = ctx

    def setup(self) -> None:
        """Load heavy resources (models, indexes). Called once in each worker, never in the driver."""

    def output_columns(self) -> dict[str, pa.DataType]:
        """The columns this step adds; override when they depend on params."""
        return dict(self.columns)

    def resources(self) -> Resources:
        """What one worker running this step needs; override when params change it (a GPU device)."""
        return self.default_resources

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


class MapStep(Step):
    # A step that may change the number of rows (splitting) sets this and gives new rows new keys.
    changes_row_count: ClassVar[bool] = False

    def process(self, table: pa.Table) -> StepOutput:
        raise NotImplementedError


class GlobalStep(Step):
    """A step that needs every row: summarize -> resolve per partition -> finalize -> apply."""

    def num_partitions(self) -> int:
        return 8

    def summarize(self, live: pa.Table) -> pa.Table:
        """A small table per batch; must hold `_curate_key` and an int `_partition` column."""
        raise NotImplementedError

    def resolve_partition(self, summaries: pa.Table) -> pa.Table:
        """All summaries of one partition -> partial decisions (or whatever finalize needs)."""
        raise NotImplementedError

    def finalize(self, partials: list[pa.Table]) -> pa.Table:
        """Partial results -> decisions: `_curate_key`, reason, detail and the step's columns.

        Only rows the step has something to say about appear; they must be few (the removed rows),
        never every row."""
        return concat_or_empty(partials, self.decision_schema())

    def decision_schema(self) -> pa.Schema:
        fields = [
            pa.field(KEY, pa.int64()),
            pa.field(DROP_REASON, pa.string()),
            pa.field(DROP_DETAIL, pa.string()),
            pa.field(DROP_SPAN, pa.string()),
            pa.field(DROP_TURN, pa.int32()),
        ]
        fields += [pa.field(n, t) for n, t in self.output_columns().items()]
        return pa.schema(fields)


def set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """Replace (apply_map_step pre-creates declared columns as nulls) or add a column."""
    if name in table.column_names:
        return table.set_column(table.schema.get_field_index(name), name, values)
    return table.append_column(name, values)


def concat_or_empty(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """Concatenate to `schema`; optional columns a table lacks (span, turn) become nulls."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return schema.empty_table()
    out = []
    for t in tables:
        for f in schema:
            if f.name not in t.column_names:
                t = t.append_column(f.name, pa.nulls(t.num_rows, f.type))
        out.append(t.select(schema.names).cast(schema))
    return pa.concat_tables(out)


def _as_array(values, n: int, typ: pa.DataType = pa.string()) -> pa.Array:
    if values is None:
        return pa.nulls(n, typ)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    arr = values if isinstance(values, pa.Array) else pa.array(values, typ)
    if len(arr) != n:
        raise ValueError(f"step returned {len(arr)} verdicts for {n} rows")
    return arr.cast(typ)


def _ensure_columns(table: pa.Table, columns: dict[str, pa.DataType]) -> pa.Table:
    """Add the step's declared columns as nulls where missing, and cast them to their types."""
    for name, typ in columns.items():
        if name in table.column_names:
            idx = table.schema.get_field_index(name)
            if table.schema.field(idx).type != typ:
                table = table.set_column(idx, name, table.column(name).cast(typ))
        else:
            table = table.append_column(name, pa.nulls(table.num_rows, typ))
    return table


def _mark_dropped(table: pa.Table, step_name: str, out: StepOutput) -> tuple[pa.Table, pa.Array]:
    n = table.num_rows
    reason = _as_array(out.reason, n)
    dropped = reason.is_valid()
    cols = {
        DROP_STEP: pc.if_else(dropped, pa.scalar(step_name), pa.scalar(None, pa.string())),
        DROP_REASON: reason,
        DROP_DETAIL: _as_array(out.detail, n),
        DROP_SPAN: _as_array(out.span, n),
        DROP_TURN: _as_array(out.turn, n, pa.int32()),
    }
    for name, col in cols.items():
        if name != DROP_STEP and name != DROP_REASON:
            col = pc.if_else(dropped, col, pa.scalar(None, col.type))
        table = table.set_column(table.schema.get_field_index(name), name, col)
    return table, reason


def merge_live_and_dead(live: pa.Table, dead: pa.Table) -> pa.Table:
    """Put rows back in key order after the live ones were processed on their own."""
    if dead.num_rows == 0:
        return live
    if live.num_rows == 0:
        return dead
    merged = pa.concat_tables([live, dead.select(live.column_names).cast(live.schema)])
    return merged.take(pc.sort_indices(merged, sort_keys=[(KEY, "ascending")]))


def apply_map_step(step: MapStep, table: pa.Table) -> tuple[pa.Table, StepStats]:
    """Run a map step on the live rows of `table`; return the whole table and the step's counts."""
    start = time.perf_counter()
    columns = step.output_columns()
    table = _ensure_columns(table, columns)
    mask = alive_mask(table)
    all_alive = bool(mask.all())
    live = table if all_alive else table.filter(pa.array(mask))
    dead = table.slice(0, 0) if all_alive else table.filter(pa.array(~mask))
    stats = StepStats(rows_in=live.num_rows)
    if live.num_rows:
        out = step.process(live)
        result = _ensure_columns(out.table, columns)
        if not step.changes_row_count and result.num_rows != live.num_rows:
            raise RuntimeError(f"step {step.name} returned {result.num_rows} rows for {live.num_rows}")
        stats.rows_added = max(0, result.num_rows - live.num_rows)
        result, reason = _mark_dropped(result, step.name, out)
        stats.dropped = (
            Counter(r for r in reason.to_pylist() if r is not None) if reason.null_count < len(reason) else Counter()
        )
        stats.counters = Counter(out.counters)
        live = result
    stats.rows_kept = live.num_rows - stats.rows_dropped
    stats.seconds = time.perf_counter() - start
    return merge_live_and_dead(live, dead), stats


def apply_decisions(step: GlobalStep, table: pa.Table, decisions: pa.Table) -> tuple[pa.Table, StepStats]:
    """Join a global step's decisions onto a batch by `_curate_key`."""
    start = time.perf_counter()
    columns = step.output_columns()
    table = _ensure_columns(table, columns)
    mask = alive_mask(table)
    stats = StepStats(rows_in=int(mask.sum()))
    keys = table.column(KEY).to_numpy()
    if decisions.num_rows:
        dkeys = decisions.column(KEY).to_numpy()
        order = np.argsort(dkeys, kind="stable")
        sorted_keys = dkeys[order]
        pos = np.searchsorted(sorted_keys, keys)
        pos_clipped = np.minimum(pos, len(sorted_keys) - 1)
        hit = (sorted_keys[pos_clipped] == keys) & mask
        # For each row: the decision row that applies, or null.
        take = pa.array(np.where(hit, order[pos_clipped], 0), pa.int64())
        hit_arr = pa.array(hit)
        for name in columns:
            col = pc.if_else(hit_arr, decisions.column(name).take(take), table.column(name))
            table = table.set_column(table.schema.get_field_index(name), name, col)
        reason = pc.if_else(hit_arr, decisions.column(DROP_REASON).take(take), pa.scalar(None, pa.string()))
        reason = reason.combine_chunks() if isinstance(reason, pa.ChunkedArray) else reason
        # Rows already dead keep their first verdict.
        live_drop = pc.and_(reason.is_valid(), pa.array(mask))
        table = table.set_column(
            table.schema.get_field_index(DROP_STEP),
            DROP_STEP,
            pc.if_else(live_drop, pa.scalar(step.name), table.column(DROP_STEP)),
        )
        for name in (DROP_REASON, DROP_DETAIL, DROP_SPAN, DROP_TURN):
            col = pc.if_else(live_drop, decisions.column(name).take(take), table.column(name))
            table = table.set_column(table.schema.get_field_index(name), name, col)
        stats.dropped = Counter(r for r in reason.filter(live_drop).to_pylist())
    stats.rows_kept = stats.rows_in - stats.rows_dropped
    stats.seconds = time.perf_counter() - start
    return table, stats
