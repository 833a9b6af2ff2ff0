"""Small builders shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.readers import row_key, rows_to_table

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"


def rows_table(conversations: list[list[tuple[str, str]]], ids: list[str] | None = None) -> pa.Table:
    """Canonical rows from [[(role, text), ...], ...]: what a step sees, without reading files."""
    rows = []
    for i, conv in enumerate(conversations):
        rows.append(
            {
                "id": ids[i] if ids else f"r{i}",
                "messages": [{"role": r, "content": t, "original_role": r} for r, t in conv],
                "source_file": "test",
                "source_index": i,
                "extra": None,
                "_curate_key": row_key(0, i),
            }
        )
    return rows_to_table(rows)


def texts(table: pa.Table) -> list[list[str]]:
    return [[m["content"] for m in conv] for conv in table.column("messages").to_pylist()]


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_dir(path: Path) -> pa.Table | None:
    files = sorted(Path(path).glob("*.parquet"))
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def parquet_bytes(run_dir: Path, folder: str = "kept") -> dict[str, bytes]:
    """A run's output files (`kept` or `rejected`) by name, byte for byte: what determinism compares."""
    return {p.name: p.read_bytes() for p in sorted((Path(run_dir) / folder).glob("*.parquet"))}


def pipeline_yaml(
    path: Path, input_path, output_path, steps: str = "[]", runner: str = "local", extra: str = ""
) -> Path:
    """Write a pipeline YAML; `steps` is YAML text for the steps list."""
    if isinstance(input_path, (list, tuple)):
        inp = "[" + ", ".join(json.dumps(str(p)) for p in input_path) + "]"
    else:
        inp = json.dumps(str(input_path))
    path.write_text(
        f"input:\n  path: {inp}\n{extra}output:\n  path: {json.dumps(str(output_path))}\n"
        f"runner:\n  type: {runner}\nsteps: {steps}\n",
        encoding="utf-8",
    )
    return path


def run(yaml_path: Path, runner: str | None = None, **kw) -> dict:
    """Run a pipeline in-process (the same code `curate run` calls); return stats.json."""
    from curate.config import load_pipeline
    from curate.run import execute

    result = execute(load_pipeline(str(yaml_path)), runner_kind=runner, log=lambda m: None, **kw)
    stats = json.loads((result.run_dir / "stats.json").read_text())
    assert_identity(stats)
    return stats


def assert_identity(stats: dict) -> None:
    assert stats["rows_in"] + stats["rows_added"] == (
        stats["rows_kept"] + stats["rows_rejected"] + stats["rows_quarantined"]
    ), stats


def assert_step_config_error(tmp_path: Path, step: str, step_yaml: str, message: str) -> None:
    """`- step: step_yaml` as the only step must fail validation with exactly `file:8: message`."""
    import pytest

    from curate.config import load_pipeline
    from curate.errors import UserError

    path = pipeline_yaml(
        tmp_path / "p.yaml", tmp_path / "in.jsonl", tmp_path / "out", steps=f"\n  - {step}: {step_yaml}"
    )
    with pytest.raises(UserError) as e:
        load_pipeline(str(path))
    assert str(e.value) == f"{path}:8: {message}"


def run_global(step, table: pa.Table, shards: int = 1):
    """A global step's three phases on `table` cut into `shards` batches, as the engine runs them:
    (table with decisions applied, the step's stats)."""
    import pyarrow.compute as pc

    from curate.steps.base import apply_decisions, concat_or_empty

    n = table.num_rows
    summaries = [
        step.summarize(table.slice(i * n // shards, (i + 1) * n // shards - i * n // shards)) for i in range(shards)
    ]
    partials = [
        step.resolve_partition(pa.concat_tables([s.filter(pc.equal(s.column("_partition"), p)) for s in summaries]))
        for p in range(step.num_partitions())
    ]
    return apply_decisions(step, table, concat_or_empty([step.finalize(partials)], step.decision_schema()))
