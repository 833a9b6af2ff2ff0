"""Nothing the driver does after the work is done may reach Ray while it shuts down.

Ray's core worker ends the whole process (from C++, exit 1, no Python error) when anything touches it
during `ray.shutdown()`: freeing an object reference is enough. When the shutdown ran in a thread
beside publishing, a reference freed by the driver's garbage collector at the wrong moment left an
unpublished run and exit 1 in one run of three on a loaded machine. This test makes that moment
certain: the driver holds thousands of references when the work ends and frees them slowly, over
longer than a shutdown takes, while it publishes. With publishing after the shutdown it exits 0."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.helpers import SHARED_DATA, assert_identity, pipeline_yaml

DRIVER = textwrap.dedent(
    """
    import sys, time
    import ray
    import curate.run as run_module
    from curate.config import load_pipeline
    from curate.runners.ray import RayRunner

    held = []
    run_shards = RayRunner.run_shards

    def run_shards_holding_refs(self, *args, **kwargs):
        out = run_shards(self, *args, **kwargs)
        held.extend(ray.put(i) for i in range(4000))  # still referenced when the work ends
        return out

    publish = run_module._publish

    def publish_freeing_refs(*args):
        deadline = time.monotonic() + 3  # longer than Ray's ~1.4 s shutdown
        while held and time.monotonic() < deadline:
            held.pop()
            time.sleep(0.0005)
        held.clear()
        return publish(*args)

    RayRunner.run_shards = run_shards_holding_refs
    run_module._publish = publish_freeing_refs
    run_module.execute(load_pipeline(sys.argv[1], {}), overwrite=True, runner_kind="ray")
    print("published")
    """
)


def test_freeing_ray_references_while_publishing_cannot_kill_the_run(tmp_path):
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt_fastchat_dummy_conversation.json").read_text())
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    y = pipeline_yaml(tmp_path / "p.yaml", src, out, "[{exact_dedup: {}}]", runner="ray", extra="  shard_rows: 100\n")
    r = subprocess.run([sys.executable, "-c", DRIVER, str(y)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert r.stdout.strip().endswith("published")
    assert (out / "manifest.json").exists() and (out / "report.html").exists()
    assert_identity(json.loads((out / "stats.json").read_text()))
