"""semantic_dedup: wordllama loads offline and embeds as WordLlama.embed does; reworded copies are
found, unrelated rows kept; local and Ray agree."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pytest

from curate.steps.base import StepContext
from curate.steps.semantic_dedup import SemanticDedup
from tests.helpers import (
    REPO,
    SHARED_DATA,
    assert_step_config_error,
    pipeline_yaml,
    read_dir,
    rows_table,
    run,
    run_global,
    write_jsonl,
)


def step(**kw) -> SemanticDedup:
    return SemanticDedup(SemanticDedup.Params(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))


def dedup(s: SemanticDedup, t: pa.Table, shards: int = 1) -> pa.Table:
    return run_global(s, t, shards)[0]


BREAD = (
    "How do I bake sourdough bread at home?",
    "Mix flour, water and starter, let it rise overnight, shape it and bake at 230 C.",
)
BREAD2 = (
    "How can I bake sourdough bread at home?",
    "Mix flour, water and starter, let it rise overnight, shape it, then bake at 230 C.",
)
OTHERS = [
    ("What is the capital of France?", "Paris."),
    ("Write a haiku about autumn.", "Leaves drift on cold wind."),
    ("Explain recursion to a child.", "A function that calls itself on a smaller piece of the problem."),
]


def conv(pair):
    return [("user", pair[0]), ("assistant", pair[1])]


def test_wordllama_loads_offline_and_matches_its_own_embed():
    from wordllama import WordLlama  # noqa: F401

    from curate.steps._embed import WordLlamaEmbedder, _wordllama

    texts = ["The cat sat on the mat.", "Stock markets fell sharply on Tuesday.", ""]
    ours = WordLlamaEmbedder().embed(pa.array(texts))
    theirs = _wordllama().embed(texts[:2], norm=True)
    assert np.allclose(ours[:2], theirs, atol=1e-4)
    assert not ours[2].any()  # no tokens: a zero vector, never anyone's duplicate


def test_reworded_copy_is_found_and_unrelated_rows_are_kept():
    t = rows_table([conv(BREAD)] + [conv(o) for o in OTHERS] + [conv(BREAD2)])
    out = dedup(step(), t, shards=2)
    reasons = out.column("_curate_drop_reason").to_pylist()
    assert reasons == [None, None, None, None, "semantic_duplicate"]
    assert out.column("semantic_duplicate_of").to_pylist() == [None, None, None, None, "r0"]
    assert out.column("semantic_cluster").to_pylist() == ["r0", None, None, None, "r0"]
    sim = out.column("semantic_similarity").to_pylist()
    assert sim[0] == sim[4] and 0.9 <= sim[4] <= 1.0
    assert out.column("_curate_drop_detail").to_pylist()[4].startswith("semantic duplicate of r0 (cosine 0.9")


def test_threshold_and_keep_policies():
    t = rows_table([conv(BREAD), conv(BREAD2)])
    assert dedup(step(threshold=0.999), t).column("_curate_drop_reason").to_pylist() == [None, None]
    out = dedup(step(keep="longest"), t)
    assert out.column("_curate_drop_reason").to_pylist() == ["semantic_duplicate", None]


def test_empty_rows_are_nobodys_duplicates():
    t = rows_table([[("user", "")], [("user", "")], [("user", "  ")]])
    assert dedup(step(), t).column("_curate_drop_reason").to_pylist() == [None, None, None]


def test_mrpc_paraphrases_score_higher_than_non_paraphrases():
    with gzip.open(SHARED_DATA / "semantic" / "mrpc_msr_paraphrase_test.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][:400]
    from curate.steps._embed import WordLlamaEmbedder

    e = WordLlamaEmbedder()
    cos = (e.embed(pa.array([r["string1"] for r in rows])) * e.embed(pa.array([r["string2"] for r in rows]))).sum(1)
    label = np.array([int(r["quality"]) for r in rows])
    assert cos[label == 1].mean() > cos[label == 0].mean() + 0.03


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        ("{threshold: 0}", "steps[0].threshold: must be > 0.0 (got 0)"),
        ("{dim: 512}", "steps[0].dim: must be <= 256 (got 512)"),
        ("{keep: best}", "steps[0].keep: must be one of 'first', 'longest' or 'score' (got 'best')"),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "semantic_dedup", step_yaml, message)


def test_local_and_ray_agree(tmp_path, ray_cluster):
    pairs = (
        [BREAD, BREAD2]
        + OTHERS
        + [
            (f"Tell me fact number {i} about the ocean.", f"The ocean fact {i}: it covers most of Earth.")
            for i in range(12)
        ]
    )
    recs = [
        {"id": f"x{i}", "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
        for i, (q, a) in enumerate(pairs)
    ]
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    steps = "\n  - semantic_dedup: {partitions: 3}"
    outs = {}
    for runner in ("local", "ray"):
        stats = run(
            pipeline_yaml(
                tmp_path / f"{runner}.yaml",
                src,
                tmp_path / runner,
                steps=steps,
                runner=runner,
                extra="  shard_rows: 5\n",
            )
        )
        assert stats["rows_rejected"] >= 1
        rej = read_dir(tmp_path / runner / "rejected")
        assert "x1" in rej.column("id").to_pylist()
        outs[runner] = b"".join(p.read_bytes() for p in sorted((tmp_path / runner / "kept").glob("*.parquet")))
    assert outs["local"] == outs["ray"]
