"""sample_data/: small, reproducible, and every planted row does what planted.yaml says."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.helpers import REPO, pipeline_yaml, read_dir, run

SAMPLE = REPO / "sample_data"
PLANTED = yaml.safe_load((SAMPLE / "planted.yaml").read_text())


def test_small_and_rebuilt_byte_for_byte(tmp_path):
    data = [p for p in SAMPLE.iterdir() if p.suffix in (".jsonl", ".yaml", ".md", ".py")]
    assert sum(p.stat().st_size for p in data) <= 2_000_000
    subprocess.run([sys.executable, str(SAMPLE / "build.py"), "--out", str(tmp_path)], check=True)
    for name in ("sharegpt_sample.jsonl", "malformed.jsonl", "planted.yaml"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name


def _rejected_by(out, step: str) -> dict[str, str]:
    rej = read_dir(out / "rejected")
    return {
        i: d
        for i, d, s in zip(
            rej.column("id").to_pylist(),
            rej.column("duplicate_of").to_pylist(),
            rej.column("_curate_drop_step").to_pylist(),
        )
        if s == step
    }


def test_dedup_removes_exactly_the_planted_copies(tmp_path):
    steps = "\n  - exact_dedup: {}\n  - minhash_dedup: {}"
    stats = run(pipeline_yaml(tmp_path / "p.yaml", SAMPLE, tmp_path / "out", steps=steps))
    exact = {
        e["id"]: e["duplicate_of"]
        for k in ("exact_duplicate", "whitespace_case_duplicate")
        for e in PLANTED["planted"][k]
    }
    near = {e["id"]: e["duplicate_of"] for k in ("near_duplicate", "html_render") for e in PLANTED["planted"][k]}
    assert _rejected_by(tmp_path / "out", "exact_dedup") == exact
    assert _rejected_by(tmp_path / "out", "minhash_dedup") == near
    assert stats["rows_rejected"] == len(exact) + len(near)


def test_malformed_lines_are_quarantined_with_their_line(tmp_path):
    stats = run(pipeline_yaml(tmp_path / "p.yaml", SAMPLE / "malformed.jsonl", tmp_path / "out"))
    q = read_dir(tmp_path / "out" / "quarantine")
    got = dict(zip(q.column("line").to_pylist(), q.column("error").to_pylist()))
    expected = PLANTED["planted"]["malformed"]
    assert sorted(got) == [e["line"] for e in expected]
    for e in expected:
        assert e["error_contains"] in got[e["line"]], (e, got[e["line"]])
    assert stats["rows_quarantined"] == len(expected) and stats["rows_kept"] == PLANTED["rows"][
        "malformed.jsonl"
    ] - len(expected)


def test_long_conversations_are_split_and_lose_no_turn(tmp_path):
    stats = run(
        pipeline_yaml(
            tmp_path / "p.yaml",
            SAMPLE / "sharegpt_sample.jsonl",
            tmp_path / "out",
            steps="\n  - split_conversations: {max_tokens: 2048}",
        )
    )
    planted = {e["id"]: e["turns"] for e in PLANTED["planted"]["long_conversation"]}
    rows = [read_dir(tmp_path / "out" / d) for d in ("kept", "rejected")]
    turns: dict[str, int] = {}
    for t in filter(None, rows):
        for of, conv in zip(t.column("split_of").to_pylist(), t.column("messages").to_pylist()):
            if of in planted:
                turns[of] = turns.get(of, 0) + len(conv)
    assert turns == planted  # every turn of each planted conversation is in exactly one sample
    assert stats["rows_added"] >= len(planted)


def test_planted_hateful_turns_are_rejected_by_toxicity(tmp_path):
    run(
        pipeline_yaml(
            tmp_path / "p.yaml", SAMPLE / "sharegpt_sample.jsonl", tmp_path / "out", steps="\n  - toxicity: {}"
        )
    )
    rej = read_dir(tmp_path / "out" / "rejected")
    toxic = {
        i for i, s in zip(rej.column("id").to_pylist(), rej.column("_curate_drop_step").to_pylist()) if s == "toxicity"
    }
    planted = {e["id"] for e in PLANTED["planted"]["toxic"]}
    assert planted <= toxic and len(toxic - planted) <= 3  # the shipped model's false positives on the sample: 2
