"""split_conversations: packing, FastChat's two lost-data edges, a real tokenizer.json, bad inputs, runners."""

from __future__ import annotations

import json

import pytest

from curate.errors import UserError
from curate.steps.base import StepContext, apply_map_step
from curate.steps.split_conversations import MAX_PIECES, SplitConversations, SplitParams
from curate.testing import byte_level_tokenizer
from tests.helpers import (
    REPO,
    SHARED_DATA,
    assert_step_config_error,
    pipeline_yaml,
    read_dir,
    rows_table,
    run,
    texts,
    write_jsonl,
)


def split(convs, **kw):
    step = SplitConversations(SplitParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))
    return apply_map_step(step, rows_table(convs))


def sharegpt_convs() -> list[list[tuple[str, str]]]:
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())
    return [[("user" if m["from"] == "human" else "assistant", m["value"]) for m in r["conversations"]] for r in rows]


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory):
    """A real byte-level BPE tokenizer.json, trained here on ShareGPT text (no download)."""
    corpus = [t for conv in sharegpt_convs()[:200] for _, t in conv]
    return byte_level_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json", corpus, 2000)


def test_packs_exchanges_and_repeats_the_system_turn():
    conv = [
        ("system", "Be brief."),
        ("user", "a " * 20),
        ("assistant", "b " * 20),
        ("user", "c " * 10),
        ("assistant", "d " * 10),
        ("user", "e " * 50),
        ("assistant", "f"),
        ("user", "g " * 30),
        ("assistant", "h " * 30),
    ]
    out, stats = split([conv, [("user", "hi"), ("assistant", "hello")]], max_tokens=40, turn_overhead=0)
    assert out.column("id").to_pylist() == ["r0_0", "r0_1", "r0_2", "r1"]
    pieces = texts(out)
    assert (
        pieces[0] == [t for _, t in conv[:5]]
        and pieces[1] == [conv[0][1], conv[5][1], "f"]
        and pieces[2][0] == "Be brief."
    )
    # nothing lost: the pieces minus the repeated system turn are the conversation, in order
    assert [conv[0][1]] + [t for p in pieces[:3] for t in p[1:]] == [t for _, t in conv]
    assert out.column("split_tokens").to_pylist() == [33, 29, 33, None]  # ASCII chars / 4, rounded up
    assert out.column("split_of").to_pylist() == ["r0", "r0", "r0", None]
    assert out.column("split_parts").to_pylist() == [3, 3, 3, None]
    assert out.column("_curate_key").to_pylist() == [0, 1, 2, 256]  # parent key + piece: order kept
    assert stats.rows_added == 2 and stats.rows_kept == 4 and stats.counters["rows_split"] == 1


def test_fastchat_edges_lose_nothing():
    # FastChat drops the last pair when it overflows the running sample; here it starts the next one.
    out, _ = split(
        [[("user", "q" * 40), ("assistant", "a" * 40), ("user", "r" * 40), ("assistant", "b" * 40)]],
        max_tokens=30,
        turn_overhead=0,
    )
    assert (
        texts(out) == [["q" * 40, "a" * 40], ["r" * 40, "b" * 40]] and out.column("_curate_drop_reason").null_count == 2
    )
    # A pair over the limit on its own: a piece of its own, rejected with a reason (FastChat emitted
    # an empty sample, then one over the limit) ...
    conv = [("user", "hi"), ("assistant", "x" * 400), ("user", "ok"), ("assistant", "fine")]
    out, stats = split([conv], max_tokens=30, turn_overhead=2)
    assert texts(out) == [["hi", "x" * 400], ["ok", "fine"]]
    assert out.column("_curate_drop_reason").to_pylist() == ["split_exchange_over_max_tokens", None]
    assert out.column("_curate_drop_detail")[0].as_py() == "turns 0-1 of r0: 105 tokens > max_tokens 30"
    assert stats.rows_kept == 1 and stats.rows_dropped == 1 and stats.rows_added == 1
    # ... or kept when asked
    out, _ = split([conv], max_tokens=30, turn_overhead=2, oversized="keep")
    assert out.column("_curate_drop_reason").null_count == 2 and out.column("split_tokens").to_pylist() == [105, 6]


