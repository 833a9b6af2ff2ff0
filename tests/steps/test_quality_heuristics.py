"""quality_heuristics: Gopher quality/repetition rules per turn, conversation-level verdict."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from curate.errors import UserError
from curate.readers import plan, read_shard
from curate.records import FieldNames
from curate.steps.base import StepContext, apply_map_step
from curate.steps.language import Language, LanguageParams
from curate.steps.quality_heuristics import _DIGIT_RUN, QualityHeuristics, QualityParams, _digit_runs, load_rules
from tests.helpers import REPO, SHARED_DATA, assert_step_config_error, pipeline_yaml, rows_table, run

CTX = StepContext(rules_dir=REPO / "curate" / "rules")
INSTRUCTIONS = SHARED_DATA / "instructions"


def step(**params) -> QualityHeuristics:
    s = QualityHeuristics(QualityParams(**params), CTX)
    s.setup()
    return s


def run_step(s, table):
    out, stats = apply_map_step(s, table)
    return out.to_pylist(), stats


def read(name: str, **names):
    return read_shard(plan([str(INSTRUCTIONS / name)], "auto", 100_000)[0], FieldNames(**names))[0]


def alpaca_outputs(min_words: int = 120) -> list[str]:
    """Long real answers with nothing code-like in them (so prose == text)."""
    import pyarrow as pa

    from curate.steps._prose import strip_code

    rows = json.loads((INSTRUCTIONS / "alpaca_llamafactory_alpaca_en_demo.json").read_text())
    texts = [r["output"] for r in rows if len(r["output"].split()) >= min_words]
    prose, had_code = strip_code(pa.array(texts))
    return [t for t, p, c in zip(texts, prose.to_pylist(), had_code) if p == t and not c]


# ---------------------------------------------------------------------- reference definitions


def ref_duplicates(parts: list[str]) -> tuple[int, int]:
    """datatrove's find_duplicates, on stripped non-empty parts (our documented variant)."""
    seen, dup, chars = set(), 0, 0
    for p in (p.strip() for p in parts):
        if not p:
            continue
        if p in seen:
            dup, chars = dup + 1, chars + len(p)
        seen.add(p)
    return dup, chars


def ref_top(words: list[str], n: int) -> int:
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count if count > 1 else 0


def ref_dup_chars(words: list[str], n: int) -> int:
    """Characters (spaces excluded) of words covered by a repeated occurrence of an n-gram."""
    first, covered = {}, [False] * len(words)
    for i in range(len(words) - n + 1):
        g = tuple(words[i : i + n])
        if g in first:
            covered[i : i + n] = [True] * n
        else:
            first[g] = i
    return sum(len(w) for w, c in zip(words, covered) if c)


def test_metrics_match_reference_definitions_on_real_turns():
    texts = alpaca_outputs()[:40]
    # plus repetitive variants, so the duplicate branches are exercised
    texts += [t + "\n\n" + "\n\n".join(t.split("\n\n")[:2]) * 2 for t in texts[:10]]
    rows, _ = run_step(
        step(rules=["dup_lines", "dup_paragraphs", "top_ngram", "dup_ngrams"]),
        rows_table([[("assistant", t)] for t in texts]),
    )
    for t, r in zip(texts, rows):
        words = t.split()
        lines = re.split(r"\n+", t)
        paras = re.split(r"\n\s*\n", t)
        nonempty_lines = [x for x in lines if x.strip()]
        nonempty_paras = [x for x in paras if x.strip()]
        assert r["q_dup_line_frac"] == pytest.approx(ref_duplicates(lines)[0] / len(nonempty_lines), rel=1e-5)
        assert r["q_dup_line_char_frac"] == pytest.approx(ref_duplicates(lines)[1] / len(t), rel=1e-5, abs=1e-7)
        assert r["q_dup_para_frac"] == pytest.approx(ref_duplicates(paras)[0] / len(nonempty_paras), rel=1e-5)
        assert r["q_dup_para_char_frac"] == pytest.approx(ref_duplicates(paras)[1] / len(t), rel=1e-5, abs=1e-7)
        for n in (2, 3, 4):
            assert r[f"q_top_{n}gram"] == pytest.approx(ref_top(words, n) / len(t), rel=1e-5, abs=1e-7)
        for n in (5, 7, 10):
            assert r[f"q_dup_{n}gram"] == pytest.approx(ref_dup_chars(words, n) / len(t), rel=1e-5, abs=1e-7)


