"""_toxicity_text.prepare: the compiled scan gives the bytes of `_prepare_reference` (the Arrow and RE2
definition the model was trained on), with and without a lexicon, on real turns and on fuzzed text
built to reach each rule's corners; nulls and texts with non-ASCII heads take the reference."""

from __future__ import annotations

import csv
import json
import random
import re

import pyarrow as pa
import pytest

from curate.readers import plan, read_shard
from curate.records import FieldNames
from curate.resources import MODELS_DIR
from curate.steps import _toxicity_text
from curate.steps._toxicity_text import (
    LEXICON_TOKEN,
    MAX_CHARS,
    _prepare_reference,
    _words,
    lexicon_pattern,
    prepare,
)
from curate.steps.base import read_rules_lines
from tests.helpers import REPO, SHARED_DATA

SHIPPED = lexicon_pattern(json.loads((MODELS_DIR / "toxicity_fasttext.json").read_text())["lexicon"])
# Words the fuzzed text spells often, among them what the replacement passes take out ("rt", "user"
# of "@user", "amp" of "&amp;"): the lexicon is looked for after them.
FUZZ_LEXICON = lexicon_pattern(["rt", "art", "user", "amp", "s&m", "a b", "b-a", "ab", "x_y", "9a", "a.b", "é", "a"])


def assert_same(texts: pa.Array, lexicon: str | None) -> None:
    got, want = prepare(texts, lexicon), _prepare_reference(texts, lexicon)
    assert got.type == want.type == pa.string()
    assert len(got) == len(want) == len(texts)
    for i, (g, w) in enumerate(zip(got.to_pylist(), want.to_pylist())):
        assert g == w, (i, texts[i].as_py(), g, w)


def turns(path) -> list[str]:
    convs = read_shard(plan([str(path)], "auto", 100_000)[0], FieldNames())[0].column("messages").to_pylist()
    return [m["content"] for conv in convs for m in conv]


@pytest.fixture(scope="module")
def real_texts() -> pa.Array:
    """Chat turns (several formats, code, many languages), tweets (retweets, @mentions, HTML
    entities, URLs), talk-page comments and ToxiGen sentences."""
    texts = turns(REPO / "sample_data" / "sharegpt_sample.jsonl")
    for name in (
        "sharegpt92k_cleaned_sample.json",
        "sharegpt_llamafactory_glaive_toolcall_en_demo.json",
        "sharegpt_llamafactory_dpo_en_demo.json",
        "alpaca_llamafactory_alpaca_en_demo.json",
        "alpaca_llamafactory_identity.json",
        "openai_messages_llamafactory_kto_en_demo.json",
    ):
        texts += turns(SHARED_DATA / "instructions" / name)
    tox = SHARED_DATA / "toxicity"
    with open(tox / "davidson_hate_offensive_labeled.csv", newline="") as f:
        texts += [r["tweet"] for r in csv.DictReader(f)]
    with open(tox / "wikipedia_toxicity_nonfuzzed_testset.csv", newline="") as f:
        texts += [r["comment"] for r in csv.DictReader(f)]
    with open(tox / "toxigen_demonstrations.jsonl") as f:
        texts += [json.loads(line)["text"] for line in f]
    return pa.array(texts, pa.string())


PIECES = [
    "http://", "https://", "HTTPS://", "hTtP://", "http:/", "https:", "www.", "WWW.", "ww.", "w.", "://",
    "@", "@user", "@_x", "@@", "&amp;", "&#39;", "&#;", "&#x27;", "&x", "&", "&#", "#", ";", "/",
    "rt", "RT", "rT", " rt ", "_rt", "rt_", "art", "rtx", "r", "t", "s&m", "a b", "b-a", "x_y", "9a", "a.b",
    "a", "B", "z", "w", "h", "0", "9", "_", "-",
    ".", "!", "?", ",", ";", ":", "(", ")", '"', "'", "*",
    " ", "  ", "\t", "\n", "\r", "\v", "\f", "\x1c", "\x1f", "\x00", "\x7f",
    "é", "É", "中", "😀",
]  # fmt: skip
ASCII_PIECES = [p for p in PIECES if p.isascii()]


