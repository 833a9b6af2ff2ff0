"""Crash and resume: kill -9 at several points, rerun with --resume, get the uninterrupted bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import SHARED_DATA, assert_identity, parquet_bytes, pipeline_yaml

STEPS = "[{exact_dedup: {partitions: 3}}, {exact_dedup: {turns: user, partitions: 2}}]"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt_fastchat_dummy_conversation.json").read_text())
    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp, src


def _curate(args, fault=None, runner="local"):
    env = dict(os.environ)
    env.pop("CURATE_FAULT", None)
    if fault:
        env["CURATE_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "curate", "run", *args, "--runner", runner, "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _yaml(tmp, src, name, steps=STEPS):
    return pipeline_yaml(tmp / f"{name}.yaml", src, tmp / name, steps, extra="  shard_rows: 30\n")


@pytest.fixture(scope="module")
def reference(corpus):
    tmp, src = corpus
    p = _curate([str(_yaml(tmp, src, "ref"))])
    assert p.returncode == 0, p.stderr
    return parquet_bytes(tmp / "ref"), json.loads((tmp / "ref" / "stats.json").read_text())


@pytest.mark.parametrize("kill_after", [1, 5, 12, 20, 30])
def test_kill_9_of_the_driver_then_resume(corpus, reference, kill_after):
    """Killed after N shard pieces (in the first, second or third segment), --resume finishes the
    job, skips finished pieces, and the kept set is byte-identical to an uninterrupted run."""
    tmp, src = corpus
    y = _yaml(tmp, src, f"kill{kill_after}")
    crashed = _curate([str(y)], fault=f"after:{kill_after}")
    assert crashed.returncode == -9
    assert not (tmp / f"kill{kill_after}" / "manifest.json").exists()  # never mistaken for finished
    again = _curate([str(y)])
    assert again.returncode == 1 and "already holds results" in again.stderr
    resumed = _curate([str(y), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    stats = json.loads((tmp / f"kill{kill_after}" / "stats.json").read_text())
    assert_identity(stats)
    assert stats["resumed_shards"] == kill_after
    ref_kept, ref_stats = reference
    assert parquet_bytes(tmp / f"kill{kill_after}") == ref_kept
    for key in ("rows_in", "rows_kept", "rows_rejected", "rows_quarantined"):
        assert stats[key] == ref_stats[key]


def test_changed_config_reruns_only_affected_segments(corpus, reference):
    tmp, src = corpus
    y = _yaml(tmp, src, "changed")
    n_shards = reference[1]["shards"]
    # Die once the first two segments are done and the third has started.
    crashed = _curate([str(y)], fault=f"after:{2 * n_shards + 1}")
    assert crashed.returncode == -9
    # Change the SECOND step: segment 0 (read + first summarize) stays valid, the rest reruns.
    y.write_text(y.read_text().replace("turns: user, partitions: 2", "turns: user, partitions: 3"))
    resumed = _curate([str(y), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    stats = json.loads((tmp / "changed" / "stats.json").read_text())
    assert stats["resumed_shards"] == n_shards
    assert parquet_bytes(tmp / "changed") == reference[0]


def test_killed_ray_worker_is_retried_without_duplicates(corpus, reference, tmp_path):
    """A Ray worker killed mid-shard: Ray retries the task; writes are atomic and idempotent, so no
    row is lost or duplicated."""
    tmp, src = corpus
    y = _yaml(tmp, src, "raykill")
    p = _curate([str(y)], fault=f"once:{tmp_path / 'killed-once'}", runner="ray")
    assert (tmp_path / "killed-once").exists()
    assert p.returncode == 0, p.stderr
    stats = json.loads((tmp / "raykill" / "stats.json").read_text())
    assert_identity(stats)
    assert parquet_bytes(tmp / "raykill") == reference[0]
