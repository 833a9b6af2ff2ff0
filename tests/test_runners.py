"""Local and Ray runners: same bytes, every time; exact_dedup removes exactly the planted copies."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import REPO, SHARED_DATA, parquet_bytes, pipeline_yaml, read_dir, run


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Real ShareGPT rows with planted exact and whitespace/case copies, over several shards."""
    tmp = tmp_path_factory.mktemp("planted")
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt_llamafactory_glaive_toolcall_en_demo.json").read_text())
    # The source file has natural exact duplicates (see shared/data/README.md); keep one of each.
    seen, unique = set(), []
    for r in rows:
        key = json.dumps(r["conversations"], sort_keys=True).lower()
        if key not in seen:
            seen.add(key)
            unique.append(r)
    records = [{"id": f"u{i}", **r} for i, r in enumerate(unique)]
    planted_ids = []
    for i in range(0, len(unique), 7):
        copy = json.loads(json.dumps(records[i]))
        copy["id"] = f"copy{i}"
        if i % 2:  # whitespace and case only: still an exact duplicate after normalisation
            for m in copy["conversations"]:
                if m["from"] != "function_call":  # a call's JSON keys are not prose
                    m["value"] = "  " + m["value"].upper().replace(" ", "   ") + " "
        records.append(copy)
        planted_ids.append(copy["id"])
    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    return tmp, src, planted_ids, len(records)


def _yaml(tmp, src, name, runner="local"):
    return pipeline_yaml(
        tmp / f"{name}.yaml", src, tmp / name, "[{exact_dedup: {partitions: 4}}]", runner, extra="  shard_rows: 40\n"
    )


def test_exact_dedup_removes_exactly_the_planted_copies(planted):
    tmp, src, planted_ids, n = planted
    stats = run(_yaml(tmp, src, "local1"))
    rejected = read_dir(tmp / "local1" / "rejected")
    assert sorted(rejected.column("id").to_pylist()) == sorted(planted_ids)
    for r in rejected.to_pylist():
        assert r["_curate_drop_step"] == "exact_dedup"
        assert r["_curate_drop_reason"] == "exact_duplicate"
        assert r["duplicate_of"] == "u" + r["id"].removeprefix("copy")
    assert stats["rows_in"] == n and stats["rows_rejected"] == len(planted_ids)
    assert stats["shards"] > 3  # the copies live in other shards than their sources
    step = stats["steps"][0]
    assert step["step"] == "exact_dedup" and step["dropped"] == {"exact_duplicate": len(planted_ids)}


def test_two_local_runs_are_byte_identical(planted):
    tmp, src, _, _ = planted
    run(_yaml(tmp, src, "det_a"))
    run(_yaml(tmp, src, "det_b"))
    assert parquet_bytes(tmp / "det_a") == parquet_bytes(tmp / "det_b")
    assert parquet_bytes(tmp / "det_a")


def test_ray_runner_matches_local_byte_for_byte(planted, ray_cluster):
    tmp, src, _, _ = planted
    local = run(_yaml(tmp, src, "cmp_local"))
    ray_stats = run(_yaml(tmp, src, "cmp_ray", runner="ray"))
    assert ray_stats["runner"] == "ray"
    assert parquet_bytes(tmp / "cmp_local") == parquet_bytes(tmp / "cmp_ray")
    rejected_local = sorted(p.read_bytes() for p in (tmp / "cmp_local" / "rejected").glob("*.parquet"))
    rejected_ray = sorted(p.read_bytes() for p in (tmp / "cmp_ray" / "rejected").glob("*.parquet"))
    assert rejected_local == rejected_ray
    for key in ("rows_in", "rows_kept", "rows_rejected", "rows_quarantined"):
        assert local[key] == ray_stats[key]


def test_run_directory_layout(planted):
    tmp, src, _, _ = planted
    run(_yaml(tmp, src, "layout"))
    out = tmp / "layout"
    assert {p.name for p in out.iterdir()} >= {"kept", "rejected", "stats.json", "pipeline.yaml", "manifest.json"}
    assert not (out / "_work").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["inputs"][0]["sampled_sha256"] and manifest["inputs"][0]["bytes"] == src.stat().st_size
    assert manifest["versions"]["pyarrow"]
    kept = read_dir(out / "kept")
    assert not [c for c in kept.column_names if c.startswith("_curate_")]
    assert {"id", "messages", "tools", "source_file", "source_index", "source", "extra"} <= set(kept.column_names)