def test_rules_file_cites_a_source_for_every_rule():
    import yaml

    data = yaml.safe_load((REPO / "curate" / "rules" / "quality_heuristics.yaml").read_text())["rules"]
    for rule, spec in data.items():
        assert "Gopher" in spec["source"] or "curate" in spec["source"], rule
    gopher = load_rules(REPO / "curate" / "rules" / "quality_heuristics.yaml")["gopher"]
    # the paper's Table A1 / A.1 values, as datatrove implements them
    assert gopher["dup_lines"] == {"dup_line_frac": 0.3, "dup_line_char_frac": 0.2}
    assert gopher["top_ngram"] == {"top_2gram": 0.2, "top_3gram": 0.18, "top_4gram": 0.16}
    assert gopher["dup_ngrams"]["dup_10gram"] == 0.1 and gopher["too_few_words"] == {"min_words": 50}


# ---------------------------------------------------------------------- chat is not web text


def test_short_legitimate_turns_pass():
    table = rows_table(
        [
            [("user", "Thanks!"), ("assistant", "You're welcome.")],
            [("user", "Capital of France?"), ("assistant", "Paris.")],
            [("user", "2+2?"), ("assistant", "4")],
            [("user", "Hi"), ("assistant", "")],
        ]
    )
    rows, _ = run_step(step(), table)
    assert [r["_curate_drop_reason"] for r in rows] == [None, None, None, "too_few_words"]
    assert rows[0]["q_stop_words"] is None and rows[0]["q_dup_5gram"] is None  # too short to measure
    # the paper's web-text values reject them all
    rows, _ = run_step(step(preset="gopher"), table)
    assert {r["_curate_drop_reason"] for r in rows} == {"too_few_words"}


def test_real_rows_mostly_pass():
    rows, stats = run_step(step(), read("alpaca_llamafactory_alpaca_en_demo.json"))
    assert stats.rows_dropped <= 0.01 * len(rows)
    rows, stats = run_step(step(), read("sharegpt_fastchat_dummy_conversation.json"))
    assert stats.rows_dropped == 0