def fuzz_texts(n: int, seed: int) -> list[str]:
    """Pieces glued together or spaced; every fifth text ASCII only; every tenth a long one whose
    cut at MAX_CHARS falls inside a piece, with non-ASCII text after the cut or before it."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        pieces = ASCII_PIECES if i % 5 == 0 else PIECES
        glue = rng.choice(["", "", " "])
        text = glue.join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        if i % 10 == 9:
            filler = "".join(rng.choice(ASCII_PIECES) for _ in range(MAX_CHARS))[: MAX_CHARS - rng.randint(0, 12)]
            text = filler + text + rng.choice(["", "é", "中文", "😀"])
        texts.append(text)
    return texts


def edge_texts() -> list[str | None]:
    cut = "x" * (MAX_CHARS - 1)
    return [
        "", " ", None, "\v", "\x1c a \x1f", " . ", "rt", "RT @a: b", "&amp;", "&#;", "&#1;", "&a&b;", "@", "@@a",
        "www.", "www.x", "http://", "http:// x", "https://x.y/z?q=1", "xhttp://y", "awww.b", "a\vb\x00c",
        cut + "é", cut[:-1] + "é", cut + "rt", cut[:-1] + "rt", cut[:-5] + "http://x.y", cut + " ", "é" * 3000,
        "a b", "a  b", "ab", "x_y", "s&m", "s&amp;m", "b-a", "user", "@user", "#user", "art", "9a", "a.b", "A.B",
    ]  # fmt: skip


@pytest.mark.parametrize("lexicon", [None, SHIPPED, FUZZ_LEXICON], ids=["none", "shipped", "fuzz"])
def test_real_turns_match_the_reference(real_texts, lexicon):
    assert len(real_texts) > 25_000
    assert_same(real_texts, lexicon)


@pytest.mark.parametrize("lexicon", [None, SHIPPED, FUZZ_LEXICON], ids=["none", "shipped", "fuzz"])
def test_fuzzed_text_matches_the_reference(lexicon):
    assert_same(pa.array(fuzz_texts(6000, seed=1) + edge_texts(), pa.string()), lexicon)


def test_every_ascii_byte_alone_at_the_ends_and_inside():
    texts = []
    for ch in map(chr, range(128)):
        texts += [ch, f"{ch}a{ch}", f"a{ch}b", f"{ch}.{ch}", f".{ch} {ch}x", f"w{ch}.x", f"r{ch}t {ch}rt{ch}"]
    assert_same(pa.array(texts), FUZZ_LEXICON)


def test_the_scan_takes_the_ascii_texts(monkeypatch):
    """Only nulls and texts with a non-ASCII character in their head go to the reference (else the
    tests above would compare the reference with itself)."""
    texts = pa.array(fuzz_texts(2000, seed=2) + edge_texts(), pa.string())
    sent = []
    monkeypatch.setattr(
        _toxicity_text,
        "_prepare_reference",
        lambda t, lexicon=None: sent.append(len(t)) or _prepare_reference(t, lexicon),
    )
    marked = [t is not None and t.endswith(LEXICON_TOKEN) for t in prepare(texts, FUZZ_LEXICON).to_pylist()]
    heads = [t if t is None else t[:MAX_CHARS] for t in texts.to_pylist()]
    scanned = [t is not None and t.isascii() for t in heads]
    assert sent == [len(texts) - sum(scanned)]
    assert 0 < sent[0] < len(texts) // 2
    hits = sum(m for m, s in zip(marked, scanned) if s)
    assert 0.2 < hits / sum(scanned) < 0.8  # the scan both finds lexicon words and finds none


def test_nulls_empty_arrays_offsets_and_types():
    for lexicon in (None, FUZZ_LEXICON):
        assert_same(pa.array([None, None], pa.string()), lexicon)
        assert_same(pa.array([], pa.string()), lexicon)
        assert_same(pa.array(["", None, "a"], pa.string()), lexicon)
        sliced = pa.array(fuzz_texts(300, seed=3) + [None], pa.string()).slice(7, 250)
        assert_same(sliced, lexicon)
        large = pa.array(fuzz_texts(300, seed=4) + [None], pa.large_string())
        assert prepare(large, lexicon).equals(_prepare_reference(large, lexicon))
        chunked = pa.chunked_array([fuzz_texts(200, seed=5), [None, "é", "a"]], pa.string())
        assert prepare(chunked, lexicon).to_pylist() == _prepare_reference(chunked, lexicon).to_pylist()


@pytest.mark.parametrize(
    "lexicon",
    [
        r"(?i)\b(ass|rt)\b",  # not a lexicon_pattern(): RE2 reads it
        "",
        lexicon_pattern(["&x", "ab"]),  # a word that starts with no \w: no \b where the scan looks
        lexicon_pattern(["x-", "ab"]),
        lexicon_pattern([""]),
    ],
)
def test_other_patterns_take_the_reference(lexicon):
    assert _words(lexicon) is None
    assert_same(pa.array(fuzz_texts(500, seed=5) + edge_texts(), pa.string()), lexicon)


def test_the_word_list_with_its_own_pattern():
    """The wordlist scorer's case-insensitive pattern (the reference path) and the same words as a
    lexicon_pattern() (the scan)."""
    words = [w.lower() for w in read_rules_lines(REPO / "curate" / "rules" / "toxicity_words_en.txt", "words")]
    texts = pa.array(fuzz_texts(500, seed=6) + [f"so {w}!" for w in words] + [f"{w}s {w}_" for w in words])
    assert_same(texts, r"(?i)\b(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b")
    assert _words(lexicon_pattern(words)) is not None
    assert_same(texts, lexicon_pattern(words))


def test_escaped_words_read_back_as_re2_reads_them():
    """Every character re.escape escapes, inside a word: the scan's reading of the pattern and
    RE2's agree (and a word is found only as a whole word)."""
    specials = [chr(i) for i in range(128) if re.escape(chr(i)) != chr(i)]
    words = [f"a{ch}b" for ch in specials]
    assert _words(lexicon_pattern(words)) == tuple(w.encode() for w in words)
    texts = [f"x {w} y" for w in words] + [f"x{w} y" for w in words] + [f"{w}c" for w in words] + [w for w in words]
    assert_same(pa.array(texts), lexicon_pattern(words))