def test_jsonl_output_round_trips(planted, tmp_path):
    """output.format: sharegpt writes kept rows back in the input's own shape."""
    _, src, _, _ = planted
    y = pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", "[{exact_dedup: {}}]", extra="")
    y.write_text(y.read_text().replace("output:\n", "output:\n  format: sharegpt\n"))
    stats = run(y)
    lines = [
        json.loads(line)
        for f in sorted((tmp_path / "out" / "kept_jsonl").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert len(lines) == stats["rows_kept"]
    original = {json.loads(line)["id"]: json.loads(line) for line in src.read_text().splitlines()}
    for rec in lines[:50]:
        assert rec == original[rec["id"]]


def test_user_error_raised_in_a_ray_worker_is_one_line(ray_cluster):
    """A UserError raised inside a worker (e.g. a model file missing on that node), in a task or
    on an actor, is raised in the driver as itself: its one line."""
    from curate.cli import _user_facing
    from curate.errors import UserError
    from curate.runners.ray import RayRunner
    from curate.steps.base import Resources

    def fail(shared, item):
        raise UserError("toxicity.checkpoint: file not found: /models/x.ckpt")

    for need in (Resources(), Resources(model=True)):  # a task, then an actor
        with pytest.raises(UserError) as exc:
            RayRunner().map(fail, None, [1, 2], "fail", need)
        assert str(exc.value) == "toxicity.checkpoint: file not found: /models/x.ckpt"  # itself, not Ray's wrapper
        assert _user_facing(exc.value) == "toxicity.checkpoint: file not found: /models/x.ckpt"


def test_auto_picks_local_for_the_sample_and_ray_for_an_address(planted, ray_cluster):
    """runner: auto runs a small input in-process, joins Ray when given an address, and both give
    the same bytes."""
    from curate.runners import auto_threshold_bytes, pick

    tmp, src, _, _ = planted
    assert src.stat().st_size < auto_threshold_bytes(2)
    sample = REPO / "sample_data"
    assert pick("auto", None, sum(f.stat().st_size for f in sample.iterdir()), 2) == "local"
    assert pick("auto", None, 10**9, 2) == "ray"
    assert pick("auto", None, 10**9, 1) == "local"  # one CPU: Ray cannot pay for its start-up
    assert pick("local", "10.0.0.5:6379", 10**9, 2) == "local"  # --runner local still forces it
    local = run(_yaml(tmp, src, "auto_local", runner="auto"))
    assert local["runner"] == "local"
    address = ray_cluster.get_runtime_context().gcs_address
    joined = run(_yaml(tmp, src, "auto_ray", runner="auto"), address=address)
    assert joined["runner"] == "ray"
    assert parquet_bytes(tmp / "auto_local") == parquet_bytes(tmp / "auto_ray")
    assert joined["runner_timing"]["pieces"] >= joined["shards"]


def test_plan_is_read_by_workers_and_equals_a_local_plan(planted, ray_cluster):
    """The index pass over byte ranges gives the same shards on Ray workers as in-process."""
    from curate.engine import plan_input
    from curate.readers import plan
    from curate.runners.ray import RayRunner

    _, src, _, _ = planted
    assert plan_input(RayRunner(), [str(src)], "auto", 40) == plan([str(src)], "auto", 40)


def test_a_gpu_step_gets_a_gpu_of_its_own(ray_cluster):
    """toxicity on cuda declares one GPU per worker; the runner asks Ray for it (Ray's public state
    API shows the request; Ray accepts a GPU count on a machine without GPUs), and no two actors
    share a GPU unless the step asks for a fraction."""
    import logging

    from ray.util.state import list_actors

    from curate.runners.ray import RayRunner
    from curate.steps.base import StepContext
    from curate.steps.toxicity import Toxicity, ToxicityParams

    ray = ray_cluster
    ray.shutdown()
    # The state API answers through the dashboard's server.
    ray.init(
        address="local",
        num_cpus=4,
        num_gpus=2,
        include_dashboard=True,
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    try:
        ctx = StepContext(rules_dir=REPO / "curate" / "rules")

        def need(**kw):
            params = ToxicityParams(backend="detoxify", checkpoint="m.ckpt", hf_config="cfg", device="cuda", **kw)
            return Toxicity(params, ctx).resources()

        assert need().gpus == 1 and need().actor and need(gpus=0.5).gpus == 0.5
        assert Toxicity(ToxicityParams(), ctx).resources().gpus == 0  # fastText: no GPU, a task

        def probe(shared, item):
            time.sleep(0.2)
            return item

        seen: set[str] = set()
        for gpus, actors, per_gpu in ((1.0, 2, 1), (0.5, 4, 2)):
            runner = RayRunner()
            assert runner.map(probe, None, list(range(8)), "gpu_probe", need(gpus=gpus)) == list(range(8))
            pool = [
                a
                for a in list_actors(
                    address=ray.get_runtime_context().gcs_address, filters=[("class_name", "=", "_Worker")], detail=True
                )
                if a.actor_id not in seen
            ]
            seen |= {a.actor_id for a in pool}
            assert len(pool) == actors
            assert all(a.required_resources["GPU"] == gpus and a.required_resources["CPU"] == 1 for a in pool)
            assigned = list(runner.gpu_ids.values())
            assert len(assigned) == actors and all(len(ids) == 1 for ids in assigned)
            assert sorted(Counter(ids[0] for ids in assigned).values()) == [per_gpu, per_gpu]
    finally:
        ray.shutdown()  # the ray_cluster fixture starts the usual one again


def test_map_steps_in_slices_give_the_same_bytes_and_counts(tmp_path, monkeypatch):
    """A shard's map steps run on slices of engine.MAP_BATCH_ROWS rows: every step must give the same
    rows, reasons and counters as on the whole shard, and the Parquet files must not show where the
    slices were cut. The default recipe's steps on the sample (split first, so that rows it makes
    go through the rest), a shard per file, whole vs slices of 7 rows."""
    import curate.engine
    import curate.writers

    # A small dictionary limit, so that an encoding fallback at a slice's end would show in the bytes.
    options = {**curate.writers.PARQUET_OPTIONS, "dictionary_pagesize_limit": 16384}
    monkeypatch.setattr(curate.writers, "PARQUET_OPTIONS", options)
    steps = (
        "[split_conversations: {max_tokens: 256}, html_to_markdown: {}, normalize: {}, format_rules: {},"
        " ai_boilerplate: {}, language: {keep: [en]}, quality_heuristics: {}, toxicity: {}, pii: {},"
        " exact_dedup: {turns: all}, minhash_dedup: {}, decontaminate: {}]"
    )
    results = {}
    for label, batch in (("whole", 10_000), ("sliced", 7)):
        monkeypatch.setattr(curate.engine, "MAP_BATCH_ROWS", batch)
        out = tmp_path / label
        stats = run(
            pipeline_yaml(tmp_path / f"{label}.yaml", REPO / "sample_data", out, steps, extra="  shard_rows: 5000\n")
        )
        assert stats["shards"] <= 2  # sample_data's two files; hundreds of rows each
        per_step = [{k: v for k, v in s.items() if k != "seconds"} for s in stats["steps"]]
        results[label] = (parquet_bytes(out), parquet_bytes(out, "rejected"), per_step)
    assert results["whole"][2][0]["rows_added"] > 0
    assert sum(1 for s in results["whole"][2] if s["rows_dropped"]) >= 8  # most steps rejected rows
    assert results["sliced"] == results["whole"]


def test_parquet_bytes_do_not_depend_on_how_the_rows_are_chunked(tmp_path, monkeypatch):
    """Parquet cuts pages at chunk ends; the writer makes one chunk first, so a shard run in slices
    (engine.MAP_BATCH_ROWS) writes the same bytes as one run whole. Where a column's dictionary
    outgrows its page limit (1 MB; 16 KB here, the sample is small), it falls back to plain
    encoding at the end of a chunk."""
    import pyarrow as pa

    import curate.writers
    from curate.writers import write_parquet_atomic

    monkeypatch.setattr(curate.writers, "PARQUET_OPTIONS", {**curate.writers.PARQUET_OPTIONS, "data_page_size": 4096})

    records = [json.loads(line) for line in (REPO / "sample_data" / "sharegpt_sample.jsonl").read_text().splitlines()]
    whole = pa.Table.from_pylist([{"id": r["id"], "conversations": r["conversations"]} for r in records])
    sliced = pa.concat_tables([whole.slice(i, 7) for i in range(0, whole.num_rows, 7)])
    assert sliced.column("conversations").num_chunks > 10
    write_parquet_atomic(whole, tmp_path / "whole.parquet")
    write_parquet_atomic(sliced, tmp_path / "sliced.parquet")
    assert (tmp_path / "whole.parquet").read_bytes() == (tmp_path / "sliced.parquet").read_bytes()


def test_the_process_that_runs_a_shard_has_transparent_huge_pages_off(tmp_path):
    """curate/hugepages.py: a run turns them off in its own process (Linux reports it in
    /proc/self/status); in a child process that first turns them on (prctl PR_SET_THP_DISABLE 0)."""
    import subprocess
    import sys

    status = Path("/proc/self/status")
    if not status.exists() or "THP_enabled" not in status.read_text():
        pytest.skip("this kernel does not report THP_enabled")
    yaml_path = pipeline_yaml(tmp_path / "p.yaml", REPO / "sample_data" / "sharegpt_sample.jsonl", tmp_path / "out")
    code = (  # the flag is inherited: a test run in this process earlier has set it here too
        "import ctypes; from tests.helpers import run; from pathlib import Path;"
        "ctypes.CDLL(None).prctl(41, 0, 0, 0, 0);"
        "before = Path('/proc/self/status').read_text().split('THP_enabled:')[1].split()[0];"
        f"run(Path({str(yaml_path)!r}));"
        "after = Path('/proc/self/status').read_text().split('THP_enabled:')[1].split()[0];"
        "print(before, after)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["1", "0"], out.stderr[-2000:]


def test_a_steps_set_up_objects_are_frozen_out_of_the_collectors_sight(tmp_path):
    """engine.Engine._step: after a step's setup everything alive is moved to the collector's
    permanent generation (gc.freeze). In a child process, whose count starts at zero."""
    import subprocess
    import sys

    sample = REPO / "sample_data" / "sharegpt_sample.jsonl"
    yaml_path = pipeline_yaml(tmp_path / "p.yaml", sample, tmp_path / "out", steps="\n  - normalize: {}")
    code = (
        "import gc; from tests.helpers import run; from pathlib import Path;"
        "before = gc.get_freeze_count();"
        f"run(Path({str(yaml_path)!r}));"
        "print(before, gc.get_freeze_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    before, after = map(int, out.stdout.split())
    assert before == 0 and after > 10_000, out.stderr[-2000:]