def test_repetition_spam_built_from_real_text_is_rejected():
    """A real answer that starts looping (its last paragraph / sentence / 7-word phrase repeated)
    until the loop is as long as the answer, as a model stuck in a decoding loop does until it hits
    its token limit; the original answers pass."""
    outputs = alpaca_outputs()[:30]
    originals = [[("user", "Please answer."), ("assistant", t)] for t in outputs]

    def loop(text: str, unit: str, sep: str) -> str:
        return text + (sep + unit) * (len(text) // (len(unit) + len(sep)) + 1)

    spam = []
    for t in outputs:
        paras = [p for p in t.split("\n\n") if p.strip()]
        sents = re.split(r"(?<=[.!?])\s+", t.strip())
        spam.append(loop(t, paras[-1], "\n\n"))
        spam.append(loop(t, sents[-1], " "))
        spam.append(loop(t, " ".join(t.split()[-7:]), " "))
    rows, _ = run_step(step(), rows_table(originals + [[("user", "Please answer."), ("assistant", s)] for s in spam]))
    orig, looped = rows[: len(originals)], rows[len(originals) :]
    assert sum(r["_curate_drop_reason"] is not None for r in orig) <= 1
    caught = [r for r in looped if r["_curate_drop_reason"] is not None]
    assert len(caught) / len(looped) >= 0.9
    assert {r["_curate_drop_reason"] for r in caught} <= {"dup_lines", "dup_paragraphs", "top_ngram", "dup_ngrams"}
    assert all(r["_curate_drop_turn"] == 1 and r["_curate_drop_span"] for r in caught)


def test_any_failing_assistant_turn_rejects_and_is_blamed():
    good = alpaca_outputs()[0]
    bad = "\n".join(["I am sorry, I cannot help with that request right now."] * 12)
    rows, _ = run_step(
        step(), rows_table([[("user", "hi"), ("assistant", good), ("user", "more"), ("assistant", bad)]])
    )
    assert rows[0]["_curate_drop_reason"] == "dup_lines"
    assert rows[0]["_curate_drop_turn"] == 3
    assert rows[0]["_curate_drop_span"] == "I am sorry, I cannot help with that request right now."
    assert rows[0]["q_dup_line_frac"] == pytest.approx(11 / 12)
    # roles: checking only user turns ignores the looping answer
    rows, _ = run_step(step(roles=["user"]), rows_table([[("user", "hi there, how are you"), ("assistant", bad)]]))
    assert rows[0]["_curate_drop_reason"] is None


def test_code_is_not_prose():
    """A Python answer full of '#' comments and short identifiers is not hash spam nor short words."""
    code = "```python\n" + "\n".join(f"# step {i}\nx{i} = f(x{i - 1})  # update" for i in range(1, 40)) + "\n```"
    prose = alpaca_outputs()[1]
    rows, _ = run_step(
        step(preset="gopher", rules=["too_many_hashes", "mean_word_length", "non_alpha_words"]),
        rows_table([[("user", "Write the loop."), ("assistant", prose + "\n\n" + code)]]),
    )
    assert rows[0]["_curate_drop_reason"] is None
    assert rows[0]["q_hash_ratio"] == 0


def test_real_digit_run_row():
    """Glaive row 162: the answer's Go code contains one string of 5,639 zeros (a decoding loop)."""
    table = read("sharegpt_llamafactory_glaive_toolcall_en_demo.json")
    rows, _stats = run_step(step(rules=["repeated_digits"]), table)
    hit = [r for r in rows if r["_curate_drop_reason"] == "repeated_digits"]
    assert [r["id"] for r in hit] == ["sharegpt_llamafactory_glaive_toolcall_en_demo:162"]
    assert hit[0]["q_digit_run"] == 5639 and set(hit[0]["_curate_drop_span"]) == {"0"}
    assert max(r["q_digit_run"] for r in rows if r not in hit) <= 8


def test_digit_run_scan_agrees_with_the_regex():
    """The byte scan gives the longest `([0-9])\\1+` run (1 for a lone digit, 0 for none) on real
    turns and on non-ASCII digits (which are not [0-9]) beside ASCII ones."""
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())
    texts = [m["value"] for r in rows for m in r["conversations"]]
    texts += ["", "x", "\u0663\u0663\u0663 11", "a1\u0661\u06611", "00000x999", "1\u00e911", "7" * 12 + "8"]

    def reference(t: str) -> int:
        runs = [len(m.group()) for m in _DIGIT_RUN.finditer(t)]
        return max(runs, default=1 if re.search("[0-9]", t) else 0)

    got = _digit_runs(pa.array(texts))
    assert got.tolist() == [reference(t) for t in texts]
    assert got[-5:].tolist() == [2, 1, 5, 2, 12]


# ---------------------------------------------------------------------- language awareness


def test_english_only_rules_skip_other_languages():
    """Real Russian Arena turns have no English stop words: rejected without `lang`, kept with it."""
    table = read("openai_messages_arena_refusal_labeled.jsonl", conversations="conversation_a")
    lang = Language(LanguageParams(), CTX)
    lang.setup()
    with_lang, _ = apply_map_step(lang, table)
    ru = with_lang.filter(np.array([x == "ru" for x in with_lang.column("lang").to_pylist()]))
    assert ru.num_rows >= 3
    only = ["no_stop_words", "mean_word_length", "non_alpha_words"]
    rows, stats = run_step(step(rules=only), ru.drop_columns(["lang"]))
    assert sum(r["_curate_drop_reason"] == "no_stop_words" for r in rows) >= 3
    rows, stats = run_step(step(rules=only), ru)
    assert all(r["_curate_drop_reason"] is None for r in rows)
    assert stats.counters["skipped_non_english:no_stop_words"] == ru.num_rows
    assert stats.counters["skipped_non_english:mean_word_length"] == ru.num_rows


# ---------------------------------------------------------------------- params


