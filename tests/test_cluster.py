"""A real Ray cluster on loopback: `curate run --address` and `ray job submit -- python -m curate run`
give the same kept bytes as a local run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import SHARED_DATA, assert_identity, pipeline_yaml

pytestmark = pytest.mark.skipif(shutil.which("ray") is None, reason="the ray CLI is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # `ray stop` below stops every Ray on this machine: an embedded Ray that other tests started in
    # this process must go first, or its death takes the test process with it.
    import ray

    if ray.is_initialized():
        ray.shutdown()
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    gcs, dash = _free_port(), _free_port()
    start = subprocess.run(
        ["ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=2",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
         "--disable-usage-stats"],
        capture_output=True, text=True, env=env, timeout=180)
    assert start.returncode == 0, start.stderr
    try:
        yield f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dash}", env
    finally:
        subprocess.run(["ray", "stop", "--force"], capture_output=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt_fastchat_dummy_conversation.json").read_text())
    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    return tmp, src


def _run(args, env, timeout=300):
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)


def _kept(d):
    return {p.name: p.read_bytes() for p in sorted((d / "kept").glob("*.parquet"))}


def test_cluster_address_and_job_submit_match_local(cluster, inputs):
    address, dashboard, env = cluster
    tmp, src = inputs
    # Absolute paths: a job's working directory is not ours.
    y = pipeline_yaml(tmp / "p.yaml", src.resolve(), (tmp / "local").resolve(), "[{exact_dedup: {}}]",
                      extra="  shard_rows: 50\n")
    local = _run([sys.executable, "-m", "curate", "run", str(y), "--runner", "local"], env)
    assert local.returncode == 0, local.stderr

    via_address = _run([sys.executable, "-m", "curate", "run", str(y), "--runner", "ray", "--address", address,
                        "--output", str((tmp / "addr").resolve())], env)
    assert via_address.returncode == 0, via_address.stderr

    job_env = dict(env, RAY_ADDRESS=dashboard)
    started = time.time()
    job = _run(["ray", "job", "submit", "--", sys.executable, "-m", "curate", "run", str(y), "--runner", "ray",
                "--output", str((tmp / "job").resolve())], job_env, timeout=600)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert time.time() - started < 600

    reference = _kept(tmp / "local")
    assert reference
    for name in ("addr", "job"):
        stats = json.loads((tmp / name / "stats.json").read_text())
        assert_identity(stats)
        assert stats["runner"] == "ray" and stats["rows_quarantined"] == 1
        assert _kept(tmp / name) == reference, name
