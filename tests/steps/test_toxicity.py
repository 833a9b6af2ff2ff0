"""toxicity: the shipped offline model on held-out labelled rows, the word list, thresholds and
scopes, the detoxify path with a tiny random checkpoint through detoxify's own loading code (and
through Ray actors), and the bad inputs."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pyarrow as pa
import pytest

from curate.errors import UserError
from curate.steps.base import StepContext
from curate.steps.toxicity import Toxicity, ToxicityParams
from curate.testing import save_detoxify_checkpoint
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

TOX = SHARED_DATA / "toxicity"


def step(**kw) -> Toxicity:
    s = Toxicity(ToxicityParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))
    s.setup()
    return s


def prf(pred, gold):
    tp = sum(p and g for p, g in zip(pred, gold))
    return tp / max(sum(pred), 1), tp / max(sum(gold), 1)


def toxicity_sources():
    """benchmarks/toxicity/sources.py: the data and the split the model was trained and tested on."""
    import importlib
    import sys

    sys.path.insert(0, str(REPO / "benchmarks" / "toxicity"))
    try:
        return importlib.import_module("sources")
    finally:
        sys.path.pop(0)


def test_offline_model_on_held_out_rows():
    """The test split of each labelled source (never trained on, never used to choose the threshold)
    through the step: the shipped model with its calibrated score and rules/toxicity.yaml threshold."""
    src = toxicity_sources()
    f1s = {}
    for name, rows in src.labelled().items():
        held = [(t, bool(y)) for t, y in rows if src.held_out(t)][:1500]
        out = step().process(rows_table([[("user", t)] for t, _ in held]))
        precision, recall = prf([r is not None for r in out.reason], [g for _, g in held])
        f1s[name] = 2 * precision * recall / (precision + recall)
    assert f1s["davidson"] > 0.9 and f1s["wikipedia"] > 0.5 and f1s["toxigen"] > 0.45, f1s


def test_held_out_clean_conversations_stay_under_the_budget():
    """ShareGPT, OpenAI-messages and Alpaca conversations of the test split, read by curate's reader:
    at most 0.5% rejected (the budget the threshold was chosen against)."""
    src = toxicity_sources()
    flagged = total = 0
    for name, table in src.chat_tables().items():
        keep = pa.array([src.held_out(k) for k in src.chat_key(name, table)])
        out = step().process(table.filter(keep))
        flagged += sum(r is not None for r in out.reason)
        total += len(out.reason)
    assert total > 400 and flagged / total <= 0.005, (flagged, total)


def test_model_and_its_sidecar_and_rules_agree():
    """The .json beside the model names its bytes, and rules/toxicity.yaml uses the threshold the
    training script chose for it."""
    import json

    import yaml

    models = REPO / "curate" / "models"
    meta = json.loads((models / "toxicity_fasttext.json").read_text())
    assert meta["sha256"] == hashlib.sha256((models / "toxicity_fasttext.ftz").read_bytes()).hexdigest()
    rules = yaml.safe_load((REPO / "curate" / "rules" / "toxicity.yaml").read_text())
    assert rules["fasttext"] == meta["threshold"]
    assert step().thresholds() == meta["threshold"]


def test_calibrated_score_tracks_the_toxic_share():
    """On the held-out labelled rows, each source weighted equally (as the calibration was fitted),
    the mean score of each score band is near the share of toxic rows in it."""
    src = toxicity_sources()
    scores, gold, weight = [], [], []
    for rows in src.labelled().values():
        held = [(t, y) for t, y in rows if src.held_out(t)]
        scores.append(step().backend.score(pa.array([t for t, _ in held]))["toxicity"])
        gold.append(np.array([y for _, y in held], float))
        weight.append(np.full(len(held), 1 / len(held)))
    s, g, w = np.concatenate(scores), np.concatenate(gold), np.concatenate(weight)
    bands = np.digitize(s, [0.2, 0.4, 0.6, 0.8])
    error = (
        sum(
            abs(np.average(s[bands == b], weights=w[bands == b]) - np.average(g[bands == b], weights=w[bands == b]))
            * w[bands == b].sum()
            for b in np.unique(bands)
        )
        / w.sum()
    )
    assert error < 0.1
    assert s.min() < 0.1 and s.max() > 0.9  # a score, not a constant


def test_lexicon_feature_marks_whole_words_only():
    from curate.steps._toxicity_text import LEXICON_TOKEN, lexicon_pattern, prepare

    pattern = lexicon_pattern(["ass", "two words"])
    got = prepare(pa.array(["What an ASS!", "the assassin", "say two words here", None, ""]), pattern).to_pylist()
    assert got == [f"what an ass ! {LEXICON_TOKEN}", "the assassin", f"say two words here {LEXICON_TOKEN}", None, ""]


def test_training_is_reproducible_byte_for_byte(tmp_path):
    """The training script's fit (one fastText thread, fixed seed, quantized) gives the same bytes
    twice: what lets it reproduce the shipped file."""
    import importlib
    import sys

    sys.path.insert(0, str(REPO / "benchmarks" / "toxicity"))
    try:
        train = importlib.import_module("train_offline")
    finally:
        sys.path.pop(0)
    src = toxicity_sources()
    rows = [(t, y) for name, v in src.labelled().items() for t, y in v[:600]]
    lines = train.featurize([t for t, _ in rows], ["fuck", "bitch"])
    a = train.fit(list(zip(lines, [y for _, y in rows])), tmp_path / "a.ftz")
    train.fit(list(zip(lines, [y for _, y in rows])), tmp_path / "b.ftz")
    assert (tmp_path / "a.ftz").read_bytes() == (tmp_path / "b.ftz").read_bytes()
    assert a.labels[a.predict(pa.array(lines[:1]))[0][0]] in ("toxic", "clean")


def test_missing_model_sidecar_is_one_line(tmp_path, monkeypatch):
    import shutil

    import curate.steps.toxicity as tox

    shutil.copy(REPO / "curate" / "models" / "toxicity_fasttext.ftz", tmp_path)
    monkeypatch.setattr(tox, "MODELS", tmp_path)
    with pytest.raises(UserError) as e:
        step()
    assert (
        str(e.value)
        == f"toxicity: the offline model is missing: {tmp_path / 'toxicity_fasttext.json'} (reinstall curate)"
    )


def test_ordinary_instructions_are_not_toxic():
    texts = [
        "How do I kill a python process?",
        "Write a poem about the sea.",
        "Explain how vaccines work.",
        "What's the best way to shoot a portrait in low light?",
        "Summarise this article about the stock market crash.",
    ]
    out = step().process(rows_table([[("user", t)] for t in texts]))
    assert out.reason == [None] * len(texts)


def test_word_list_matches_whole_words():
    out = step(backend="wordlist").process(
        rows_table([[("user", "what a fucking mess")], [("user", "the assassin in Scunthorpe")], [("user", "")]])
    )
    assert out.reason == ["toxic_toxicity", None, None]
    assert out.counters["backend:wordlist"] == 3


def test_scope_thresholds_and_flag_mode():
    conv = [
        ("user", "you are a fucking idiot and I hate you"),
        ("assistant", "I'd rather keep this respectful. How can I help?"),
    ]
    assert step().process(rows_table([conv])).reason == ["toxic_toxicity"]
    assert step(roles=["assistant"]).process(rows_table([conv])).reason == [None]
    assert step(thresholds={"toxicity": 1.01}).process(rows_table([conv])).reason == [None]
    out = step(mode="flag").process(rows_table([conv]))
    assert out.reason == [None] and out.table.column("tox_max")[0].as_py() > 0.5


@pytest.fixture(scope="module")
def tiny_detoxify(tmp_path_factory):
    """A detoxify checkpoint in detoxify's own format: BERT, 2 layers, random weights, local vocab."""
    import torch
    import transformers

    d = tmp_path_factory.mktemp("detoxify")
    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
    ] + "you are a stupid idiot how do i kill python process the cat hello world".split()
    (d / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = transformers.BertTokenizer(str(d / "vocab.txt"))
    cfg = transformers.BertConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=6,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg)
    classes = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    save_detoxify_checkpoint(model, tok, d, classes, "tiny.ckpt")
    return d


