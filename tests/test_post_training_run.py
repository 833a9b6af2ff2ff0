"""A whole run over the real post-training records (every shape at once, with planted bad records):
nothing lost, local and Ray give the same bytes, and stats / the report count rows per source."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.helpers import assert_step_config_error, parquet_bytes, pipeline_yaml, read_dir, run, write_jsonl
from tests.post_training_records import POST_TRAINING, bfcl_records, hermes_records

STEPS = "\n  - normalize: {}\n  - format_rules: {}\n  - pii: {}\n  - exact_dedup: {}"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pt")
    bfcl = [
        dict(r, source=f"bfcl_{c}", license="apache-2.0")
        for c in ("simple_python", "parallel")
        for r, _ in bfcl_records(c)
    ]
    planted = [
        {
            "id": "bad_tools",
            "source": "planted",
            "messages": [{"role": "user", "content": "q"}],
            "tools": {"name": "f"},
        },
        {
            "id": "bad_part",
            "source": "planted",
            "messages": [{"role": "user", "content": [{"type": "hologram", "value": "q"}]}],
        },
        {
            "id": "copy",
            "source": "planted",
            "messages": bfcl[0]["messages"],
            "tools": bfcl[0]["tools"],
        },  # an exact duplicate
        {
            "id": "empty",
            "source": "planted",
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}],
        },
    ]
    files = [
        POST_TRAINING / "glaive_toolcall_en_demo.jsonl.gz",
        POST_TRAINING / "reason_tool_use_demo_50.jsonl.gz",
        write_jsonl(tmp / "bfcl.jsonl", bfcl + planted),
        write_jsonl(tmp / "hermes.jsonl", hermes_records()),
    ]
    return tmp, files


def _run(tmp, files, name, runner):
    y = pipeline_yaml(tmp / f"{name}.yaml", files, tmp / name, STEPS, runner, extra="  shard_rows: 64\n")
    return run(y)


def test_nothing_is_lost_and_each_fault_has_its_reason(inputs):
    tmp, files = inputs
    stats = _run(tmp, files, "local", "local")
    assert stats["rows_in"] == 228 + 42 + 307 + 153 + 4 + 2
    assert stats["rows_quarantined"] == 2  # bad_tools, bad_part
    errors = sorted(read_dir(tmp / "local" / "quarantine").column("error").to_pylist())
    assert errors[0].startswith("messages[0].content[0].type: unknown content part type 'hologram'")
    assert errors[1].startswith("tools: must be a list of function schemas (got dict)")
    rejected = {r["id"]: r["_curate_drop_reason"] for r in read_dir(tmp / "local" / "rejected").to_pylist()}
    assert rejected["copy"] == "exact_duplicate" and rejected["empty"] == "empty_turn"
    # the real glaive file has exact duplicates of its own (shared/data/README.md); no tool-call row is an empty turn
    assert (
        set(rejected.values()) <= {"exact_duplicate", "empty_turn"} and list(rejected.values()).count("empty_turn") == 1
    )


def test_stats_and_report_by_source(inputs):
    tmp, files = inputs
    stats = json.loads((tmp / "local" / "stats.json").read_text())
    kept, rejected = read_dir(tmp / "local" / "kept"), read_dir(tmp / "local" / "rejected")
    by = stats["distributions"]
    assert by["kept"]["by_source"] == dict(Counter(v or "(none)" for v in kept.column("source").to_pylist()))
    assert by["rejected"]["by_source"] == dict(Counter(v or "(none)" for v in rejected.column("source").to_pylist()))
    assert by["kept"]["by_source"]["bfcl_parallel"] == 153
    assert by["reasons_by_source"]["exact_duplicate"]["planted"] == 1
    report = (tmp / "local" / "report.html").read_text()
    assert "Rows by source" in report and "bfcl_simple_python" in report


def test_ray_runner_gives_the_same_bytes(inputs, ray_cluster):
    tmp, files = inputs
    local = (
        json.loads((tmp / "local" / "stats.json").read_text())
        if (tmp / "local").exists()
        else _run(tmp, files, "local", "local")
    )
    ray = _run(tmp, files, "ray", "ray")
    assert parquet_bytes(tmp / "ray") == parquet_bytes(tmp / "local")
    assert ray["distributions"] == local["distributions"]


def test_stats_by_must_name_a_column(tmp_path):
    y = pipeline_yaml(tmp_path / "p.yaml", tmp_path / "in.jsonl", tmp_path / "out", "[{language: {}}]")
    y.write_text(y.read_text().replace("output:\n", "output:\n  stats_by: sourse\n"))
    from curate.config import load_pipeline
    from curate.errors import UserError

    with pytest.raises(UserError) as e:
        load_pipeline(str(y))
    assert str(e.value).startswith(
        f"{y}:4: output.stats_by: unknown column 'sourse'; known: id, tools, source_file, source_index, source,"
    )
    assert "lang" in str(e.value)
    y.write_text(y.read_text().replace("stats_by: sourse", "stats_by: lang"))
    assert load_pipeline(str(y)).config.output.stats_by == "lang"


def test_config_error_through_the_helper(tmp_path):
    assert_step_config_error(
        tmp_path,
        "toxicity",
        "{parts: [answer]}",
        "steps[0].parts[0]: must be one of 'system', 'user', 'assistant', 'tool' or 'reasoning' (got 'answer')",
    )


def test_the_post_training_recipe_runs_on_its_default_input(tmp_path, monkeypatch):
    from curate.config import load_pipeline
    from curate.run import execute
    from tests.helpers import REPO, assert_identity

    monkeypatch.chdir(REPO)  # the recipe's paths are relative to the repository root
    pipeline = load_pipeline("pipelines/post_training.yaml", overrides={"output.path": str(tmp_path / "out")})
    result = execute(pipeline, runner_kind="local", log=lambda m: None)
    stats = json.loads((result.run_dir / "stats.json").read_text())
    assert_identity(stats)
    assert stats["rows_in"] == 228 + 42 and stats["rows_quarantined"] == 0
    dropped = Counter(r for s in stats["steps"] for r, n in s["dropped"].items() for _ in range(n))
    assert "empty_turn" not in dropped and "roles_not_alternating" not in dropped
    assert stats["rows_kept"] > 200
