"""minhash_dedup: datasketch-identical signatures, planted clusters on real ShareGPT rows, keep
policies, determinism, local == Ray, and its bad inputs."""

from __future__ import annotations

import html
import json
import random
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH

from curate.errors import UserError
from curate.steps import _minhash
from curate.steps.base import StepContext
from curate.steps.minhash_dedup import KNOWN_LSH_SHAPES, MinhashDedup, MinhashDedupParams, lsh_shape
from tests.helpers import (
    REPO,
    SHARED_DATA,
    assert_step_config_error,
    parquet_bytes,
    pipeline_yaml,
    read_dir,
    rows_table,
    run,
    write_jsonl,
)

SHAREGPT = json.loads((SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())
ROLE = {"human": "user", "gpt": "assistant", "system": "system"}


def conv(record) -> list[tuple[str, str]]:
    return [(ROLE.get(t["from"], "user"), t["value"]) for t in record["conversations"]]


def step(**kw) -> MinhashDedup:
    return MinhashDedup(MinhashDedupParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))


def dedup(s: MinhashDedup, table: pa.Table) -> dict[str, tuple[str, float]]:
    """Run the three phases in-process the way the engine does: {removed id: (kept id, similarity)}."""
    summary = s.summarize(table)
    parts = summary.column("_partition").to_numpy()
    partials = [s.resolve_partition(summary.filter(pa.array(parts == p))) for p in range(s.num_partitions())]
    d = s.finalize(partials)
    key_to_id = dict(zip(table.column("_curate_key").to_pylist(), table.column("id").to_pylist()))
    return {
        key_to_id[k]: (kept, sim)
        for k, kept, sim in zip(
            d.column("_curate_key").to_pylist(),
            d.column("duplicate_of").to_pylist(),
            d.column("dup_similarity").to_pylist(),
        )
    }


# ---------------------------------------------------------------------- identical to datasketch


@pytest.mark.parametrize(("mode", "ngram"), [("word", 5), ("word", 1), ("word", 3), ("char", 5), ("char", 2)])
def test_signatures_are_datasketchs(mode, ngram):
    texts = [" ".join(t for _, t in conv(r)) for r in SHAREGPT[:30]]
    texts += [
        "",
        "one",
        "two words",
        "日本語のテキストです これは テスト",
        "Ünïcödé — “quotes” <b>bold</b> &amp; more",
        "x " * 5000,
    ]
    clean = _minhash.clean_texts(pa.array(texts))
    a, b = _minhash.datasketch_permutations(64, 7)
    sig, counts = _minhash.signatures(clean, ngram, mode, a, b)
    for i, text in enumerate(clean.to_pylist()):
        sh = _minhash.shingles(text, ngram, mode)
        assert counts[i] == len(sh)
        m = MinHash(num_perm=64, seed=7, hashfunc=_minhash.shingle_hash)
        m.update_batch(sh)
        assert np.array_equal(m.hashvalues, sig[i]), (mode, ngram, i)


def test_markup_is_stripped_only_where_a_tag_or_entity_can_be():
    """clean_texts scans only the texts holding '<' or '&' for tags and entities: the same result as
    every pass on every text (nulls, texts without markup, markup after decoding, and all-plain input)."""
    texts = [" ".join(t for _, t in conv(r)) for r in SHAREGPT[:200]]
    texts += [
        "<b>bold</b> &amp; 1. more",
        "&lt;a href=x&gt;link&lt;/a&gt;",
        "a < b and c > d",
        "AT&T",
        None,
        "",
        "plain",
    ]
    lowered = pc.replace_substring_regex(pc.utf8_lower(pa.array(texts)), _minhash._LIST_MARKER, " ")
    re2_tags = lambda x: pc.replace_substring_regex(x, _minhash._TAG, " ")  # noqa: E731
    assert _minhash.clean_texts(pa.array(texts)).equals(_minhash.strip_markup(lowered, re2_tags))
    plain = pa.array(["No markup here", "1. a list item"])
    assert _minhash.clean_texts(plain).to_pylist() == ["no markup here", " a list item"]


