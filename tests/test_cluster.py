"""A real Ray cluster on loopback, with token authentication on (as a secured cluster runs):
`curate run --address` and `ray job submit -- python -m curate run` give the same kept bytes as a
local run, and a missing or wrong token is one line, exit 1."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import SHARED_DATA, assert_identity, parquet_bytes, pipeline_yaml

pytestmark = pytest.mark.skipif(shutil.which("ray") is None, reason="the ray CLI is not installed")

READY_TIMEOUT_S = 180  # a loaded 2-CPU machine has taken over a minute to start a head's job agent


def _own_ports() -> list[str]:
    """Ports `ray start` would otherwise take at fixed defaults (the job agent's 52365, the client
    server's 10001): a second cluster on the machine, such as another test run's, would hold them
    and this head's job agent would never come up ("No available agent to submit job")."""
    return [
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--ray-client-server-port={_free_port()}",
        f"--metrics-export-port={_free_port()}",
        f"--dashboard-agent-grpc-port={_free_port()}",
        f"--runtime-env-agent-port={_free_port()}",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, env, timeout=300):
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)


def _wait_for_port(port: int, head: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise AssertionError(f"ray start --head exited with {head.returncode}: {log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the head's port {port} did not open in {READY_TIMEOUT_S} s")


def _wait_for_job_agent(env: dict, deadline: float) -> None:
    """The dashboard answers before its job agent is registered; a job submitted in between fails
    with 'No available agent to submit job'. Submit a no-op job until one succeeds."""
    while True:
        probe = _run(["ray", "job", "submit", "--", sys.executable, "-c", "pass"], env, timeout=120)
        if probe.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the job API was not ready in {READY_TIMEOUT_S} s: {probe.stderr[-2000:]}")
        time.sleep(2)


@contextmanager
def token_cluster(tmp: Path):
    """A Ray head on loopback with token authentication, ready for jobs: (GCS address, dashboard
    URL, the environment a driver needs). `ray start --block` makes this process its owner, so
    stopping it stops only this cluster (`ray stop` would stop every Ray on the machine, other test
    runs' included). Also used by benchmarks/stress."""
    home = tmp / "home"  # no token of the user's own is read, none is written
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(home), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    # Ray's session directory holds Unix sockets, whose paths may not exceed 107 bytes. Under
    # pytest's deep tmp_path the session name and `/sockets/plasma_store` went past that as soon
    # as the run counter reached three digits (`pytest-272` in CI), and the head exited at start.
    ray_tmp = Path(tempfile.mkdtemp(prefix="curate-ray-", dir="/tmp"))
    log = tmp / "head.log"
    gcs, dash = _free_port(), _free_port()
    with log.open("w") as log_file:
        head = subprocess.Popen(
            [
                "ray",
                "start",
                "--head",
                "--block",
                "--node-ip-address=127.0.0.1",
                f"--port={gcs}",
                "--num-cpus=2",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dash}",
                *_own_ports(),
                "--disable-usage-stats",
                f"--temp-dir={ray_tmp}",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        _wait_for_port(gcs, head, log, deadline)
        dashboard = f"http://127.0.0.1:{dash}"
        _wait_for_job_agent(dict(env, RAY_ADDRESS=dashboard), deadline)
        yield f"127.0.0.1:{gcs}", dashboard, env
    finally:
        _stop(head)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _stop(head: subprocess.Popen) -> None:
    """Stop the head's whole process group; it may have exited on its own already."""
    try:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with token_cluster(tmp_path_factory.mktemp("cluster-head")) as head:
        yield head


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt_fastchat_dummy_conversation.json").read_text())
    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    return tmp, src


def test_cluster_address_and_job_submit_match_local(cluster, inputs):
    address, dashboard, env = cluster
    tmp, src = inputs
    # Absolute paths: a job's working directory is not ours.
    y = pipeline_yaml(
        tmp / "p.yaml", src.resolve(), (tmp / "local").resolve(), "[{exact_dedup: {}}]", extra="  shard_rows: 50\n"
    )
    local = _run([sys.executable, "-m", "curate", "run", str(y), "--runner", "local"], env)
    assert local.returncode == 0, local.stderr

    # The token from RAY_AUTH_TOKEN alone: curate turns Ray's token mode on for the driver.
    driver_env = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    via_address = _run(
        [
            sys.executable,
            "-m",
            "curate",
            "run",
            str(y),
            "--runner",
            "ray",
            "--address",
            address,
            "--output",
            str((tmp / "addr").resolve()),
        ],
        driver_env,
    )
    assert via_address.returncode == 0, via_address.stderr

    job_env = dict(env, RAY_ADDRESS=dashboard)
    job = _run(
        [
            "ray",
            "job",
            "submit",
            "--",
            sys.executable,
            "-m",
            "curate",
            "run",
            str(y),
            "--runner",
            "ray",
            "--output",
            str((tmp / "job").resolve()),
        ],
        job_env,
        timeout=600,
    )
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]

    reference = parquet_bytes(tmp / "local")
    assert reference
    for name in ("addr", "job"):
        stats = json.loads((tmp / name / "stats.json").read_text())
        assert_identity(stats)
        assert stats["runner"] == "ray" and stats["rows_quarantined"] == 1
        assert parquet_bytes(tmp / name) == reference, name
        assert (tmp / name / "manifest.json").exists() and (tmp / name / "report.html").exists()


@pytest.mark.parametrize("token", [None, "0" * 64], ids=["missing", "wrong"])
def test_cluster_token_missing_or_wrong_is_one_line(cluster, inputs, tmp_path, token):
    address, _, env = cluster
    _, src = inputs
    y = pipeline_yaml(tmp_path / "p.yaml", src.resolve(), (tmp_path / "out").resolve(), "[{exact_dedup: {}}]")
    driver_env = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
    driver_env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token to fall back on
    if token:
        driver_env["RAY_AUTH_TOKEN"] = token
    r = _run([sys.executable, "-m", "curate", "run", str(y), "--runner", "ray", "--address", address], driver_env)
    assert r.returncode == 1, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr[-3000:]
    assert lines[0].startswith(
        f"Ray cluster at {address}: authentication token missing or incorrect; set RAY_AUTH_TOKEN"
    )
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_unreachable_cluster_is_one_line(tmp_path, inputs):
    _, src = inputs
    y = pipeline_yaml(tmp_path / "p.yaml", src.resolve(), (tmp_path / "out").resolve(), "[{exact_dedup: {}}]")
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    r = _run([sys.executable, "-m", "curate", "run", str(y), "--runner", "ray", "--address", address], os.environ)
    assert r.returncode == 1
    assert (
        r.stderr.strip()
        == f"Ray cluster at {address}: cannot connect (Connection refused); is `ray start --head` running there?"
    )