def test_detoxify_scores_equal_detoxify_predict(tiny_detoxify):
    from detoxify import Detoxify

    texts = ["you are a stupid idiot", "hello world", "how do i kill the python process"]
    ref = Detoxify(checkpoint=str(tiny_detoxify / "tiny.ckpt"), huggingface_config_path=str(tiny_detoxify)).predict(
        texts
    )
    s = step(checkpoint=str(tiny_detoxify / "tiny.ckpt"), hf_config=str(tiny_detoxify), batch_size=2, precision="fp32")
    assert s.resources().actor and s.kind == "detoxify"
    out = s.process(rows_table([[("user", t)] for t in texts]))
    for label in ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"):
        np.testing.assert_allclose(out.table.column(f"tox_{label}").to_numpy(), ref[label], rtol=1e-4, atol=1e-5)
    assert out.table.column("tox_sexual_explicit").null_count == 3  # not a label of this model
    assert out.counters["precision:fp32"] == 3


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_detoxify_reduced_precision_stays_near_fp32(tiny_detoxify, precision):
    texts = ["you are a stupid idiot", "hello world", "how do i kill the python process", "the cat"]
    table = rows_table([[("user", t)] for t in texts])
    kw = {"checkpoint": str(tiny_detoxify / "tiny.ckpt"), "hf_config": str(tiny_detoxify)}
    ref = step(**kw, precision="fp32").process(table).table
    out = step(**kw, precision=precision).process(table)
    assert out.counters[f"precision:{precision}"] == 4
    for label in ("toxicity", "insult", "identity_attack"):
        got, want = out.table.column(f"tox_{label}").to_numpy(), ref.column(f"tox_{label}").to_numpy()
        np.testing.assert_allclose(got, want, atol=0.02)