def test_threshold_override_and_rule_choice():
    text = "\n".join(
        ["Line one says something.", "Line two says another thing."] * 3
        + [f"Unique line number {i} here." for i in range(12)]
    )
    table = rows_table([[("user", "hi"), ("assistant", text)]])
    rows, _ = run_step(step(rules=["dup_lines"]), table)
    assert rows[0]["_curate_drop_reason"] is None  # 4/18 duplicate lines < 0.6
    rows, _ = run_step(step(rules=["dup_lines"], thresholds={"dup_line_frac": 0.2}), table)
    assert rows[0]["_curate_drop_reason"] == "dup_lines"
    assert rows[0]["_curate_drop_detail"] == "dup_line_frac 0.222 > 0.2 (turn 1)"
    assert rows[0]["q_top_2gram"] is None  # rules not run leave their columns empty
    # bullet_lines is off in the chat preset; asked for by name it runs with the paper's value
    sentences = [x for t in alpaca_outputs()[:4] for x in re.split(r"(?<=[.!?])\s+", t) if len(x.split()) > 4]
    bullets = "\n".join(f"- {x}" for x in sentences[:12])
    rows, _ = run_step(step(), rows_table([[("user", "list"), ("assistant", bullets)]]))
    assert rows[0]["_curate_drop_reason"] is None
    rows, _ = run_step(step(rules=["bullet_lines"]), rows_table([[("user", "list"), ("assistant", bullets)]]))
    assert rows[0]["_curate_drop_reason"] == "bullet_lines"


# ---------------------------------------------------------------------- bad inputs


def test_bad_inputs_never_crash():
    mb_prose = ("The committee reviewed the annual budget and approved the new library building. " * 13_000)[:1_000_000]
    mb_noise = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(300_000))
    table = rows_table(
        [
            [("user", ""), ("assistant", "")],
            [],
            [("user", "😀🎉👍🔥💯😂🙏 " * 20), ("assistant", "🙂")],
            [("user", "Summarise this."), ("assistant", mb_prose)],
            [("user", "Mixed: English words, русские слова, 中文字符, العربية, and more English words here")],
            [("user", mb_noise)],
            [("user", "```\n```"), ("assistant", "~~~")],
        ]
    )
    start = time.perf_counter()
    rows, _ = run_step(step(), table)
    assert time.perf_counter() - start < 20
    reasons = [r["_curate_drop_reason"] for r in rows]
    assert reasons[0] == reasons[1] == "too_few_words"
    assert reasons[3] == "too_many_words"  # 156,000 words
    assert reasons[4] is None and rows[4]["q_words"] == 15  # 11 spaced words + 4 Han characters
    assert rows[5]["q_words"] == 300_000  # Han characters count as words
    assert all(isinstance(r, (str, type(None))) for r in reasons)


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        (
            "{thresholds: {dup_line_frax: 0.3}}",
            "steps[0].thresholds: unknown threshold 'dup_line_frax'; did you mean 'dup_line_frac'?",
        ),
        ("{thresholds: {dup_line_frac: -1}}", "steps[0].thresholds: threshold dup_line_frac must be >= 0 (got -1.0)"),
        (
            "{rules: [dup_line]}",
            "steps[0].rules[0]: must be one of "
            + ", ".join(
                repr(r)
                for r in [
                    "too_few_words",
                    "too_many_words",
                    "repeated_digits",
                    "dup_lines",
                    "dup_paragraphs",
                    "top_ngram",
                    "dup_ngrams",
                    "mean_word_length",
                    "too_many_hashes",
                    "too_many_ellipses",
                    "bullet_lines",
                    "ellipsis_lines",
                    "non_alpha_words",
                ]
            )
            + " or 'no_stop_words' (got 'dup_line')",
        ),
        ("{preset: web}", "steps[0].preset: must be one of 'chat' or 'gopher' (got 'web')"),
        ("{prose_min_words: 0}", "steps[0].prose_min_words: must be >= 1 (got 0)"),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "quality_heuristics", step_yaml, message)


