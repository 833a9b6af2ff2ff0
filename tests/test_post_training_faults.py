"""Planted faults in real tool-call and reasoning records, through the real readers and runners:
>= 98% rejected with the right reason, <= 0.5% of the clean records rejected (issue 17), and the
reasoning + tool_calls + token_budget pipeline gives the same bytes local and on Ray.
benchmarks/post_training/planted.py prints the full table over every record."""

from __future__ import annotations

import importlib.util
import json
import random
import sys

from tests.helpers import REPO, SHARED_DATA, parquet_bytes, pipeline_yaml, read_dir, run

BENCH = REPO / "benchmarks" / "post_training"


def _module(name: str):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_planted_faults_are_rejected_with_their_reason_and_clean_rows_kept():
    table, clean = _module("planted").evaluate(per_kind=15)
    planted = sum(t["planted"] for t in table)
    right = sum(t.get("right", 0) for t in table)
    assert {t["fault"] for t in table} == set(_module("data").FAULTS) and planted >= 300
    assert right / planted >= 0.98, [t for t in table if t.get("right", 0) < t["planted"]]
    assert clean["records"] >= 1200 and clean["lost"] == 0
    assert (clean["records"] - clean["kept"]) / clean["records"] <= 0.005, clean


def test_the_three_steps_give_the_same_bytes_local_and_on_ray(tmp_path, ray_cluster):
    data = _module("data")
    rng = random.Random(1)
    records = data.reasoning() + [data.plant(r, "unclosed_trace", rng) or r for r in data.reasoning()[:10]]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    template = SHARED_DATA / "chat_templates" / "nvidia-nemotron-nano-v2.chat_template.jinja"
    steps = (
        f"[{{reasoning: {{policy: require}}}}, {{tool_calls: {{open_end: keep}}}}, "
        f"{{token_budget: {{chat_template: {json.dumps(str(template))}, max_total_tokens: 3000}}}}]"
    )
    out = {}
    for runner in ("local", "ray"):
        y = pipeline_yaml(
            tmp_path / f"{runner}.yaml", src, tmp_path / runner, steps, runner, extra="  shard_rows: 20\n"
        )
        stats = run(y)
        assert stats["rows_in"] == len(records)
        out[runner] = parquet_bytes(tmp_path / runner)
        out[runner + "_rejected"] = parquet_bytes(tmp_path / runner, "rejected")
    assert out["local"] == out["ray"] and out["local_rejected"] == out["ray_rejected"]
    rejected = read_dir(tmp_path / "local" / "rejected")
    assert set(rejected.column("_curate_drop_reason").to_pylist()) >= {"reasoning_unclosed"}
    kept = read_dir(tmp_path / "local" / "kept")
    assert kept.column("tokens_total").null_count == 0 and kept.column("reasoning_tokens").to_pylist()


def test_bad_input_becomes_a_reason_end_to_end(tmp_path):
    """Through the real reader and runner: arguments that are not JSON, a 5 MB trace (unclosed, and
    closed but over the reasoning budget: the template renders no trace, so the total stays small),
    a template that raises: each a reason on its row, nothing lost."""
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    records = [
        {
            "id": "clean",
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>t</think>a"}],
        },
        {
            "id": "args",
            "messages": [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [dict(call, function={"name": "f", "arguments": "{oops"})],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "r"},
                {"role": "assistant", "content": "a"},
            ],
        },
        {
            "id": "unclosed",
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "<think>" + "hmm " * 1_300_000},
            ],
        },
        {
            "id": "long",
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "<think>" + "hmm " * 1_300_000 + "</think>a"},
            ],
        },
        {
            "id": "tool",
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "r"},
                {"role": "assistant", "content": "a"},
            ],
        },
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    tpl = tmp_path / "strict.jinja"
    tpl.write_text(
        "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tool turns') }}{% endif %}"
        "{{ m.role }}: {{ m.content }}\n{% endfor %}"
    )
    steps = f"[{{reasoning: {{}}}}, {{tool_calls: {{}}}}, {{token_budget: {{chat_template: {json.dumps(str(tpl))}, max_reasoning_tokens: 100000}}}}]"
    stats = run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps))
    assert stats["rows_in"] == 5 and stats["rows_kept"] == 1 and stats["rows_quarantined"] == 0
    rejected = read_dir(tmp_path / "out" / "rejected")
    got = dict(zip(rejected.column("id").to_pylist(), rejected.column("_curate_drop_reason").to_pylist()))
    assert got == {
        "args": "tool_arguments_not_json",
        "unclosed": "reasoning_unclosed",
        "long": "over_reasoning_tokens",
        "tool": "chat_template_error",
    }
    details = dict(zip(rejected.column("id").to_pylist(), rejected.column("_curate_drop_detail").to_pylist()))
    assert details["tool"] == "TemplateError: no tool turns" and all(len(d) < 600 for d in details.values())
