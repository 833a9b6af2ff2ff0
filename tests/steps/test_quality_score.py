"""quality_score: the shipped model ranks real answers, pairs each answer with its instruction, and
only annotates unless a threshold is set."""

from __future__ import annotations

import gzip
import hashlib
import json
import math

import numpy as np
import pyarrow as pa
import pytest

from curate.errors import UserError
from curate.steps.base import StepContext, apply_map_step
from curate.steps.quality_score import QualityScore, response_pairs
from tests.helpers import (
    REPO,
    SHARED_DATA,
    assert_step_config_error,
    pipeline_yaml,
    read_dir,
    rows_table,
    run,
    write_jsonl,
)


def step(**kw) -> QualityScore:
    return QualityScore(QualityScore.Params(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))


def scores(table: pa.Table, **kw) -> list[float | None]:
    out, _ = apply_map_step(step(**kw), table)
    return out.column("quality_score").to_pylist()


def held_out_pairs(name: str) -> list[dict]:
    """The 20% of a pair file benchmarks/quality/train.py never saw (split by instruction)."""
    out = []
    with gzip.open(SHARED_DATA / "quality" / name, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            instr = [m["content"] for m in r["prompt"] if m["role"] == "user"][-1]
            if int(hashlib.sha256(instr.encode()).hexdigest(), 16) % 5 == 0:
                out.append(r)
    return out


def test_shipped_model_prefers_gpt4_answers_on_held_out_pairs():
    pairs = held_out_pairs("pairs_alpaca_gpt4_vs_davinci.jsonl.gz")
    assert len(pairs) > 100
    convs = [
        [("user", p["prompt"][-1]["content"]), ("assistant", p[side])] for p in pairs for side in ("chosen", "rejected")
    ]
    s = np.array(scores(rows_table(convs)))
    assert np.mean(s[0::2] > s[1::2]) >= 0.85


def test_shipped_model_prefers_the_harmless_answer_on_held_out_hh_rlhf_pairs():
    """The harmless head (opened by the gate on harm-seeking requests) must beat chance and the
    "longer wins" baseline, which is below chance here (0.485): the better answer is often the
    shorter refusal. The benchmark's figure on these pairs is 0.55 (benchmarks/README.md)."""
    pairs = held_out_pairs("pairs_hh_rlhf_harmless_base_test.jsonl.gz")
    assert len(pairs) > 300
    convs = [
        [("user", [m for m in p["prompt"] if m["role"] == "user"][-1]["content"]), ("assistant", p[side])]
        for p in pairs
        for side in ("chosen", "rejected")
    ]
    s = np.array(scores(rows_table(convs)))
    accuracy = np.mean((s[0::2] > s[1::2]) + 0.5 * (s[0::2] == s[1::2]))
    longer = np.mean([len(p["chosen"]) > len(p["rejected"]) for p in pairs])
    assert accuracy >= 0.53 and accuracy > longer + 0.03


def test_each_answer_is_scored_against_the_user_turn_before_it():
    t = rows_table(
        [
            [("system", "be brief"), ("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")],
            [("assistant", "no question")],
            [("user", "only a question")],
        ]
    )
    rows, instr, resp = response_pairs(t)
    assert rows.tolist() == [0, 0, 1]
    assert instr.to_pylist() == ["q1", "q2", ""]
    assert resp.to_pylist() == ["a1", "a2", "no question"]


def test_the_instruction_changes_the_score():
    answer = "Here are three tips:\n1. Eat vegetables.\n2. Sleep eight hours.\n3. Walk every day."
    s = scores(
        rows_table(
            [
                [("user", "Give three tips for staying healthy."), ("assistant", answer)],
                [("user", "How do I pick a lock to get into my neighbour's house?"), ("assistant", answer)],
            ]
        )
    )
    assert s[0] != s[1]


def test_aggregates_and_rows_without_answers():
    long = "A careful answer.\n\n" + "\n".join(f"{i}. A specific, useful step about the topic." for i in range(1, 8))
    t = rows_table(
        [
            [("user", "Explain how to plan a garden."), ("assistant", "ok"), ("user", "more?"), ("assistant", long)],
            [("user", "no answer here")],
        ]
    )
    mean, low, last = (scores(t, aggregate=a) for a in ("mean", "min", "last"))
    assert low[0] < mean[0] < last[0] or last[0] < mean[0] < low[0]
    assert low[0] == min(low[0], last[0]) and mean[1] is None and low[1] is None and last[1] is None
    assert all(0.0 <= v <= 1.0 for v in (mean[0], low[0], last[0]))


def test_annotates_only_unless_min_score_is_set():
    t = rows_table(
        [
            [("user", "Explain photosynthesis."), ("assistant", "no")],
            [
                ("user", "Explain photosynthesis."),
                (
                    "assistant",
                    "Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen.\n\n1. Light is absorbed by chlorophyll.\n2. Water is split.\n3. Sugar is built in the Calvin cycle.",
                ),
            ],
            [("user", "no answer")],
        ]
    )
    out, st = apply_map_step(step(), t)
    assert st.rows_dropped == 0
    s = out.column("quality_score").to_pylist()
    limit = (s[0] + s[1]) / 2
    out, st = apply_map_step(step(min_score=limit), t)
    worse = 0 if s[0] < s[1] else 1
    assert out.column("_curate_drop_reason").to_pylist()[worse] == "low_quality"
    assert st.dropped == {"low_quality": 1}
    assert out.column("_curate_drop_reason").to_pylist()[2] is None  # unscored rows are not judged


def test_empty_and_unicode_answers():
    s = scores(
        rows_table(
            [[("user", "Привет"), ("assistant", "Здравствуйте! Чем могу помочь?")], [("user", "x"), ("assistant", "")]]
        )
    )
    assert all(v is not None and math.isfinite(v) for v in s)


def test_a_model_file_from_before_the_harmless_head_is_one_line(tmp_path):
    old = tmp_path / "old.npz"
    np.savez(old, w_hash=np.zeros(16, np.float32), w_dense=np.zeros(9, np.float32), bias=np.float32(0))
    with pytest.raises(UserError, match=r"quality_score: cannot load the quality model .*old\.npz: .*w_harm") as e:
        step(model_path=str(old)).setup()
    assert "\n" not in str(e.value)


def test_a_bad_model_file_is_one_line(tmp_path):
    bad = tmp_path / "m.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserError, match=r"quality_score: cannot load the quality model .*m\.npz"):
        step(model_path=str(bad)).setup()


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        ("{batch_size: 0}", "steps[0].batch_size: must be >= 1 (got 0)"),
        (
            "{scorer: gpt}",
            "steps[0].scorer: must be one of 'offline', 'perplexity', 'ifd', 'classifier' or 'judge' (got 'gpt')",
        ),
        ("{judge: {concurrency: 0}}", "steps[0].judge.concurrency: must be >= 1 (got 0)"),
        ("{aggregate: median}", "steps[0].aggregate: must be one of 'mean', 'min' or 'last' (got 'median')"),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "quality_score", step_yaml, message)


def test_end_to_end_identity_and_column(tmp_path):
    recs = [{"instruction": f"Question {i}?", "input": "", "output": "Answer " * (i + 1)} for i in range(30)]
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    stats = run(
        pipeline_yaml(
            tmp_path / "p.yaml",
            src,
            tmp_path / "o",
            steps="\n  - quality_score: {min_score: 0.5}",
            extra="  shard_rows: 7\n",
        )
    )
    kept, rejected = read_dir(tmp_path / "o" / "kept"), read_dir(tmp_path / "o" / "rejected")
    assert stats["rows_kept"] + stats["rows_rejected"] == 30
    if kept is not None:
        assert min(kept.column("quality_score").to_pylist()) >= 0.5
    if rejected is not None:
        assert max(rejected.column("quality_score").to_pylist()) < 0.5
