"""decontaminate on real eval sets: contaminated prompts are caught, short items are found inside
longer turns, stock phrases and template negatives are not flagged, and its bad inputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pytest

from curate.errors import UserError
from curate.steps._ngram_index import BitFilter, Tokens
from curate.steps.base import StepContext
from curate.steps.decontaminate import Decontaminate, DecontaminateParams, EvalSource
from tests.helpers import (
    REPO,
    SHARED_DATA,
    assert_step_config_error,
    pipeline_yaml,
    read_dir,
    rows_table,
    run,
    write_jsonl,
)

EVALS = SHARED_DATA / "eval_sets"
ALPACA_EVAL = str(EVALS / "alpaca_eval" / "alpaca_eval_example_outputs.json")


def step(**kw) -> Decontaminate:
    s = Decontaminate(DecontaminateParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))
    s.setup()
    return s


@pytest.fixture(scope="module")
def default_step():
    return step()


def flagged(s: Decontaminate, convs) -> list[str | None]:
    return s.process(rows_table(convs)).detail


def test_bit_filter_passes_every_present_hash():
    rng = np.random.default_rng(5)
    present = rng.integers(0, 2**63, 3000, dtype=np.uint64)
    queries = np.concatenate([rng.integers(0, 2**63, 200_000, dtype=np.uint64), present])
    rng.shuffle(queries)
    f = BitFilter(present, 16)
    got = f.candidates(queries)
    slot = queries & np.uint64(0xFFFF)
    expected = np.nonzero(np.isin(slot, present & np.uint64(0xFFFF)))[0]
    assert np.array_equal(got, expected)  # exactly the queries whose low 16 bits match a present hash
    assert np.isin(present, queries[got]).all()
    assert len(got) < 3000 + 200_000 * 0.06  # 3,000 of 65,536 bits set: ~4.5% of absent hashes pass
    assert len(f.candidates(np.zeros(0, np.uint64))) == 0


def test_tokens_of_text_denser_than_the_first_guess():
    """_ngram_index.Tokens guesses one token per 4 bytes and scans again when a batch holds more."""
    tok = Tokens(pa.array(["a " * 1000 + "B", "x,y", None, ""]))
    assert list(tok.counts) == [1001, 2, 0, 0]
    assert tok.start[1000] == 2000 and tok.end[1000] == 2001 and tok.start[1001] == 0 and tok.end[1002 - 1] == 1
    assert len(set(tok.hash[:1000].tolist())) == 1 and tok.hash[1000] != tok.hash[0]


def test_aligned_shares_are_the_per_pair_numpy_computation(default_step):
    """Decontaminate._aligned_shares (one compiled pass for all pairs) against the per-pair numpy code
    it replaced: the most common offset (ties: the smallest), words found one place off, the floats."""
    idx = default_step.index
    rng = np.random.default_rng(8)
    items = rng.choice(np.nonzero(idx.token_count >= 8)[0], 300)
    texts = []
    for it in items:  # a turn holding the item's words with some changed, inserted or dropped
        words = [f"w{h}" for h in idx.token_hash[idx.token_first[it] : idx.token_first[it] + idx.token_count[it]]]
        for _ in range(rng.integers(0, 4)):
            k = rng.integers(0, len(words))
            words[k : k + 1] = [[], ["zz"], [words[k], "yy"]][rng.integers(0, 3)]
        texts.append(" ".join(["pre"] * int(rng.integers(0, 5)) + words))
    tok = Tokens(pa.array(texts))
    tok.hash = np.array([int(t[1:]) if t.startswith("w") else 7 for t in " ".join(texts).split()], np.uint64)
    pairs = np.stack([np.arange(len(items)), items], axis=1)
    offsets = [rng.integers(-3, 6, rng.integers(1, 9)) for _ in items]
    bounds = np.concatenate([[0], np.cumsum([len(o) for o in offsets])])
    got = default_step._aligned_shares(tok, pairs, np.concatenate(offsets), bounds[:-1], bounds[1:])
    for k, (d, it) in enumerate(pairs):
        values, counts = np.unique(offsets[k], return_counts=True)
        off = int(values[np.argmax(counts)])
        own = slice(idx.token_first[it], idx.token_first[it] + idx.token_count[it])
        item, turn = idx.token_hash[own], tok.hash[tok.first[d] : tok.first[d] + tok.counts[d]]
        at, found = np.arange(len(item)) + off, np.zeros(len(item), bool)
        for shift in (0, -1, 1):
            j = at + shift
            inside = (j >= 0) & (j < len(turn))
            found[inside] |= turn[j[inside]] == item[inside]
        w = idx.token_weight[own]
        assert got[k] == float((found.mean() + (w * found).sum() / max(w.sum(), 1e-9)) / 2), k
    assert 0 < np.mean(np.array(got) == 1.0) < 1


def test_every_contaminated_alpaca_eval_prompt_is_caught():
    rows = json.loads((SHARED_DATA / "contaminated" / "alpaca_eval_outputs_mistral-7b-instruct-v0.2.json").read_text())
    s = step(eval_sets=[EvalSource(name="alpaca_eval", path=ALPACA_EVAL)])
    out = s.process(rows_table([[("user", r["instruction"]), ("assistant", r["output"])] for r in rows]))
    assert all(r is not None for r in out.reason), [
        rows[i]["instruction"] for i, r in enumerate(out.reason) if r is None
    ]
    assert out.table.column("contam_eval_set").to_pylist() == ["alpaca_eval"] * len(rows)
    assert set(out.table.column("contam_turn").to_pylist()) == {0}


def test_short_items_inside_longer_turns(default_step):
    with open(EVALS / "truthfulqa" / "TruthfulQA.csv", newline="") as f:
        tqa = [r["Question"] for r in csv.DictReader(f)][:40:4]
    with open(EVALS / "simpleqa" / "simple_qa_test_set.csv", newline="") as f:
        sqa = [r["problem"] for r in csv.DictReader(f)][:40:4]
    vic = [json.loads(x)["turns"][0] for x in (EVALS / "vicuna_bench" / "question.jsonl").read_text().splitlines()][
        :40:4
    ]
    convs = [
        [
            (
                "user",
                f"My teacher asked us this today. {q} I had no idea, and neither did my friends; can you explain?",
            ),
            ("assistant", "Sure, here is what I know about it."),
        ]
        for q in tqa + sqa + vic
    ]
    out = default_step.process(rows_table(convs))
    missed = [q for q, d in zip(tqa + sqa + vic, out.detail) if d is None]
    assert missed == []
    spans = out.table.column("contam_span").to_pylist()
    assert all(q.rstrip("?.") in sp or sp in q for q, sp in zip(tqa + sqa + vic, spans))


def test_gsm8k_question_and_long_answer(default_step):
    item = json.loads((EVALS / "gsm8k" / "test.jsonl").read_text().splitlines()[7])
    out = default_step.process(
        rows_table(
            [
                [("user", "Solve: " + item["question"].replace("\n", " ")), ("assistant", "Let me think.")],
                [("user", "Explain this working please"), ("assistant", item["answer"])],
            ]
        )
    )
    assert out.reason[0] == "contaminated_question" and "gsm8k item 7" in out.detail[0]
    assert out.reason[1] == "contaminated_answer"


def test_template_negatives_and_stock_phrases_are_not_flagged(default_step):
    item = json.loads((EVALS / "gsm8k" / "test.jsonl").read_text().splitlines()[0])["question"]
    # Janet's ducks lay 16 eggs per day ... with other numbers and another name
    negative = item.replace("Janet", "Marisol").replace("16", "23").replace("three", "five").replace("$2", "$3")
    stock = (
        "Which of the following is the best answer? Let's think step by step. "
        "Here is my question about baking sourdough bread at home with a cast iron pot."
    )
    convs = [
        [("user", negative), ("assistant", "ok")],
        [("user", stock), ("assistant", "ok")],
        [
            ("user", "Write a python function that returns the sum of a list of numbers."),
            ("assistant", "def f(xs): return sum(xs)"),
        ],
    ]
    assert flagged(default_step, convs) == [None, None, None]


def test_flag_mode_keeps_rows(tmp_path):
    item = json.loads((EVALS / "gsm8k" / "test.jsonl").read_text().splitlines()[3])["question"]
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "c", "conversations": [{"from": "human", "value": item}, {"from": "gpt", "value": "ok"}]},
            {
                "id": "k",
                "conversations": [
                    {"from": "human", "value": "How do I bake bread?"},
                    {"from": "gpt", "value": "Knead."},
                ],
            },
        ],
    )
    stats = run(
        pipeline_yaml(
            tmp_path / "p.yaml", src, tmp_path / "f", steps="\n  - decontaminate: {mode: flag, eval_sets: [gsm8k]}"
        )
    )
    assert stats["rows_kept"] == 2 and stats["steps"][0]["counters"]["hits:gsm8k"] == 1
    stats = run(
        pipeline_yaml(tmp_path / "q.yaml", src, tmp_path / "d", steps="\n  - decontaminate: {eval_sets: [gsm8k]}")
    )
    assert stats["rows_in"] == stats["rows_kept"] + stats["rows_rejected"] + stats["rows_quarantined"] == 2
    rej = read_dir(tmp_path / "d" / "rejected")
    assert rej.column("id").to_pylist() == ["c"] and rej.column("contam_eval_set").to_pylist() == ["gsm8k"]
    assert rej.column("_curate_drop_span").to_pylist()[0].startswith(item.split(".")[0][:30])


def test_own_eval_files_in_every_format(tmp_path):
    q = "Describe the migration pattern of the arctic tern across both hemispheres in detail"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.jsonl").write_text(json.dumps({"id": "x1", "question": q}) + "\n")
    (tmp_path / "b.csv").write_text("qid,prompt\nq7," + q + "\n")
    (tmp_path / "c.json").write_text(json.dumps({"items": [{"question": q}]}))
    for src in (
        EvalSource(path=str(tmp_path / "d")),
        EvalSource(name="mine", path=str(tmp_path / "b.csv"), question="prompt", id="qid"),
        EvalSource(path=str(tmp_path / "c.json"), records="items"),
    ):
        out = step(eval_sets=[src]).process(rows_table([[("user", "Please: " + q.lower() + "!")]]))
        assert out.reason == ["contaminated_question"], src


def test_index_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = step(eval_sets=["vicuna_bench"])
    assert not first.cache_hit and list((tmp_path / "curate" / "decontaminate").glob("*.pkl"))
    assert step(eval_sets=["vicuna_bench"]).cache_hit


def test_the_index_cache_is_keyed_on_the_eval_files_bytes(tmp_path, monkeypatch):
    """An edited eval file is read again (the cache key is the files' bytes, not their names)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    q1 = "Describe the migration pattern of the arctic tern across both hemispheres in detail"
    q2 = "Explain how the komodo dragon hunts water buffalo on the islands of eastern Indonesia"
    path = tmp_path / "mine.jsonl"
    src = EvalSource(name="mine", path=str(path))
    convs = [[("user", q1)], [("user", q2)]]
    path.write_text(json.dumps({"id": "1", "question": q1}) + "\n")
    first = step(eval_sets=[src])
    assert not first.cache_hit and first.process(rows_table(convs)).reason == ["contaminated_question", None]
    path.write_text(json.dumps({"id": "1", "question": q2}) + "\n")
    second = step(eval_sets=[src])
    assert not second.cache_hit and second.process(rows_table(convs)).reason == [None, "contaminated_question"]
    assert step(eval_sets=[src]).cache_hit
    path.write_text("{not json\n")
    with pytest.raises(UserError, match="mine.jsonl: cannot read eval set"):
        step(eval_sets=[src])


# ---------------------------------------------------------------------- bad inputs


def test_empty_and_huge_turns(default_step):
    item = json.loads((EVALS / "gsm8k" / "test.jsonl").read_text().splitlines()[5])["question"]
    huge = ("lorem ipsum dolor " * 70000) + item
    out = default_step.process(
        rows_table([[("user", "")], [("user", "   ")], [("user", huge)], [("user", "🙂" * 1000)]])
    )
    assert out.reason == [None, None, "contaminated_question", None]


@pytest.mark.parametrize(
    ("eval_sets", "message"),
    [
        (["gsm8kk"], "decontaminate: unknown eval set 'gsm8kk'; did you mean 'gsm8k'?"),
        (
            ["alpaca_eval"],
            "decontaminate: eval set 'alpaca_eval' is not shipped (CC BY-NC 4.0 (not shipped)); give its path",
        ),
        (
            [EvalSource(path="/nonexistent/evals.jsonl")],
            "decontaminate: eval set file not found: /nonexistent/evals.jsonl",
        ),
    ],
)
def test_bad_eval_sets(eval_sets, message):
    with pytest.raises(UserError) as e:
        step(eval_sets=eval_sets)
    assert str(e.value).startswith(message)


def test_corrupt_eval_file(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"question": "ok"}\n{"question": \n')
    with pytest.raises(UserError, match=r"bad.jsonl: cannot read eval set: "):
        step(eval_sets=[EvalSource(path=str(tmp_path / "bad.jsonl"))])


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        ("{mode: remove}", "steps[0].mode: must be one of 'drop' or 'flag' (got 'remove')"),
        ("{ngram: 2}", "steps[0].ngram: must be >= 3 (got 2)"),
        ("{min_overlap: 0}", "steps[0].min_overlap: must be > 0.0 (got 0)"),
        ("{eval_sets: []}", "steps[0].eval_sets: must list at least one eval set"),
        (
            "{roles: [bot]}",
            "steps[0].roles[0]: must be one of 'system', 'user', 'assistant', 'tool' or 'reasoning' (got 'bot')",
        ),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "decontaminate", step_yaml, message)


def test_short_answers_match_only_in_full(tmp_path):
    """A one-line answer (10-19 tokens) matches only with every n-gram and every number: the same
    solution template with other numbers (a template sibling) is not flagged."""
    evals = write_jsonl(
        tmp_path / "gsm.jsonl",
        [
            {
                "id": i,
                "question": f"A farmer has {c} cows. Each cow eats {k} kilograms of hay a day. How many kilograms in a week?",
                "answer": f"Per day the cows eat {c} * {k} = {c * k} kg. In a week that is {c * k} * 7 = {c * k * 7} kg.\n#### {c * k * 7}",
            }
            for i, (c, k) in enumerate([(84, 3), (78, 5), (12, 4), (40, 6)])
        ],
    )
    s = step(eval_sets=[EvalSource(name="synth", path=str(evals))])
    noise = "Some unrelated text about tar files and event loops follows here, nothing more."
    convs = [
        [
            ("user", "Compute it."),
            (
                "assistant",
                f"Per day the cows eat 84 * 3 = 252 kg. In a week that is 252 * 7 = 1764 kg.\n#### 1764\n\n{noise}",
            ),
        ],
        [
            ("user", "Compute it."),
            (
                "assistant",
                f"Per day the cows eat 91 * 3 = 273 kg. In a week that is 273 * 7 = 1911 kg.\n#### 1911\n\n{noise}",
            ),
        ],
        [("user", "Compute it."), ("assistant", f"Per day the cows eat 84 * 3 = 252 kg. {noise}")],
    ]
    out = s.process(rows_table(convs))
    assert out.reason == ["contaminated_answer", None, None]
    assert out.table.column("contam_item_id").to_pylist()[0] == "0"


def test_an_item_with_two_numbers_needs_both(tmp_path):
    """Found at N=200k: a template sibling sharing the item's second half ("If the book has 160
    pages, how many pages are left to read?") and one of its two numbers was flagged when half of
    the numbers sufficed."""
    template = "{name} reads {a} pages of a book on Monday and twice as many pages on Tuesday. If the book has {b} pages, how many pages are left to read?"
    evals = write_jsonl(tmp_path / "gsm.jsonl", [{"id": "325", "question": template.format(name="Hana", a=40, b=160)}])
    s = step(eval_sets=[EvalSource(name="synth", path=str(evals))])
    convs = [
        [("user", "Returns whether the current directory. " + template.format(name="Natalia", a=30, b=160))],
        [("user", "Returns whether the current directory. " + template.format(name="Natalia", a=40, b=160))],
    ]
    assert s.process(rows_table(convs)).reason == [None, "contaminated_question"]


def test_natural_stock_openings_are_not_flagged(default_step):
    """Phrases from ../shared/data/instructions that the first version flagged against MMLU: two shared
    5-grams are a stock phrase (min_matched_ngrams), and MMLU stems of a few words carry their choices."""
    convs = [
        [("user", t), ("assistant", "Here is an overview.")]
        for t in (
            "Cross-validation is a technique that involves dividing the data into multiple sets and using one set for testing.",
            "In psychology, habituation refers to the process by which we stop responding to a repeated stimulus.",
            "What are the causes of the decline in bee populations in Europe?",
            "Which of the following are true: the sky is green, water is wet?",
            "The Federal Open Market Committee meeting gets under way on Tuesday.",
            "How does the greenhouse effect work? Please explain it for a ten year old.",
            # an MMLU stem with other content words: alignment weighs the item's own words, not the stem
            "1. Which of the following is NOT one of the four categories of figures in African geomancy?",
        )
    ]
    assert flagged(default_step, convs) == [None] * 7


def test_retyped_questions_are_found_by_alignment(default_step):
    """A question retyped with a word or two changed (one changed word breaks five 5-grams, so a
    12-word item keeps under half of them) is still found: its words are there, in order."""
    with open(EVALS / "simpleqa" / "simple_qa_test_set.csv", newline="") as f:
        sqa = [r["problem"] for r in csv.DictReader(f) if 12 <= len(r["problem"].split()) <= 20][:30]

    def retype(q: str, k: int) -> str:
        words = q.lower().replace(",", "").split()
        words[len(words) // 2] = "zebra" if k % 2 else "quickly"  # one word changed mid-question
        return " ".join(words)

    convs = [[("user", "Q: " + retype(q, k)), ("assistant", "I believe it was in 1998.")] for k, q in enumerate(sqa)]
    out = default_step.process(rows_table(convs))
    found = [d is not None for d in out.detail]
    assert sum(found) >= 27, [q for q, f in zip(sqa, found) if not f]
    # long ones keep half their n-grams and match plainly; the detail says which way each matched
    assert sum("of its words in order (retyped)" in d for d in out.detail if d) >= 10
    plain = step(min_aligned=1.0).process(rows_table(convs))  # without alignment most are missed
    assert sum(d is not None for d in plain.detail) < sum(found)
    # the same template with other numbers stays unflagged by alignment too (the numbers rule)
    gsm = json.loads((EVALS / "gsm8k" / "test.jsonl").read_text().splitlines()[0])["question"]
    assert flagged(
        default_step,
        [
            [
                ("user", gsm.replace("16", "23").replace("$2", "$5").replace("three", "five").replace("Janet", "Sam")),
                ("assistant", "ok"),
            ]
        ],
    ) == [None]
