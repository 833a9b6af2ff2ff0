"""Local and Ray runners: same bytes, every time; exact_dedup removes exactly the planted copies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import SHARED_DATA, pipeline_yaml, read_dir, run


def _kept_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "kept").glob("*.parquet"))}


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
    return pipeline_yaml(tmp / f"{name}.yaml", src, tmp / name, "[{exact_dedup: {partitions: 4}}]", runner,
                         extra="  shard_rows: 40\n")


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
    assert _kept_bytes(tmp / "det_a") == _kept_bytes(tmp / "det_b")
    assert _kept_bytes(tmp / "det_a")


def test_ray_runner_matches_local_byte_for_byte(planted, ray_cluster):
    tmp, src, _, _ = planted
    local = run(_yaml(tmp, src, "cmp_local"))
    ray_stats = run(_yaml(tmp, src, "cmp_ray", runner="ray"))
    assert ray_stats["runner"] == "ray"
    assert _kept_bytes(tmp / "cmp_local") == _kept_bytes(tmp / "cmp_ray")
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
    assert manifest["inputs"][0]["sha256"] and manifest["versions"]["pyarrow"]
    kept = read_dir(out / "kept")
    assert not [c for c in kept.column_names if c.startswith("_curate_")]
    assert {"id", "messages", "tools", "source_file", "source_index", "source", "extra"} <= set(kept.column_names)


def test_jsonl_output_round_trips(planted, tmp_path):
    """output.format: sharegpt writes kept rows back in the input's own shape."""
    _, src, _, _ = planted
    y = pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", "[{exact_dedup: {}}]",
                      extra="")
    y.write_text(y.read_text().replace("output:\n", "output:\n  format: sharegpt\n"))
    stats = run(y)
    lines = [json.loads(line) for f in sorted((tmp_path / "out" / "kept_jsonl").glob("*.jsonl"))
             for line in f.read_text().splitlines()]
    assert len(lines) == stats["rows_kept"]
    original = {json.loads(line)["id"]: json.loads(line) for line in src.read_text().splitlines()}
    for rec in lines[:50]:
        assert rec == original[rec["id"]]


def test_ray_data_scheduling_constants_are_lowered_on_this_ray(ray_cluster):
    """A canary for Ray upgrades: the runner lowers two private Ray Data constants (see
    runners/ray.py, _schedule_promptly). If a release renames them the runner still works, only
    slower; this test says so instead of a benchmark weeks later."""
    from ray.data._internal.execution import streaming_executor_state as state
    from ray.data._internal.execution.resource_manager import ResourceManager

    from curate.runners.ray import RayRunner, _RayWithPromptWait

    RayRunner(progress=False)  # joins the test's Ray; close() would leave it running
    assert isinstance(state.ray, _RayWithPromptWait)
    assert ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S <= 0.1


def test_prompt_wait_gives_ray_wait_all_answer_without_sleeping_out_the_timeout(ray_cluster):
    """The executor's wait: every ready task (as Ray's wait-for-all with a timeout would give),
    returned once one is ready instead of when the timeout ends; nothing ready -> nothing."""
    import time

    from curate.runners.ray import _RayWithPromptWait

    ray = ray_cluster

    @ray.remote(num_cpus=0)
    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    quick, slow = nap.remote(0), nap.remote(60)
    ray.get(quick)
    try:
        assert _RayWithPromptWait.wait([quick, slow], num_returns=2, timeout=30) == ([quick], [slow])
        assert _RayWithPromptWait.wait([slow], num_returns=1, timeout=0.05) == ([], [slow])
    finally:
        ray.cancel(slow, force=True)