def test_detoxify_auto_precision_follows_the_cpu(tiny_detoxify):
    from curate.steps.toxicity import native_bf16

    s = step(checkpoint=str(tiny_detoxify / "tiny.ckpt"), hf_config=str(tiny_detoxify))
    out = s.process(rows_table([[("user", "hello world")]]))
    assert out.counters["precision:bf16" if native_bf16() else "precision:fp32"] == 1


def test_detoxify_long_turns_are_scored_in_windows(tiny_detoxify):
    s = step(checkpoint=str(tiny_detoxify / "tiny.ckpt"), hf_config=str(tiny_detoxify), max_length=16)
    long = "hello world " * 200 + "you are a stupid idiot"
    a = s.process(rows_table([[("user", long)]])).table.column("tox_toxicity")[0].as_py()
    tail = s.process(rows_table([[("user", "world you are a stupid idiot")]])).table.column("tox_toxicity")[0].as_py()
    assert a >= tail - 1e-4  # the window holding the tail is among those scored (padding moves the 5th decimal)


def test_detoxify_through_ray_actors(tiny_detoxify, tmp_path, ray_cluster):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": str(i), "conversations": [{"from": "human", "value": t}]}
            for i, t in enumerate(["hello world", "you are a stupid idiot"] * 20)
        ],
    )
    steps = f"\n  - toxicity: {{checkpoint: '{tiny_detoxify / 'tiny.ckpt'}', hf_config: '{tiny_detoxify}', thresholds: {{toxicity: 0.0}}}}"
    stats = run(
        pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps=steps, runner="ray", extra="  shard_rows: 10\n")
    )
    assert stats["rows_rejected"] == 40 and stats["steps"][0]["counters"]["backend:detoxify"] == 40
    rej = read_dir(tmp_path / "out" / "rejected")
    assert rej.column("tox_identity_attack").null_count == 0


