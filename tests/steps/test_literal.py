"""The RE2-run literal operations give what Arrow's literal kernels give, on fuzzed strings with
regex metacharacters, controls, backslashes and non-ASCII text (they fail if a character is left
unescaped or the replacement's backslashes are read as group references)."""

import random

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curate.steps import _literal

CHARS = list("ab.\n\r\t/`*+?()[]{}|\\^$ #-~&é€😀0\x00") + ["\\1", "$1"]


def _fuzz(seed: int):
    rng = random.Random(seed)
    texts = pa.array(["".join(rng.choice(CHARS) for _ in range(rng.randint(0, 40))) for _ in range(2000)] + [None, ""])
    literals = ["".join(rng.choice(CHARS) for _ in range(rng.randint(1, 4))) for _ in range(150)]
    return texts, literals + ["\n", "```", "...", "…", "/", "<think>", "&amp;"]


@pytest.mark.parametrize("seed", [0, 1])
def test_same_as_arrows_literal_kernels(seed):
    texts, literals = _fuzz(seed)
    for lit in literals:
        assert _literal.contains(texts, lit).equals(pc.match_substring(texts, lit)), repr(lit)
        assert _literal.count(texts, lit).equals(pc.count_substring(texts, lit)), repr(lit)
        assert _literal.replace(texts, lit, "\\1$1&").equals(pc.replace_substring(texts, lit, "\\1$1&")), repr(lit)
        for max_splits in (None, 1):
            got = _literal.split(texts, lit, max_splits)
            assert got.equals(pc.split_pattern(texts, lit, max_splits=max_splits)), repr(lit)


def test_an_empty_literal_is_refused():
    with pytest.raises(ValueError, match="empty literal"):
        _literal.pattern("")