def test_the_compiled_tag_pass_is_the_tag_regexs():
    """_strip_tags equals RE2's `_TAG` replacement: closing tags, '<' in prose, unclosed tags, '<>'
    inside, and the 1,000-character bound counted in characters (multi-byte ones too)."""
    rng = np.random.default_rng(9)
    pieces = ["<", ">", "</", "<a", "<B ", "</p>", "< b>", "<1>", "a", " ", "é", "中", "😀", "&lt;", "/", "\n"]
    texts = ["".join(rng.choice(pieces, rng.integers(0, 40))) for _ in range(5000)]
    for n in (999, 1000, 1001):
        for filler in ("x", "é", "中"):
            texts += [f"<a{filler * n}>", f"</b{filler * n}> tail", f"x <p{filler * n}"]
    arr = pa.array(texts + [None, ""])
    expected = pc.replace_substring_regex(arr, _minhash._TAG, " ")
    assert _minhash._strip_tags(arr).equals(expected)
    assert _minhash._strip_tags(arr.cast(pa.large_string())).equals(expected.cast(pa.large_string()))
    assert expected.to_pylist().count(" ") >= 6  # the bound was reached both ways


def test_known_lsh_shapes_are_datasketchs_optimum():
    """The shipped shapes (no datasketch import at run time) are what datasketch computes; other
    pairs still ask datasketch."""
    from datasketch.lsh import _optimal_param

    for (threshold, num_perm), shape in KNOWN_LSH_SHAPES.items():
        assert shape == _optimal_param(threshold, num_perm, 0.2, 0.8)
        assert lsh_shape(MinhashDedupParams(threshold=threshold, num_perm=num_perm)) == shape
    assert lsh_shape(MinhashDedupParams()) == (14, 8)
    assert lsh_shape(MinhashDedupParams(threshold=0.6, num_perm=100)) == _optimal_param(0.6, 100, 0.2, 0.8)


def test_signatures_load_into_datasketch_lsh():
    """Users can check new data against a curated set with datasketch's own index."""
    texts = [" ".join(t for _, t in conv(r)) for r in SHAREGPT[:50]]
    clean = _minhash.clean_texts(pa.array(texts))
    a, b = _minhash.datasketch_permutations(128, 1)
    sig, _ = _minhash.signatures(clean, 5, "word", a, b)
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for i, row in enumerate(sig):
        lsh.insert(str(i), LeanMinHash(seed=1, hashvalues=row, scheme="affine32"))
    probe = MinHash(num_perm=128, seed=1, hashfunc=_minhash.shingle_hash)
    probe.update_batch(_minhash.shingles(clean[7].as_py(), 5))
    assert "7" in lsh.query(probe)


def test_memory_does_not_grow_with_document_length():
    """A 1 MB turn hashes in one pass with O(ngram) scratch: the signature of a long repeated text
    equals that of its single distinct shingle set."""
    long = pa.array(["lorem ipsum dolor sit amet " * 40000])
    short = pa.array(["lorem ipsum dolor sit amet " * 3])
    a, b = _minhash.datasketch_permutations(32, 1)
    assert np.array_equal(_minhash.signatures(long, 5, "word", a, b)[0], _minhash.signatures(short, 5, "word", a, b)[0])


# ---------------------------------------------------------------------- planted clusters


def edited(text: str, rng: random.Random, frac: float) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), int(len(words) * frac)):
        words[i] = rng.choice(["apple", "river", "quantum", "blue", "seven"])
    return " ".join(words)


def as_chatgpt_html(markdown: str) -> str:
    """The markup of 2023 ShareGPT dumps: paragraphs, and code in the ChatGPT code-block chrome."""
    parts = ['<div class="markdown prose w-full break-words dark:prose-invert light">']
    for block in re.split(r"(```\w*\n.*?```)", markdown, flags=re.S):
        m = re.match(r"```(\w*)\n(.*?)```", block, flags=re.S)
        if m:
            parts.append(
                f'<pre><div class="bg-black"><div class="flex"><span>{m[1]}</span><button>Copy code</button></div>'
                f'<div><code class="hljs language-{m[1]}">{html.escape(m[2])}</code></div></div></pre>'
            )
        else:
            parts += [f"<p>{html.escape(p)}</p>" for p in block.split("\n\n") if p.strip()]
    return "".join(parts + ["</div>"])


