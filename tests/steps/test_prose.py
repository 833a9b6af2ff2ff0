"""_prose.strip_code: its compiled kernel returns exactly what the RE2 passes it replaced return
(`_strip_code_re2`, kept as its specification) on real turns, on fuzzed text dense in what those
passes look for, and on each rule's corners."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curate.readers import plan, read_shard
from curate.records import FieldNames
from curate.steps._prose import _strip_code_re2, strip_code
from tests.helpers import REPO, SHARED_DATA


def assert_same_as_re2(texts: list[str | None], max_chars: int | None = None) -> None:
    arr = pa.array(texts, pa.string())
    got, got_code = strip_code(arr, max_chars)
    want, want_code = _strip_code_re2(arr, max_chars)
    assert got.type == want.type
    assert len(got) == len(want) == len(got_code) == len(want_code) == len(texts)
    got_texts, want_texts = got.to_pylist(), want.to_pylist()
    for i, text in enumerate(texts):  # the first input that differs, to read in the failure
        assert (got_texts[i], got_code[i]) == (want_texts[i], want_code[i]), repr(text)


def turn_texts(path: Path) -> list[str | None]:
    table = read_shard(plan([str(path)], "auto", 100_000)[0], FieldNames())[0]
    return table.column("messages").combine_chunks().flatten().field("content").to_pylist()


def real_texts() -> list[str | None]:
    """The turns of the sample data and of the shared instruction sets that the default reader
    reads (ShareGPT, Alpaca, OpenAI messages: prose, code, markdown, many languages)."""
    paths = [REPO / "sample_data" / "sharegpt_sample.jsonl", *sorted((SHARED_DATA / "instructions").iterdir())]
    texts = [t for p in paths for t in turn_texts(p)]
    assert len(texts) > 5_000  # the data is there
    return texts


PIECES = [
    "`", "``", "```", "````", "~", "~~", "~~~", "~~~~", "http://", "https://", "www.", "http", "://", "ftp://",
    ";", "{", "}", "(", ")", ",", ":", "=", ">", "=>", "} ,", "},", ") :", "):", "[", "]", "<", "_", "$", "\\",
    "/", "&", "|", "^", "@", "%", "+", "*", "#", "-", ".", "!", "?", "'", '"',
    "#include", "#define", "def f(", "def (", "class X:", "class X(", "class :", "import a.b", "import ",
    "from x import", "from x.y  import", "from  import", "function (", "function f(", "functionf(", "function",
    "return ", "return", "var x", "let y", "const z", "var ", "public ", "private ", "protected ", "SELECT ",
    "print(", "console.", "$ ", "$", ">>> ", ">>>", "@x", "@ ", "@_",
    " ", "  ", "\t", "\r", "\x0b", "\x0c", "\n", "\n\n", "\r\n", "\u2028", "\u00a0", "\x1c",
    "a", "word", "The quick brown fox", "x_y", "42", "é", "中", "文字", "😀", "ü" * 3,
    "x" * 390, "y" * 401, "é" * 150, "中" * 130, "😀" * 99,
]  # fmt: skip


def fuzz_texts(n: int = 6000, seed: int = 11) -> list[str | None]:
    rng = random.Random(seed)
    texts: list[str | None] = [None, "", " ", "\n"]
    for _ in range(n):
        texts.append("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 60))))
    return texts


@pytest.fixture(scope="module")
def real():
    return real_texts()


@pytest.mark.parametrize("max_chars", [None, 2000, 100])
def test_same_as_re2_on_real_turns(real, max_chars):
    assert_same_as_re2(real, max_chars)


@pytest.mark.parametrize("max_chars", [None, 300, 40, 1])
def test_same_as_re2_on_fuzzed_text(max_chars):
    assert_same_as_re2(fuzz_texts(), max_chars)


def test_same_as_re2_on_lines_of_fuzzed_pieces():
    """Lines built from whole pieces (the line rules see a piece at a line's start and end)."""
    rng = random.Random(3)
    lines = [" ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6))) for _ in range(20_000)]
    assert_same_as_re2(["\n".join(lines[i : i + 5]) for i in range(0, len(lines), 5)])


CORNERS = [
    # fenced blocks: 4+ backticks, unclosed, nested kinds, back to back
    "````", "`````", "``````", "a````b````c", "```x```y```", "```unclosed\ncode", "~~~x\n```y~~~z```",
    "```a~~~b```c~~~d", "``", "a``b", "```", "~~~", "~~~~~~~", "x\n```\n```\n```",
    # inline code: around a newline, empty, exactly 400 and 401 characters, multi-byte
    "`a\nb`", "`\n`", "``x`", "`x``y`", "`a` `b` `", "`" + "a" * 400 + "`", "`" + "a" * 401 + "`",
    "`" + "é" * 400 + "`", "`" + "é" * 401 + "`", "`" + "中" * 400 + "`", "`" + "😀" * 401 + "`",
    "`" + "a" * 401 + "`b`", "`" + "é" * 200 + "a" * 200 + "`",
    # URLs: nothing after the scheme, at the end, non-ASCII and \v as part of them
    "https://", "https:// x", "http://", "see https://x.y/z now", "www.", "see www.", "www.x", "wwww.x y",
    "http://é中 x", "http://a\x0bb c", "http://a\u2028b c", "xhttp://y", "https://https://x", "http:/x",
    # line shapes
    "  ;  ", " ,.!? ", " - ", "} ,", "},", "{,", "x },", "x } ,", "f(x) :", "f(x)  \t :", "f(x):", "x ):",
    "a => b", "x =>", "x = >", "   ", "\t", "\r", "\x0b", "\x0c", " \x0b ", "\n\n\n", " \n \n",
    "x;\r", "x;\x0b", "x;\u00a0", "— –", "😀", "·", "def f(x)", "  def f (x)", "class A(B):", "class A",
    "import os", "import ", "from a.b import c", "from a.b importx", "#include <x>", "function(x)",
    "function  name (", "return", "return x", "var", "var x", "let", "const", "SELECT *", "select *",
    "print(1)", "console.log", "$ ls", "$ls", ">>> 1", ">>>1", "@decorator", "@ x", "\t@x", "é@x",
    # symbol density around the 12% line
    "a/b/c " + "w" * 22, "a/b/c " + "w" * 21, "a/b/c " + "é" * 21, "(((", "a (b) [c] d e f g h i j k l m n",
    "x" * 25 + "+++", "x" * 22 + "+++", "x" * 21 + "+++",
]  # fmt: skip


@pytest.mark.parametrize("text", CORNERS)
def test_same_as_re2_on_corner(text):
    assert_same_as_re2([text, text + "\nprose", "prose\n" + text, " " + text + " "])


def test_nulls_and_empty():
    assert_same_as_re2([None, "", None, "x;", None])
    assert_same_as_re2([])
    assert_same_as_re2([None], max_chars=5)
    texts, had_code = strip_code(pa.array([None, "", "x;"]))
    assert texts.to_pylist() == ["", "", ""] and had_code.tolist() == [False, False, True]


def test_sliced_input():
    """An array that is a slice of another (its offsets start past 0)."""
    arr = pa.array(fuzz_texts(300), pa.string()).slice(7, 200)
    got, got_code = strip_code(arr)
    want, want_code = _strip_code_re2(arr)
    assert got.equals(want) and np.array_equal(got_code, want_code)
