"""select: the budget is met exactly, ties and missing scores are ordered by input order, groups get
their own budgets, and local and Ray select the same rows."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curate.errors import UserError
from curate.steps.base import StepContext, apply_decisions
from curate.steps.select import Select
from tests.helpers import (
    REPO,
    assert_step_config_error,
    parquet_bytes,
    pipeline_yaml,
    read_dir,
    rows_table,
    run,
    run_global,
    write_jsonl,
)


def step(**kw) -> Select:
    return Select(Select.Params(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))


def table(scores, groups=None) -> pa.Table:
    t = rows_table([[("user", "q"), ("assistant", f"a{i}")] for i in range(len(scores))])
    t = t.append_column("quality_score", pa.array(scores, pa.float32()))
    if groups is not None:
        t = t.set_column(
            t.schema.get_field_index("source"), "source", pa.array(groups, pa.string())
        )  # a provenance column
    return t


def select(t: pa.Table, shards: int = 1, **kw):
    return run_global(step(**kw), t, shards)


def kept_ids(out: pa.Table) -> list[str]:
    return [i for i, r in zip(out.column("id").to_pylist(), out.column("_curate_drop_reason").to_pylist()) if r is None]


def test_top_rows_by_score_ties_by_input_order_nulls_last():
    out, st = select(table([0.5, 0.9, None, 0.1, 0.9, 0.3]), rows=3)
    assert kept_ids(out) == ["r0", "r1", "r4"]
    assert out.column("select_rank").to_pylist() == [3, 1, 6, 5, 2, 4]
    assert st.dropped == {"not_selected": 3}
    detail = out.column("_curate_drop_detail").to_pylist()
    assert detail[3] == "rank 5 of 6, score 0.1, budget 3" and detail[2] == "rank 6 of 6, score none, budget 3"


@pytest.mark.parametrize(("fraction", "kept"), [(0.1, 1), (0.25, 3), (0.0, 0), (1.0, 10), (None, 1)])
def test_fraction_rounds_half_up_and_is_exact(fraction, kept):
    out, st = select(table([float(i % 4) for i in range(10)]), shards=3, fraction=fraction)
    assert st.rows_kept == kept and st.rows_dropped == 10 - kept


def test_ascending_keeps_the_lowest():
    out, _ = select(table([3.0, 1.0, 2.0]), rows=1, ascending=True)
    assert kept_ids(out) == ["r1"]


def test_budget_per_group():
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    groups = ["a", "a", "a", "a", "b", "b", None, None]
    out, st = select(table(scores, groups), shards=2, rows=1, per="source", partitions=3)
    assert kept_ids(out) == ["r3", "r5", "r7"]
    out, st = select(table(scores, groups), fraction=0.5, per="source")
    assert kept_ids(out) == ["r2", "r3", "r5", "r7"]


def test_rows_over_the_live_count_keep_everything_and_dead_rows_do_not_count():
    t = table([0.3, 0.2, 0.1])
    t = t.set_column(t.schema.get_field_index("_curate_drop_step"), "_curate_drop_step", pa.array(["x", None, None]))
    s = step(rows=1)
    live = t.filter(pa.array([False, True, True]))
    out, st = apply_decisions(s, t, s.finalize([s.resolve_partition(s.summarize(live))]))
    assert st.rows_in == 2 and st.rows_kept == 1
    assert out.column("_curate_drop_reason").to_pylist() == [None, None, "not_selected"]
    out, st = select(table([0.3, 0.2]), rows=5)
    assert st.rows_kept == 2


def test_diversity_skips_rows_too_close_to_a_selected_one():
    t = rows_table(
        [
            [
                ("user", "How do I bake sourdough bread at home?"),
                ("assistant", "Mix flour, water and starter, let it rise, bake at 230 C."),
            ],
            [
                ("user", "How can I bake sourdough bread at home?"),
                ("assistant", "Mix flour, water and starter, let it rise, then bake at 230 C."),
            ],
            [("user", "What is the capital of France?"), ("assistant", "Paris.")],
            [("user", "Write a haiku about autumn."), ("assistant", "Leaves drift on cold wind.")],
        ]
    )
    t = t.append_column("quality_score", pa.array([0.9, 0.8, 0.7, 0.6], pa.float32()))
    out, st = run_global(step(rows=2, min_distance=0.1), t)
    assert kept_ids(out) == ["r0", "r2"] and st.rows_kept == 2
    detail = out.column("_curate_drop_detail").to_pylist()
    assert detail[1].startswith("rank 2 of 4, score 0.8, budget 2, too similar to r0 (cosine 0.9")
    assert detail[3] == "rank 4 of 4, score 0.6, budget 2"
    out, _ = run_global(step(rows=2), t)
    assert kept_ids(out) == ["r0", "r1"]  # without the constraint, the paraphrase is taken


def test_missing_or_text_score_column_is_one_line():
    with pytest.raises(UserError, match="select: score_column 'nope' is not a column; an earlier step must add it"):
        step(score_column="nope").summarize(table([0.1]))
    with pytest.raises(UserError, match="select: score_column 'id' holds string, not numbers"):
        step(score_column="id").summarize(table([0.1]))


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        ("{rows: 5, fraction: 0.5}", "steps[0]: rows and fraction are exclusive; set one of them"),
        ("{fraction: 1.5}", "steps[0].fraction: must be <= 1.0 (got 1.5)"),
        ("{rows: -1}", "steps[0].rows: must be >= 0 (got -1)"),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "select", step_yaml, message)


def corpus(tmp_path):
    recs = [
        {
            "instruction": f"Explain topic {i % 37}.",
            "input": "",
            "output": ("Detail. " * (i % 11)) + "\n".join(f"{k}. point" for k in range(i % 5)),
            "source": f"s{i % 3}",
        }
        for i in range(120)
    ]
    return write_jsonl(tmp_path / "in.jsonl", recs)


def test_local_and_ray_select_the_same_rows(tmp_path, ray_cluster):
    src = corpus(tmp_path)
    steps = "\n  - quality_score: {}\n  - select: {fraction: 0.1, min_distance: 0.02}"
    outs = {}
    for runner in ("local", "ray"):
        stats = run(
            pipeline_yaml(
                tmp_path / f"{runner}.yaml",
                src,
                tmp_path / runner,
                steps=steps,
                runner=runner,
                extra="  shard_rows: 17\n",
            )
        )
        assert stats["rows_kept"] == 12 and stats["rows_rejected"] == 108
        outs[runner] = parquet_bytes(tmp_path / runner)
        rejected = read_dir(tmp_path / runner / "rejected")
        assert set(rejected.column("_curate_drop_reason").to_pylist()) == {"not_selected"}
        kept = read_dir(tmp_path / runner / "kept")
        # score first: a rejected row scoring above a kept one was skipped for being too close to a
        # row already selected, and says so
        lowest_kept = min(kept.column("quality_score").to_pylist())
        for score, detail in zip(
            rejected.column("quality_score").to_pylist(), rejected.column("_curate_drop_detail").to_pylist()
        ):
            assert score <= lowest_kept or "too similar to" in detail
    assert outs["local"] == outs["ray"]
