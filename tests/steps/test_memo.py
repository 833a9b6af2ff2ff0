"""The per-text memo of language, quality_heuristics and toxicity changes no decision: batches with
repeated turns (within a batch and across batches of one step instance) give every column, reason,
detail and span that the same rows give one by one, each through a new step (an empty memo)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from curate.readers import plan, read_shard
from curate.records import FieldNames
from curate.steps._memo import TextMemo, text_keys
from curate.steps.base import StepContext, apply_map_step
from curate.steps.language import Language, LanguageParams
from curate.steps.quality_heuristics import QualityHeuristics, QualityParams
from curate.steps.toxicity import Toxicity, ToxicityParams
from tests.helpers import REPO, SHARED_DATA, rows_table

CTX = StepContext(rules_dir=REPO / "curate" / "rules")
REPEATED_LINES = "The same sentence about the weather comes back again and again in this reply.\n" * 12
TOXIC = "You are a stupid worthless idiot and a bastard, shut up you moron, nobody wants you here."
FRENCH = "Bonjour, pouvez-vous m'expliquer comment fonctionne la photosynthèse dans les plantes vertes ?"
CODE = "```python\nfor i in range(10):\n    print(i * i)\n```"


@pytest.fixture(scope="module")
def batches() -> list[pa.Table]:
    """Two batches of real ShareGPT rows and made ones; the second reuses turns of the first in new
    combinations, and both repeat turns inside themselves."""
    path = SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json"
    table = read_shard(plan([str(path)], "auto", 100_000)[0], FieldNames())[0]
    real = [[(m["role"], m["content"] or "") for m in conv[:6]] for conv in table.column("messages").to_pylist()[:30]]
    made = [
        [("user", "Tell me about the weather."), ("assistant", REPEATED_LINES)],
        [("user", TOXIC), ("assistant", "I will not answer that.")],
        [("user", FRENCH), ("assistant", FRENCH)],
        [("user", "Show me squares."), ("assistant", CODE)],
        [("user", "continue"), ("assistant", "")],
    ]
    first = real[:20] + made + made[:3]
    mixed = [[real[i][0], real[i + 1][-1]] for i in range(10)]  # a user turn of one row, a reply of another
    second = real[20:] + mixed + made[::-1] + [list(reversed(c)) for c in made]
    return [rows_table(first), rows_table(second, ids=[f"b{i}" for i in range(len(second))])]


def assert_same_as_one_by_one(new_step, batches: list[pa.Table]) -> None:
    step = new_step()
    turns = 0
    for batch in batches:
        together = apply_map_step(step, batch)[0].to_pylist()
        alone = [apply_map_step(new_step(), batch.slice(i, 1))[0].to_pylist()[0] for i in range(batch.num_rows)]
        assert together == alone
        turns += sum(len(m) for m in batch.column("messages").to_pylist())
    assert 0 < len(step._memo) < turns * 0.9  # the batches did repeat texts, and the memo served them


@pytest.fixture(scope="module")
def language_model():
    step = Language(LanguageParams(), CTX)
    step.setup()
    return step.model


@pytest.mark.parametrize("params", [{"keep": ["en"]}, {"drop": ["fr"], "windows": 4, "max_chars": 200}])
def test_language_memo_keeps_every_decision(batches, language_model, params):
    def new_step():
        step = Language(LanguageParams(**params), CTX)
        step._model = language_model
        return step

    assert_same_as_one_by_one(new_step, batches)
    out = apply_map_step(new_step(), batches[0])[0].to_pylist()
    assert {r["lang"] for r in out} >= {"en", "fr"}


@pytest.mark.parametrize("params", [{}, {"preset": "gopher"}, {"rules": ["dup_lines", "no_stop_words"]}])
def test_quality_heuristics_memo_keeps_every_decision_and_span(batches, params):
    assert_same_as_one_by_one(lambda: QualityHeuristics(QualityParams(**params), CTX), batches)
    out = apply_map_step(QualityHeuristics(QualityParams(**params), CTX), batches[0])[0].to_pylist()
    spans = [r["_curate_drop_span"] for r in out if r["_curate_drop_reason"] == "dup_lines"]
    assert any(s and "weather" in s for s in spans)  # the span is made again from the turn


@pytest.mark.parametrize("backend", ["fasttext", "wordlist"])
def test_toxicity_memo_keeps_every_decision(batches, backend):
    loaded = Toxicity(ToxicityParams(backend=backend), CTX)
    loaded.setup()

    def new_step():
        step = Toxicity(ToxicityParams(backend=backend), CTX)
        step.backend = loaded.backend
        return step

    assert_same_as_one_by_one(new_step, batches)
    out = apply_map_step(new_step(), batches[0])[0].to_pylist()
    assert any(r["_curate_drop_reason"] for r in out)


def test_memo_keys_tell_apart_what_differs():
    texts = pa.array(["", None, "ab", "ab\0", "x" * 8, "x" * 9, "x" * 16, "é", "e", None, "ab"])
    a, b = text_keys(texts)
    keys = list(zip(a.tolist(), b.tolist()))
    assert len(set(keys)) == 9 and keys[1] == keys[9] and keys[2] == keys[10]


def test_memo_computes_each_distinct_text_once_and_survives_failures_and_resets():
    asked: list[list[str]] = []

    def compute(texts):
        def f(idx):
            values = texts.take(pa.array(idx)).to_pylist()
            asked.append(values)
            return np.array([[len(v), v.count("a")] for v in values], np.float64)

        return f

    memo = TextMemo(2, max_entries=6)
    first = pa.array(["a", "bb", "a", "aaa", "bb"])
    out = memo.resolve(first, compute(first))
    assert out.tolist() == [[1, 1], [2, 0], [1, 1], [3, 3], [2, 0]] and asked == [["a", "bb", "aaa"]]
    with pytest.raises(RuntimeError):
        memo.resolve(pa.array(["new", "a"]), lambda idx: (_ for _ in ()).throw(RuntimeError("model failed")))
    assert len(memo) == 3  # the failed batch left nothing half-remembered
    second = pa.array(["a", "new"])
    assert memo.resolve(second, compute(second)).tolist() == [[1, 1], [3, 0]] and asked[-1] == ["new"]
    third = pa.array(["c", "dd", "a", "eee"])  # 4 + 4 > 6: emptied first, everything computed anew
    assert memo.resolve(third, compute(third)).tolist() == [[1, 0], [2, 0], [1, 1], [3, 0]]
    assert asked[-1] == ["c", "dd", "a", "eee"] and len(memo) == 4


def test_quality_pools_turn_sums_into_the_conversation_metrics():
    """The memo keeps per-turn sums; the row's stop words are the union over its turns (not a sum),
    its mean word length the pooled characters over the pooled words."""
    user = "the cat of mine " + "sat " * 26  # 30 words: the, of
    reply = "the dog of and " + "ran " * 26  # 30 words: the, of, and
    step = QualityHeuristics(QualityParams(rules=["no_stop_words", "mean_word_length"]), CTX)
    out = apply_map_step(step, rows_table([[("user", user), ("assistant", reply)]] * 2))[0].to_pylist()
    chars = sum(len(w) for w in (user + reply).split())
    for row in out:
        assert row["q_stop_words"] == 3
        assert row["q_mean_word_length"] == pytest.approx(chars / 60)