def test_broken_rules_file_is_one_line(tmp_path):
    (tmp_path / "quality_heuristics.yaml").write_text("rules:\n  too_few_words: {chat: {min_words: 3}}\n")
    s = QualityHeuristics(QualityParams(), StepContext(rules_dir=tmp_path))
    with pytest.raises(UserError, match=r"quality_heuristics\.yaml: each rule needs chat/gopher thresholds"):
        s.setup()


# ---------------------------------------------------------------------- end to end


def test_end_to_end_language_then_quality(tmp_path):
    """HH-RLHF is not a reader format; write a slice of it as OpenAI messages JSONL first."""
    records = []
    with gzip.open(INSTRUCTIONS / "hh_rlhf_harmless_base_test.jsonl.gz", "rt") as f:
        for i, line in enumerate(f):
            if i >= 300:
                break
            parts = re.split(r"\n\n(Human|Assistant): ", "\n\n" + json.loads(line)["chosen"].lstrip("\n"))
            msgs = [
                {"role": "user" if parts[j] == "Human" else "assistant", "content": parts[j + 1]}
                for j in range(1, len(parts) - 1, 2)
            ]
            records.append({"messages": msgs})
    records.append(
        {
            "messages": [
                {"role": "user", "content": "Repeat after me."},
                {"role": "assistant", "content": "\n".join(["All work and no play makes Jack a dull boy."] * 40)},
            ]
        }
    )
    src = tmp_path / "hh.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    path = pipeline_yaml(
        tmp_path / "p.yaml", src, tmp_path / "out", steps="\n  - language: {keep: [en]}\n  - quality_heuristics: {}"
    )
    stats = run(path)
    assert stats["rows_in"] == 301
    quality = stats["steps"][1]
    assert quality["step"] == "quality_heuristics" and quality["dropped"].get("dup_lines", 0) >= 1
    assert stats["rows_rejected"] == sum(sum(s["dropped"].values()) for s in stats["steps"])


# ---------------------------------------------------------------------- compiled and RE2 paths agree

EDGE_WORDS = [
    "the",
    "The.",
    "THE",
    "th-e",
    "(the)",
    "t1he",
    "...",
    "—",
    "«the»",
    "café",
    "naïve",
    "the\x01",
    "\x0bthe",
    "to,",
    "Be!",
    "of's",
    "and/or",
    "with:",
    "have?",
    "that's",
    "**bold**",
    "$100",
    "+-=",
    "a",
    "`x`",
    "你好",
    "the😀",
    "🙂",
    "E=mc²",
    "1,000",
    "_init_",
    "[1]",
    "#",
    "\x7f",
    "HAVE",
    "withx",
]


def real_turn_texts() -> list[str]:
    texts = []
    for name in (
        "sharegpt92k_cleaned_sample.json",
        "oasst_en_100_trees.jsonl",
        "sharegpt_llamafactory_glaive_toolcall_en_demo.json",
        "alpaca_llamafactory_identity.json",
    ):
        for conv in read(name).column("messages").to_pylist():
            texts += [m["content"] for m in conv]
    return texts