def test_real_tokenizer_counts_and_limits(tokenizer_json):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    convs = sharegpt_convs()[200:400]
    out, stats = split(convs, max_tokens=1024, tokenizer=str(tokenizer_json))
    assert stats.counters["rows_split"] > 20
    kept = out.filter(out.column("_curate_drop_reason").is_null())
    for conv, tokens in zip(texts(kept), kept.column("split_tokens").to_pylist()):
        real = sum(len(tok.encode(t, add_special_tokens=False).ids) + 6 for t in conv)
        assert tokens is None and real <= 1024 or tokens == real <= 1024
    # every turn of every input conversation is in exactly one output row, in order
    by_parent: dict[str, list[str]] = {}
    for row_id, of, conv in zip(out.column("id").to_pylist(), out.column("split_of").to_pylist(), texts(out)):
        by_parent.setdefault(of or row_id, []).extend(conv)
    assert [by_parent[f"r{i}"] for i in range(len(convs))] == [[t for _, t in c] for c in convs]
    # the estimate is in the real count's range on English ShareGPT text
    est, _ = split(convs, max_tokens=1024)
    assert 0.5 < est.num_rows / out.num_rows < 2


def test_bad_inputs(tmp_path, tokenizer_json):
    convs = [
        [],
        [("user", "")],
        [("user", "x" * 1_000_000), ("assistant", "ok")],
        [("user", "你好世界" * 100), ("assistant", "Привет " * 100)],
        [("assistant", "orphan reply"), ("user", "q"), ("assistant", "a")],
    ]
    out, stats = split(convs, max_tokens=64)
    assert stats.rows_in == 5 and stats.rows_kept + stats.rows_dropped == 5 + stats.rows_added
    assert (
        out.column("_curate_drop_reason").to_pylist().count("split_exchange_over_max_tokens") == 2
    )  # 1 MB turn, CJK pair
    # one token per CJK character: 400 + 6 -> over 64 alone
    # too many pieces for the key space: the whole row is rejected, not silently cut
    many = [[("user", "q" * 40), ("assistant", "a" * 40)] * (MAX_PIECES + 1)]
    out, _ = split(many, max_tokens=30, turn_overhead=0)
    assert out.num_rows == 1 and out.column("_curate_drop_reason")[0].as_py() == "split_too_many_pieces"
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="is not a tokenizer.json"):
        split([[("user", "x")]], tokenizer=str(bad))


def test_end_to_end_local_and_ray_agree(tmp_path, ray_cluster):
    records = [
        {
            "id": f"c{i}",
            "conversations": [
                {"from": "human" if j % 2 == 0 else "gpt", "value": f"turn {j} " * 40} for j in range(2 + i % 7)
            ],
        }
        for i in range(60)
    ]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    steps = "\n  - split_conversations: {max_tokens: 200}\n  - exact_dedup: {}"
    local = run(pipeline_yaml(tmp_path / "l.yaml", src, tmp_path / "local", steps=steps))
    ray = run(pipeline_yaml(tmp_path / "r.yaml", src, tmp_path / "ray", steps=steps, runner="ray"))
    assert (
        local["rows_added"] > 0
        and local["rows_in"] + local["rows_added"] == local["rows_kept"] + local["rows_rejected"]
    )
    assert (ray["rows_added"], ray["rows_kept"]) == (local["rows_added"], local["rows_kept"])
    a, b = read_dir(tmp_path / "local" / "kept"), read_dir(tmp_path / "ray" / "kept")
    assert a.equals(b)
    assert all("_" in i for i, p in zip(a.column("id").to_pylist(), a.column("split_parts").to_pylist()) if p)


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        ("{max_tokens: 8}", "steps[0].max_tokens: must be >= 16 (got 8)"),
        (
            "{tokenizer: /nonexistent/tok}",
            "steps[0].tokenizer: no tokenizer.json at /nonexistent/tok (give the file, or a model folder that holds it)",
        ),
        ("{oversized: truncate}", "steps[0].oversized: must be one of 'reject' or 'keep' (got 'truncate')"),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "split_conversations", step_yaml, message)