def planted():
    """Base rows from real ShareGPT plus copies of known kinds, and siblings that must stay."""
    rng = random.Random(3)
    bases = [r for r in SHAREGPT if 150 <= len(" ".join(t for _, t in conv(r)).split()) <= 1500][:40]
    convs, ids, expect = [], [], {}
    for i, r in enumerate(bases):
        c = conv(r)
        convs.append(c)
        ids.append(f"b{i}")
        if i % 4 == 0:
            convs.append([(role, edited(t, rng, 0.015)) for role, t in c])
            ids.append(f"b{i}-edit")
            expect[f"b{i}-edit"] = f"b{i}"
        elif i % 4 == 1:
            last = c[-1][1]
            convs.append(c[:-1] + [(c[-1][0], last[: int(len(last) * 0.85)])])
            ids.append(f"b{i}-trunc")
            expect[f"b{i}-trunc"] = f"b{i}"
        elif i % 4 == 2:
            convs.append([(role, as_chatgpt_html(t) if role == "assistant" else t) for role, t in c])
            ids.append(f"b{i}-html")
            expect[f"b{i}-html"] = f"b{i}"
    # Template siblings: the same long prompt, answers of other conversations: not duplicates.
    prompt = (
        "Write a detailed, friendly reply to the following customer e-mail, keeping our brand voice and "
        "mentioning the refund policy, the shipping times and the support hours. " * 3
    )
    others = [r for r in SHAREGPT if r not in bases and 100 <= len(conv(r)[-1][1].split()) <= 300][:4]
    for j, r in enumerate(others):
        other = conv(r)
        convs.append([("user", prompt), ("assistant", other[-1][1])])
        ids.append(f"sib{j}")
    return convs, ids, expect


def test_planted_copies_are_found_and_siblings_kept():
    convs, ids, expect = planted()
    found = dedup(step(), rows_table(convs, ids))
    assert {k: v[0] for k, v in found.items()} == expect
    assert all(0.7 <= sim <= 1.0 for _, sim in found.values())


def test_html_copies_need_markup_stripping():
    convs, ids, expect = planted()
    found = dedup(step(strip_markup=False), rows_table(convs, ids))
    html_ids = {k for k in expect if k.endswith("-html")}
    assert html_ids and not html_ids <= set(found)  # without stripping, some HTML renders are missed
    assert html_ids <= set(dedup(step(), rows_table(convs, ids)))


def test_verification_drops_weak_candidates():
    """min_similarity=0.99 keeps only near-identical pairs; 0 accepts every LSH candidate."""
    convs, ids, expect = planted()
    strict = dedup(step(min_similarity=0.99), rows_table(convs, ids))
    assert set(strict) < set(expect)


def test_keep_policies():
    base = conv(SHAREGPT[5])
    longer = base + [("user", "thanks, and one more thing about the last answer"), ("assistant", "Sure, here it is.")]
    convs, ids = [base, longer, base], ["a", "b", "c"]
    assert {k: v[0] for k, v in dedup(step(), rows_table(convs, ids)).items()} == {"b": "a", "c": "a"}
    assert {k: v[0] for k, v in dedup(step(keep="longest"), rows_table(convs, ids)).items()} == {"a": "b", "c": "b"}
    t = rows_table(convs, ids).append_column("q_score", pa.array([0.1, 0.2, 0.9]))
    assert {k: v[0] for k, v in dedup(step(keep="score", score_column="q_score"), t).items()} == {"a": "c", "b": "c"}


def test_chains_form_one_cluster():
    """a~b and b~c put a, b, c in one cluster even if a and c are less alike: one row is kept."""
    rng = random.Random(5)
    a = conv(SHAREGPT[8])
    b = [(r, edited(t, rng, 0.02)) for r, t in a]
    c = [(r, edited(t, rng, 0.02)) for r, t in b]
    found = dedup(step(), rows_table([a, b, c], ["a", "b", "c"]))
    assert {k: v[0] for k, v in found.items()} == {"b": "a", "c": "a"}


def test_turn_selection():
    base = conv(SHAREGPT[12])
    other_answers = [
        (r, t if r == "user" else "A completely different answer about gardening and soil.") for r, t in base
    ]
    t = rows_table([base, other_answers], ["a", "b"])
    assert dedup(step(), t) == {}
    assert set(dedup(step(turns="user"), t)) == {"b"}


# ---------------------------------------------------------------------- bad inputs


def test_rows_without_words_are_nobodys_duplicates():
    t = rows_table([[("user", "")], [("user", "")], [("user", "!!! ???")], [("user", "<br><br>")], [("user", "")]])
    assert dedup(step(), t) == {}