def test_word_shapes_match_the_re2_reference_on_real_rows():
    """The byte-scan path (ASCII) and RE2 (the reference, any script) give the same shapes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from curate.steps._word_shapes import spaced_word_counts, spaced_word_counts_re2, word_shapes, word_shapes_re2

    texts = pa.array(real_turn_texts() + [" ".join(EDGE_WORDS), "a\x0bb c\fd", "", "   ", "x\ty\rz\nw"])
    words = pc.list_flatten(pc.utf8_split_whitespace(texts))
    words = words.filter(pc.greater(pc.utf8_length(words), 0))
    assert len(words) > 100_000 and pc.sum(pc.invert(pc.string_is_ascii(words))).as_py() > 100  # both paths exercised
    fast, ref = word_shapes(words), word_shapes_re2(words)
    for field in ("symbol", "bare_len", "has_letter", "stop"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(ref, field), err_msg=field)
    np.testing.assert_array_equal(spaced_word_counts(texts), spaced_word_counts_re2(texts))


def test_words_of_matches_arrows_split_and_the_word_shapes_on_real_rows():
    """_word_shapes.words_of (one byte scan for ASCII texts) gives the words of Arrow's
    utf8_split_whitespace, in order, each with word_shapes' shape, word_hashes' hash and its length."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from curate.steps._word_shapes import word_hashes, word_shapes, words_of

    texts = pa.array(
        real_turn_texts()
        + [" ".join(EDGE_WORDS), "a\x0bb c\fd", "", "   ", "x\ty\rz\nw", "\x1c\x1dq\x1e\x1fr", "é x", "x\u2003y"]
        + [None]
    )
    split = pc.utf8_split_whitespace(pc.fill_null(texts, ""))
    parents = pc.list_parent_indices(split).to_numpy()
    flat = pc.list_flatten(split)
    real = pc.greater(pc.binary_length(flat), 0).to_numpy(zero_copy_only=False)
    flat, parents = flat.filter(pa.array(real)), parents[real]
    ref_shapes = word_shapes(flat)
    got = words_of(texts)
    assert not pc.all(pc.string_is_ascii(pc.fill_null(texts, ""))).as_py()  # both paths exercised
    order = np.argsort(got.text, kind="stable")  # the texts' order is free, the words' within one is not
    np.testing.assert_array_equal(got.text[order], parents)
    for field in ("symbol", "bare_len", "has_letter", "stop"):
        np.testing.assert_array_equal(getattr(got.shapes, field)[order], getattr(ref_shapes, field), err_msg=field)
    np.testing.assert_array_equal(got.hash[order], word_hashes(flat))
    np.testing.assert_array_equal(got.chars[order], pc.utf8_length(flat).to_numpy())
    assert len(np.unique(got.hash)) == len(pc.unique(flat))  # equal words, equal hashes; no collision here
    dense = words_of(pa.array(["a " * 1000 + "b"]))  # more words than the first guess of their number
    assert len(dense.text) == 1001 and dense.chars.sum() == 1001 and len(np.unique(dense.hash)) == 2


def test_duplicate_parts_match_the_re2_reference_on_real_and_generated_texts():
    """The compiled line/paragraph pass equals Arrow's split, trim and dictionary encoding on real turns
    and on fuzzed texts of newlines, RE2 and Arrow whitespace (\\v is Arrow's, not RE2's) and repeats."""
    import pyarrow as pa

    from curate.steps.quality_heuristics import _duplicate_parts, _duplicate_parts_re2

    rng = np.random.default_rng(3)
    pieces = ["\n", "\n\n", " \n", "\t", "\r\n", "\x0b", "\x0c", "\x1c", " ", "ab", "ab ", "cd", "é", "x"]
    fuzzed = ["".join(rng.choice(pieces, rng.integers(0, 30))) for _ in range(4000)]
    texts = pa.array(real_turn_texts() + fuzzed + ["", "\n", "a\n\x0b\na", "a\n \n\na\n\n"])
    measured = np.ones(len(texts), bool)
    measured[::7] = False
    for kind, got in _duplicate_parts(texts, measured).items():
        ref = _duplicate_parts_re2(texts, kind, measured)
        np.testing.assert_array_equal(got[0], ref[0], err_msg=kind)
        np.testing.assert_array_equal(got[1], ref[1], err_msg=kind)
        assert (ref[0][measured] > 0).sum() > 100 and not ref[1][~measured].any()


def test_hash_ratio_counts_hashes_outside_headings_in_measured_turns_only():
    """Heading markers are not hash spam; the heading pass runs only on measured turns holding a '#'."""
    body = "The release fixed the login bug reported by our users last week and made the app faster. " * 4
    with_hashes = f"## Summary\n{body}\nSee issue #12, #13 and #14.\n### Details\n{body}"
    n_words = len(with_hashes.split())
    rows, _ = run_step(
        step(preset="gopher", rules=["too_many_hashes"]),
        rows_table(
            [
                [("assistant", with_hashes)],
                [("assistant", body)],
                [("assistant", "Short: see #1 and #2.")],
            ]
        ),
    )
    assert rows[0]["q_hash_ratio"] == pytest.approx(3 / n_words)
    assert rows[1]["q_hash_ratio"] == 0
    assert rows[2]["q_hash_ratio"] is None  # under prose_min_words: not measured
