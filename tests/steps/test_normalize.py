"""normalize: each fix, code blocks untouched, switches, and bad inputs."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter

import pytest

from curate.steps.base import StepContext
from curate.steps.normalize import Normalize, NormalizeParams, fix_mojibake
from tests.helpers import REPO, SHARED_DATA, assert_step_config_error, rows_table, texts


def norm(values, **kw):
    s = Normalize(NormalizeParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))
    out = s.process(rows_table([[("user", v)] for v in values]))
    assert out.reason is None
    return [t[0] for t in texts(out.table)], out.counters


def test_each_fix():
    got, counters = norm(
        [
            "cafe\u0301",  # NFD -> NFC
            "a\x00b\x07c\r\nd",  # controls (CR dropped, tab/newline kept)
            "zero\u200bwidth\ufeff soft\u00adhyphen",
            "it\u00e2\u20ac\u2122s caf\u00c3\u00a9",  # mojibake of "it’s café"
            "one\n\n\n\n two  \t\nthree   ",
            "family 👨\u200d👩\u200d👧 stays",
        ]
    )
    assert got == [
        "café",
        "abc\nd",
        "zerowidth softhyphen",
        "it’s café",
        "one\n\n two\nthree",
        "family 👨\u200d👩\u200d👧 stays",
    ]
    assert counters["turns_fixed:mojibake"] == 1 and counters["turns_fixed:nfc"] == 1


def test_code_blocks_are_untouched():
    code = "```python\nx = 1   \n\n\n\ny = '\u200b'\t\n```"
    got, _ = norm([f"Text   \n\n\n\nmore\u200b\n{code}\nafter   "])
    assert got == [f"Text\n\nmore\n{code}\nafter"]


def test_switches():
    got, _ = norm(["a   \n\n\n\nb\u200b"], trailing_whitespace=False, blank_lines=False, invisible_chars=False)
    assert got == ["a   \n\n\n\nb\u200b"]


def test_mojibake_repair_is_conservative():
    assert fix_mojibake("Ã©tÃ©") == "été"
    assert fix_mojibake("Â£5 price") == "£5 price"
    for real in ("Ãlvaro from São Paulo", "naïve façade", "€ and â alone"):
        assert fix_mojibake(real) == real


def test_real_rows_only_change_whitespace_and_invisibles():
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())[:200]
    values = [t["value"] for r in rows for t in r["conversations"]]
    got, _ = norm(values)
    changed = 0
    for before, after in zip(values, got):
        expected = re.sub("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u200c\u200e\u200f\u2060-\u2064\ufeff\u00ad]", "", before)
        assert (
            "".join(expected.split()) == "".join(unicodedata.normalize("NFD", after).split())
            or "```" in before
            or "".join(unicodedata.normalize("NFD", expected).split())
            == "".join(unicodedata.normalize("NFD", after).split())
        )
        changed += before != after
    assert changed > 0


def test_bad_inputs():
    got, _ = norm(["", "\x00\x01", "word " * 250000, "```unclosed fence  \n\n\n", "\u200b" * 10])
    assert (
        got[:2] == ["", ""]
        and got[2] == ("word " * 250000).rstrip()
        and got[3] == "```unclosed fence  \n\n\n"
        and got[4] == ""
    )


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        ("{nfc: maybe}", "steps[0].nfc: must be true or false (got 'maybe')"),
        (
            "{nfd: true}",
            "steps[0].nfd: unknown key; allowed: nfc, control_chars, invisible_chars, mojibake, blank_lines, trailing_whitespace, parts",
        ),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "normalize", step_yaml, message)


INVISIBLE_TURNS = [
    "\u200b",
    "\u200d",
    "\u200b\u200d\u200c",
    "\u200e\u200f",
    "\u202a\u202c",
    "\u2066\u2069",
    "\u00ad",
    "\u034f",
    "\u3164",
    "\u115f\u1160",
    "\ufeff",
    " \u2800 ",
    "\ufe0f",
    "\U000e0041",
]


def test_turns_that_show_nothing_become_empty():
    got, counters = norm(INVISIBLE_TURNS + ["a\u200db", "👩\u200d💻", "\u2066x\u2069"])
    assert got[: len(INVISIBLE_TURNS)] == [""] * len(INVISIBLE_TURNS)
    assert got[len(INVISIBLE_TURNS) :] == ["a\u200db", "👩\u200d💻", "\u2066x\u2069"]  # text with them is kept
    assert counters["turns_fixed:blank"] >= 5  # the rest were already removed by the invisible_chars fix


def test_blank_turns_left_alone_when_invisible_chars_is_off():
    got, _ = norm(["\u200d", "\u3164"], invisible_chars=False)
    assert got == ["\u200d", "\u3164"]


@pytest.mark.parametrize(
    "params",
    [{}, {"nfc": False}, {"trailing_whitespace": False, "blank_lines": False}, {"control_chars": False}],
)
def test_fenced_turns_skipped_only_when_no_fix_changes_their_prose(params, monkeypatch):
    """Turns with code fences that _prose_may_change lets through untouched must be exactly what
    _python_fixes would return: random prose and fences with every fix's trigger placed before,
    inside and after fences (spaces before a fence, an unclosed fence ending in a newline, a
    decomposed accent next to a backtick, controls in code only), against every turn through Python."""
    import random

    import numpy as np

    rng = random.Random(11)
    pieces = [
        "```", "```py\nx = 1  \n```", "\n", "  ", "\t", "word", "é", "e\u0301", "\u0301", "\x07", "\u200b", "\r",
        "\n\n\n", " \n", "Ω", "`", "``", "😀", "한", "\u1100\u1161",
    ]  # fmt: skip
    convs = [[("user", "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) + "```")] for _ in range(3000)]
    convs += [[("user", "plain prose\n```\ncode  \n```\nmore prose")], [("user", "```\nunclosed\n")]]
    table = rows_table(convs)
    step = Normalize(NormalizeParams(**params), StepContext(rules_dir=REPO / "curate" / "rules"))
    fast = step.process(table)
    with monkeypatch.context() as m:
        m.setattr(Normalize, "_prose_may_change", lambda self, fenced: np.ones(len(fenced), bool))
        slow = step.process(table)
    assert fast.table.equals(slow.table)
    assert fast.counters == slow.counters
    skipped = ~step._prose_may_change(rows_table(convs).column("messages").combine_chunks().flatten().field("content"))
    assert 100 < skipped.sum() < len(convs) - 100


@pytest.mark.parametrize("params", [{}, {"control_chars": False}, {"trailing_whitespace": False, "nfc": False}])
def test_each_arrow_fix_runs_only_where_it_can_change_a_turn_with_the_same_result(params):
    """_arrow_fixes picks the turns for each pass by a byte scan; every pass on every turn gives the
    same texts and counts, on fuzzed turns (controls that hide blank runs and trailing spaces, C1
    controls, invisibles, decomposed accents) and on real ones."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from curate.steps import normalize

    rng = np.random.default_rng(4)
    pieces = ["a", "b ", " ", "\t", "\n", "\r", "\r\n", "\x00", "\x0b", "\x7f", "\x85", "\x9f", "\xa0", "\u200b",
              "\ufeff", "\u00ad", "e\u0301", "é", "中", " \n", "\n \n", "\t\n\n"]  # fmt: skip
    fuzzed = ["".join(rng.choice(pieces, rng.integers(0, 25))) for _ in range(5000)]
    real = [m["value"] for row in json.loads((SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())
            for m in row["conversations"]]  # fmt: skip
    arr = pa.array(fuzzed + real + [None, ""])
    p = NormalizeParams(**params)
    step = Normalize(p, StepContext(rules_dir=REPO / "curate" / "rules"))
    got_counts: Counter = Counter()
    got = step._arrow_fixes(arr, got_counts)
    expected, counts = arr, {}
    for enabled, name, fn in (
        (p.control_chars, "control_chars", lambda a: pc.replace_substring_regex(a, normalize._CONTROL, "")),
        (p.invisible_chars, "invisible_chars", lambda a: pc.replace_substring_regex(a, normalize._INVISIBLE, "")),
        (p.trailing_whitespace, "trailing_whitespace", lambda a: pc.replace_substring_regex(a, normalize._TRAILING, "\\1")),
        (p.blank_lines, "blank_lines", lambda a: pc.replace_substring_regex(a, normalize._BLANK_RUN, "\n\n")),
        (p.nfc, "nfc", lambda a: pc.utf8_normalize(a, "NFC")),
    ):  # fmt: skip
        if enabled:
            new = fn(expected)
            counts[f"turns_fixed:{name}"] = pc.sum(pc.not_equal(new, expected).cast(pa.int64())).as_py() or 0
            expected = new
    assert got.equals(expected) and dict(got_counts) == counts
    assert all(counts.values())  # every pass changed some turn here
