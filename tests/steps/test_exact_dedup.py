"""exact_dedup's key: which differences count (text) and which do not (case, whitespace)."""

from __future__ import annotations

import pytest

from curate.textkey import text_hashes
from tests.helpers import rows_table


def same_key(a, b, turns="all", normalise=True) -> bool:
    has, h = text_hashes(rows_table([a, b]), turns, normalise)
    assert has.all()
    return h[0] == h[1]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([("user", "Hello  World")], [("user", "hello world")]),
        ([("user", " hello\n\tworld \n")], [("user", "hello world")]),
        ([("user", "hello\u00a0world\u3000")], [("user", "HELLO WORLD")]),
        ([("user", "Grüße ÄÖÜ")], [("user", "grüße äöü")]),
    ],
)
def test_case_and_whitespace_do_not_count(a, b):
    assert same_key(a, b)
    assert not same_key(a, b, normalise=False)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([("user", "a b"), ("assistant", "c")], [("user", "a"), ("assistant", "b c")]),  # turn boundaries count
        ([("user", "helloworld")], [("user", "hello world")]),  # whitespace vs none counts
        ([("user", "hello.")], [("user", "hello")]),
    ],
)
def test_text_differences_count(a, b):
    assert not same_key(a, b)


def test_turn_selection_and_empty_rows():
    t = rows_table(
        [
            [("system", "x"), ("user", "q"), ("assistant", "a1")],
            [("user", "q"), ("assistant", "a2")],
            [("user", "  ")],
            [("assistant", "only")],
        ]
    )
    has, h = text_hashes(t, "user")
    assert list(has) == [True, True, False, False]
    assert h[0] == h[1]
    has, h = text_hashes(t, "first_pair")
    assert h[0] != h[1]