def test_missing_checkpoint_is_one_line_with_the_download_command(tmp_path):
    with pytest.raises(UserError) as e:
        step(backend="detoxify", checkpoint=str(tmp_path / "nope.ckpt"), hf_config=str(tmp_path))
    assert str(e.value) == (
        f"toxicity: detoxify checkpoint not found: {tmp_path / 'nope.ckpt'}; run `curate models download "
        "detoxify-original` on a machine with internet access, or set checkpoint:"
    )


def test_auto_falls_back_loudly(tmp_path):
    out = step(checkpoint=str(tmp_path / "nope.ckpt")).process(rows_table([[("user", "hi")]]))
    assert out.counters["fallback:detoxify_weights_missing"] == 1 and out.counters["backend:fasttext"] == 1


def test_bad_inputs():
    out = step().process(
        rows_table([[("user", "")], [("user", "x" * 1_000_000)], [("user", "مرحبا 你好 🙂")], [("system", "ignored")]])
    )
    assert out.reason == [None, None, None, None]
    assert out.table.column("tox_toxicity")[3].as_py() is None  # no scored turn


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        (
            "{backend: perspective}",
            "steps[0].backend: must be one of 'auto', 'fasttext', 'wordlist' or 'detoxify' (got 'perspective')",
        ),
        ("{batch_size: 0}", "steps[0].batch_size: must be >= 1 (got 0)"),
        ("{precision: fp8}", "steps[0].precision: must be one of 'auto', 'fp32', 'bf16' or 'int8' (got 'fp8')"),
        ("{thresholds: {toxicity: high}}", "steps[0].thresholds.toxicity: must be a number (got 'high')"),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "toxicity", step_yaml, message)


def test_text_preparation_equals_its_regex_definition():
    """prepare() spaces out punctuation and collapses whitespace in one byte scan; the model was
    trained on the two-regex definition, so the bytes must be the same (real rows, odd bytes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from curate.steps._toxicity_text import MAX_CHARS, prepare

    def by_regex(texts):
        t = pc.utf8_lower(pc.utf8_slice_codeunits(texts, 0, MAX_CHARS))
        t = pc.replace_substring_regex(t, r"https?://\S+|www\.\S+", " ")
        t = pc.replace_substring_regex(t, r"@\w+|&#?\w+;|\brt\b", " ")
        t = pc.replace_substring_regex(t, r"([.!?,;:()\"'*])", " \\1 ")
        return pc.utf8_trim_whitespace(pc.replace_substring_regex(t, r"\s+", " "))

    with open(TOX / "davidson_hate_offensive_labeled.csv", newline="") as f:
        texts = [r["tweet"] for r in csv.DictReader(f)]
    texts += sharegpt_sample_turns()
    texts += [
        "",
        " ",
        "a\u000bb",
        "x\u00a0.\u00a0y",
        "(((wow)))...!!!",
        "tab\there\r\n\fnext",
        "é'à'ü",
        "😀!😀",
        "rt @me: &amp; x@https://a.b c",
    ]
    arr = pa.array(texts + [None])
    assert len(texts) > 20_000
    assert prepare(arr).to_pylist() == by_regex(arr).to_pylist()
    assert (
        prepare(arr.slice(5, 100)).to_pylist() == by_regex(arr.slice(5, 100)).to_pylist()
    )  # an offset into the buffers


def sharegpt_sample_turns() -> list[str]:
    from curate.readers import plan, read_shard
    from curate.records import FieldNames

    path = SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json"
    convs = read_shard(plan([str(path)], "auto", 100_000)[0], FieldNames())[0].column("messages").to_pylist()
    return [m["content"] for conv in convs for m in conv]


def test_malformed_thresholds_file_is_one_line(tmp_path):
    import shutil

    rules = tmp_path / "rules"
    shutil.copytree(REPO / "curate" / "rules", rules)
    (rules / "toxicity.yaml").write_text("fasttext: {toxicity: [0.9\n")
    s = Toxicity(ToxicityParams(), StepContext(rules_dir=rules))
    with pytest.raises(UserError, match=r"toxicity.yaml:2: cannot read the toxicity thresholds: "):
        s.thresholds()