def test_mixed_scripts_and_char_shingles():
    zh = "我们今天讨论机器学习中的数据清洗方法以及如何去除重复的对话数据这是一个很重要的问题"
    t = rows_table(
        [
            [("user", zh)],
            [("user", zh.replace("很重要", "非常重要"))],
            [("user", "Совсем другой текст на русском языке о погоде")],
        ]
    )
    assert set(dedup(step(shingle="char", ngram=3), t)) == {"r1"}
    assert dedup(step(), t) == {}  # one "word" each: different words, no match


def test_one_megabyte_turns():
    big = "word1 " + " ".join(f"w{i % 5000}" for i in range(180000))
    t = rows_table([[("user", big)], [("user", big + " tail")], [("user", "unrelated short text here")]])
    assert set(dedup(step(), t)) == {"r1"}


def test_empty_batch():
    t = rows_table([[("user", "x")]]).slice(0, 0)
    s = step()
    assert s.summarize(t).num_rows == 0
    assert s.finalize([s.resolve_partition(s.summarize(t))]).num_rows == 0


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        ("{num_bands: 14}", "steps[0]: num_bands and rows_per_band go together; set both or neither"),
        ("{num_bands: 20, rows_per_band: 8}", "steps[0]: num_bands x rows_per_band must be <= num_perm (20 x 8 > 112)"),
        ("{keep: score}", "steps[0]: keep: score needs score_column (e.g. a q_* column of quality_heuristics)"),
        ("{ngram: 0}", "steps[0].ngram: must be >= 1 (got 0)"),
        ("{threshold: 1.5}", "steps[0].threshold: must be < 1.0 (got 1.5)"),
        ("{shingle: bytes}", "steps[0].shingle: must be one of 'word' or 'char' (got 'bytes')"),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "minhash_dedup", step_yaml, message)


def test_missing_score_column_is_one_line(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "conversations": [{"from": "human", "value": "hi there"}]}])
    y = pipeline_yaml(
        tmp_path / "p.yaml", src, tmp_path / "out", steps="\n  - minhash_dedup: {keep: score, score_column: q_nope}"
    )
    with pytest.raises(UserError, match="minhash_dedup: keep: score needs column 'q_nope', which no earlier step adds"):
        run(y)


# ---------------------------------------------------------------------- end to end


def planted_file(tmp_path):
    convs, ids, expect = planted()
    recs = [
        {"id": i, "conversations": [{"from": {"user": "human", "assistant": "gpt"}[r], "value": t} for r, t in c]}
        for c, i in zip(convs, ids)
    ]
    return write_jsonl(tmp_path / "in.jsonl", recs), expect


def test_end_to_end_local_is_deterministic(tmp_path):
    src, expect = planted_file(tmp_path)
    steps = "\n  - exact_dedup: {}\n  - minhash_dedup: {partitions: 4}"
    stats = run(pipeline_yaml(tmp_path / "p1.yaml", src, tmp_path / "o1", steps=steps, extra="  shard_rows: 17\n"))
    run(pipeline_yaml(tmp_path / "p2.yaml", src, tmp_path / "o2", steps=steps, extra="  shard_rows: 17\n"))
    rejected = read_dir(tmp_path / "o1" / "rejected")
    assert dict(zip(rejected.column("id").to_pylist(), rejected.column("duplicate_of").to_pylist())) == expect
    assert set(rejected.column("_curate_drop_reason").to_pylist()) == {"near_duplicate"}
    assert stats["rows_rejected"] == len(expect)
    assert parquet_bytes(tmp_path / "o1") == parquet_bytes(tmp_path / "o2")


def test_ray_matches_local(tmp_path, ray_cluster):
    src, expect = planted_file(tmp_path)
    steps = "\n  - minhash_dedup: {partitions: 3}"
    run(pipeline_yaml(tmp_path / "pl.yaml", src, tmp_path / "local", steps=steps, extra="  shard_rows: 11\n"))
    run(
        pipeline_yaml(
            tmp_path / "pr.yaml", src, tmp_path / "ray", steps=steps, runner="ray", extra="  shard_rows: 11\n"
        )
    )
    assert parquet_bytes(tmp_path / "local") == parquet_bytes(tmp_path / "ray")
    rej = read_dir(tmp_path / "ray" / "rejected")
    assert set(rej.column("id").to_pylist()) == set(expect)
