"""language: fastText lid.176 (bundled) per turn, length-weighted vote per conversation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curate.errors import UserError
from curate.readers import plan, read_shard
from curate.records import FieldNames
from curate.steps._prose import letter_count, one_line, one_line_letters, strip_code
from curate.steps.base import StepContext, apply_map_step
from curate.steps.language import DEFAULT_MODEL, Language, LanguageParams, sample_windows
from tests.helpers import REPO, SHARED_DATA, assert_step_config_error, pipeline_yaml, rows_table, run

CTX = StepContext(rules_dir=REPO / "curate" / "rules")
INSTRUCTIONS = SHARED_DATA / "instructions"


@pytest.fixture(scope="module")
def model():
    """One real model load for the module; each test builds its step around it."""
    step = Language(LanguageParams(), CTX)
    step.setup()
    return step.model


def make(model, **params) -> Language:
    step = Language(LanguageParams(**params), CTX)
    step._model = model
    return step


def run_step(step, table):
    out, stats = apply_map_step(step, table)
    return out.to_pylist(), stats


def read(path: Path, **names):
    return read_shard(plan([str(path)], "auto", 100_000)[0], FieldNames(**names))[0]


# ---------------------------------------------------------------------- the model itself


def test_bundled_model_loads_and_predicts_with_numpy2():
    import fasttext
    import numpy

    assert DEFAULT_MODEL.stat().st_size == 938_013
    assert int(numpy.__version__.split(".")[0]) >= 2
    m = fasttext.load_model(str(DEFAULT_MODEL))
    labels, probs = m.predict(["Where is the nearest train station?", "Где ближайший вокзал?"], k=1)
    assert [x[0] for x in labels] == ["__label__en", "__label__ru"]
    assert all(0.5 < p[0] <= 1.0 for p in probs)
    assert (DEFAULT_MODEL.parent / "LICENSE-lid.176.md").read_text().count("CC BY-SA 3.0") >= 1


def test_one_predict_call_per_batch_on_its_distinct_texts(model):
    """One call into the model per batch, with each distinct turn text once: the 50 rows share their
    assistant reply, so 50 user turns + 1 reply are predicted, not 100 turns."""
    calls = []

    class Counting:
        labels = model.labels

        def predict(self, lines):
            calls.append(len(lines))
            return model.predict(lines)

    step = make(model)
    step._model = Counting()
    table = rows_table(
        [
            [
                ("user", f"Please tell me about the history of city number {i}."),
                ("assistant", "It was founded long ago by traders."),
            ]
            for i in range(50)
        ]
    )
    rows, _ = run_step(step, table)
    assert calls == [51]
    assert {r["lang"] for r in rows} == {"en"}
    run_step(step, table)  # the same batch again: every text remembered, no call
    assert calls == [51]


# ---------------------------------------------------------------------- decisions


def test_languages_keep_drop_and_columns(model):
    table = rows_table(
        [
            [
                ("user", "What is the capital of France? Please answer briefly."),
                ("assistant", "The capital of France is Paris."),
            ],
            [
                ("user", "Quelle est la capitale de la France ? Réponds brièvement."),
                ("assistant", "La capitale de la France est Paris."),
            ],
            [
                ("user", "Какая столица Франции? Ответь кратко, пожалуйста."),
                ("assistant", "Столица Франции — город Париж."),
            ],
        ]
    )
    rows, stats = run_step(make(model, keep=["en"]), table)
    assert [r["lang"] for r in rows] == ["en", "fr", "ru"]
    assert [r["_curate_drop_reason"] for r in rows] == [None, "language_not_kept", "language_not_kept"]
    assert rows[1]["_curate_drop_detail"].startswith("lang=fr (0.")
    assert rows[0]["lang_turns"] == ["en", "en"] and len(rows[0]["lang_turn_scores"]) == 2
    assert all(0.5 < r["lang_score"] <= 1 for r in rows)
    assert stats.counters["lang:fr"] == 1 and stats.counters["turns_predicted"] == 6

    rows, _ = run_step(make(model, drop=["fr"]), table)
    assert [r["_curate_drop_reason"] for r in rows] == [None, "language_not_kept", None]


def test_mixed_conversation_scores_low_and_min_confidence_drops_it(model):
    en = "Could you explain how photosynthesis works in plants and why it matters for life on Earth?"
    de = "Die Photosynthese ist der Prozess, bei dem Pflanzen mit Hilfe von Licht Zucker herstellen und Sauerstoff abgeben."
    table = rows_table([[("user", en), ("assistant", de)], [("user", en), ("assistant", en)]])
    rows, _ = run_step(make(model, min_confidence=0.7), table)
    # the German answer is longer, so it wins the vote, but only with its share of the letters
    assert rows[0]["lang"] == "de" and rows[0]["lang_score"] < 0.7
    assert rows[0]["_curate_drop_reason"] == "low_language_confidence"
    assert rows[1]["_curate_drop_reason"] is None and rows[1]["lang_score"] > 0.8


def test_roles_choose_the_voters(model):
    table = rows_table(
        [
            [
                ("system", "Du bist ein hilfreicher Assistent, der immer auf Deutsch antwortet und freundlich bleibt."),
                ("user", "Tell me a fun fact about octopuses, please."),
                ("assistant", "Octopuses have three hearts and blue blood."),
            ]
        ]
    )
    rows, _ = run_step(make(model), table)
    assert rows[0]["lang"] == "en" and rows[0]["lang_turns"][0] is None
    rows, _ = run_step(make(model, roles=["system"]), table)
    assert rows[0]["lang"] == "de"


# ---------------------------------------------------------------------- code does not change the language


def test_code_only_turns_do_not_vote(model):
    code = "```python\ndef add(a, b):\n    return a + b\n\nprint(add(2, 3))\n```"
    table = rows_table(
        [
            [("user", "Write a Python function that adds two numbers and show how to call it."), ("assistant", code)],
            [("user", code), ("assistant", "```\n5\n```")],
        ]
    )
    rows, stats = run_step(make(model, keep=["en"]), table)
    assert rows[0]["lang"] == "en" and rows[0]["lang_turns"] == ["en", "code"]
    assert rows[1]["lang"] == "code" and rows[1]["lang_score"] is None
    assert rows[1]["_curate_drop_reason"] is None  # keep_unknown: no evidence of another language
    assert stats.counters["turns_code_only"] == 3
    rows, _ = run_step(make(model, keep=["en"], keep_unknown=False), table)
    assert rows[1]["_curate_drop_reason"] == "language_not_kept"


def test_real_code_heavy_english_turn_stays_english(model):
    """ShareGPT 5vwlqj7_0, turn 7: an OpenCV answer that is mostly C++; on the raw text lid.176 says
    Korean (0.49); on its prose, English."""
    table = read(INSTRUCTIONS / "sharegpt92k_cleaned_sample.json")
    row = table.filter(pc_equal(table, "id", "5vwlqj7_0"))
    turn = row.column("messages")[0].as_py()[7]["content"]
    assert turn.count("```") >= 2
    raw_label = model.labels[model.predict(pa.array([" ".join(turn[:2000].split())]))[0][0]]
    assert raw_label != "en"  # the problem the stripping solves
    rows, _ = run_step(make(model), rows_table([[("assistant", turn)]]))
    assert rows[0]["lang"] == "en"


def test_real_code_heavy_rows_are_english(model):
    """Every Glaive tool-call row is English, many of them full of JSON and code."""
    table = read(INSTRUCTIONS / "sharegpt_llamafactory_glaive_toolcall_en_demo.json")
    rows, _ = run_step(make(model), table)
    with_code = [r for r in rows if any("{" in t["content"] or "```" in t["content"] for t in r["messages"])]
    assert len(with_code) > 100
    assert sum(r["lang"] == "en" for r in with_code) / len(with_code) >= 0.98


def test_one_line_letters_agrees_with_arrow_and_re2_on_real_turns():
    """The byte scan (ASCII turns) and the Arrow/RE2 reference (any turn) give the same one-line text
    and letter count on real turns in many scripts and on every ASCII whitespace Arrow knows."""
    texts = []
    for name, names in (
        ("sharegpt92k_cleaned_sample.json", {}),
        ("openai_messages_arena_refusal_labeled.jsonl", {"conversations": "conversation_a"}),
    ):
        for conv in read(INSTRUCTIONS / name, **names).column("messages").to_pylist():
            texts += [m["content"] for m in conv]
    texts += ["", " ", "\x1c\x1d\x1e\x1f", " a\x1cb\vc\fd\re \u00a0 f\u3000g ", "  lead and trail \n\n", "é è\tê"]
    arr = pc.fill_null(strip_code(pa.array(texts), 2000)[0], "")
    assert len(texts) > 5000 and sum(not t.isascii() for t in texts) > 100
    lines, letters = one_line_letters(arr)
    assert lines.to_pylist() == one_line(arr).to_pylist()
    assert letters.tolist() == letter_count(one_line(arr)).tolist()


def test_sample_windows_is_bounded_and_spans_the_turn():
    text = " ".join(f"w{i:05d}" for i in range(3000))  # 21,000 characters
    out = sample_windows(text, 1000, 4)
    assert len(out) <= 1000 + 3
    words = out.split()
    assert words[0] == "w00000" and words[-1] == "w02999"  # the start and the end
    assert len(words) == len(set(words)) and all(len(w) == 6 for w in words)  # no word cut or repeated
    assert sample_windows("short text", 1000, 4) == "short text"


def test_windows_read_the_whole_turn_and_default_reads_its_start(model):
    """A long answer that opens with a French quotation and is English after it: its first 2,000
    characters are French; windows over the whole turn say English."""
    fr = "Le comité a examiné le budget annuel et a approuvé la nouvelle bibliothèque municipale. " * 30
    en = "The committee reviewed the annual budget and approved the new municipal library. " * 120
    table = rows_table([[("user", "Translate and discuss this text, please."), ("assistant", fr + en)]])
    head, _ = run_step(make(model), table)
    spread, _ = run_step(make(model, windows=4), table)
    assert head[0]["lang_turns"] == ["en", "fr"] and head[0]["lang"] == "fr"
    assert spread[0]["lang_turns"] == ["en", "en"] and spread[0]["lang"] == "en"
    assert spread[0]["lang_score"] > 0.5  # its first window is the French quotation


# ---------------------------------------------------------------------- accuracy on labelled real data


def test_oasst_labelled_messages(model):
    convs, labels = [], []

    def walk(m):
        convs.append([("user" if m["role"] == "prompter" else "assistant", m["text"])])
        labels.append(m["lang"])
        for r in m.get("replies", []):
            walk(r)

    for line in (INSTRUCTIONS / "oasst_en_100_trees.jsonl").open():
        walk(json.loads(line)["prompt"])
    rows, _ = run_step(make(model), rows_table(convs))
    called = [(r["lang"], g) for r, g in zip(rows, labels) if r["lang"] not in ("unknown", "code")]
    assert len(called) >= 0.9 * len(rows)
    assert sum(p == g for p, g in called) / len(called) >= 0.99


def test_arena_rows_in_many_languages(model):
    """Hand-checked Chatbot Arena prompts (the file has no language label)."""
    table = read(INSTRUCTIONS / "openai_messages_arena_refusal_labeled.jsonl", conversations="conversation_a")
    rows, _ = run_step(make(model), table)
    by_start = {r["messages"][0]["content"][:12]: r["lang"] for r in rows}
    assert by_start["如何评价习近平"] == "zh"
    assert by_start["Скомпонуй ре"] == "ru"
    assert by_start["Hi, ich habe"] == "de"
    assert by_start["Comment appr"] == "fr"
    assert by_start["Abigail has "] == "en"
    assert len({r["lang"] for r in rows}) >= 8


# ---------------------------------------------------------------------- bad inputs


def test_bad_inputs_never_crash(model):
    mb = ("The committee reviewed the annual budget and approved the new library. " * 14_000)[:1_000_000]
    table = rows_table(
        [
            [("user", ""), ("assistant", "")],
            [],
            [("user", "😀🎉👍🔥💯😂🙏"), ("assistant", "🙂")],
            [("user", mb), ("assistant", "OK, noted, I have read the whole document carefully.")],
            [("user", "This sentence is English, а это предложение на русском языке, 这是中文句子。")],
            [("user", "\n\n\t  \r\n")],
        ]
    )
    start = time.perf_counter()
    rows, _ = run_step(make(model, keep=["en"]), table)
    assert time.perf_counter() - start < 5
    assert [r["lang"] for r in rows][:3] == ["unknown", "unknown", "unknown"]
    assert rows[3]["lang"] == "en"
    assert rows[4]["lang"] in ("en", "ru", "zh")
    assert rows[5]["lang"] == "unknown"
    assert all(r["_curate_drop_reason"] in (None, "language_not_kept") for r in rows)


def test_missing_model_file_is_one_line(tmp_path):
    step = Language(LanguageParams(model_path=str(tmp_path / "nope.ftz")), CTX)
    with pytest.raises(UserError, match=r"^language: model file not found: .*nope\.ftz$"):
        step.setup()


@pytest.mark.parametrize(
    "content, why",
    [
        (b"PK\x03\x04 a zip, not a model", "not a fastText model file"),
        (DEFAULT_MODEL.read_bytes()[:5000], "the file ends early"),
        (DEFAULT_MODEL.read_bytes()[:70], "the file ends early"),
    ],
)
def test_a_file_that_is_not_a_whole_model_is_one_line(tmp_path, content, why):
    (tmp_path / "lid.ftz").write_bytes(content)
    step = Language(LanguageParams(model_path=str(tmp_path / "lid.ftz")), CTX)
    with pytest.raises(UserError, match=rf"^language: .*lid\.ftz is not a fastText model \({why}\)$"):
        step.setup()


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        ("{keep: [en], drop: [fr]}", "steps[0]: keep and drop are mutually exclusive; set one of them"),
        (
            "{keep: [eng]}",
            "steps[0].keep: unknown language code 'eng'; lid.176 uses ISO 639 codes such as 'en', 'zh', 'ru'",
        ),
        ("{keep: []}", "steps[0].keep: must list at least one language code"),
        ("{min_confidence: 1.5}", "steps[0].min_confidence: must be <= 1.0 (got 1.5)"),
        ("{windows: 0}", "steps[0].windows: must be >= 1 (got 0)"),
        ("{roles: [bot]}", "steps[0].roles[0]: must be one of 'system', 'user', 'assistant' or 'tool' (got 'bot')"),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "language", step_yaml, message)


# ---------------------------------------------------------------------- end to end


def test_end_to_end_keep_english(tmp_path):
    path = pipeline_yaml(
        tmp_path / "p.yaml",
        INSTRUCTIONS / "openai_messages_arena_refusal_labeled.jsonl",
        tmp_path / "out",
        steps="\n  - language: {keep: [en]}",
        extra="  columns: {conversations: conversation_a}\n",
    )
    stats = run(path)
    step = stats["steps"][0]
    assert stats["rows_in"] == 67 and step["dropped"]["language_not_kept"] == stats["rows_rejected"] >= 15
    assert step["counters"]["lang:en"] == stats["rows_kept"]


def pc_equal(table, column, value):
    import pyarrow.compute as pc

    return pc.equal(table.column(column), value)


def test_ray_runner_loads_the_model_in_workers_and_agrees_with_local(tmp_path, ray_cluster):
    from tests.helpers import read_dir

    steps = "\n  - language: {keep: [en]}\n  - quality_heuristics: {}"
    extra = "  columns: {conversations: conversation_a}\n"
    src = INSTRUCTIONS / "openai_messages_arena_refusal_labeled.jsonl"
    local = run(pipeline_yaml(tmp_path / "l.yaml", src, tmp_path / "local", steps=steps, extra=extra))
    ray = run(pipeline_yaml(tmp_path / "r.yaml", src, tmp_path / "ray", steps=steps, extra=extra, runner="ray"))
    assert local["runner"] == "local" and ray["runner"] == "ray"
    assert [s["dropped"] for s in local["steps"]] == [s["dropped"] for s in ray["steps"]]
    a, b = read_dir(tmp_path / "local" / "kept"), read_dir(tmp_path / "ray" / "kept")
    assert a.column("id").to_pylist() == b.column("id").to_pylist()
    assert a.column("lang_score").to_pylist() == b.column("lang_score").to_pylist()
