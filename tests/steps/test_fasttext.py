"""_fasttext: the compiled predictor gives fastText's own labels and probabilities, bit for bit, on the
models curate ships, on models trained here in each shape it claims, and on text built to reach
fastText's corners; what it does not compute goes to fastText itself."""

from __future__ import annotations

import json
import random

import fasttext
import numpy as np
import pyarrow as pa
import pytest

from curate.resources import MODELS_DIR
from curate.steps._fasttext import (
    FastTextPredictor,
    LibraryPredictor,
    NotAModel,
    Unsupported,
    load,
    open_predictor,
    predict_lines,
)
from curate.steps._prose import one_line
from curate.steps._toxicity_text import lexicon_pattern, prepare
from tests.helpers import SHARED_DATA

INSTRUCTIONS = SHARED_DATA / "instructions"


def real_lines(limit: int = 6000) -> list[str]:
    """Turns of the real ShareGPT sample (many languages, code, markup), one line each."""
    rows = json.loads((INSTRUCTIONS / "sharegpt92k_cleaned_sample.json").read_text())
    texts = [m["value"] for r in rows for m in r["conversations"]][:limit]
    return [t[:3000] for t in one_line(pa.array(texts)).to_pylist()]


def corner_lines(n: int = 3000, seed: int = 5) -> list[str]:
    """Text that reaches fastText's corners: its own label tokens (a known label, an unknown one,
    the bare prefix), a literal </s> mid-line (fastText stops reading there), the delimiters it
    splits on besides the space (\\t \\v \\f \\r \\0), multi-byte characters from several scripts, long
    words, empty and blank lines."""
    rng = random.Random(seed)
    pieces = [
        "the", "water", "Wasser", "eau", "вода", "水", "물", "ماء", "जल", "água", "😀", "e\u0301",
        "__label__en", "__label__ru", "__label__zz", "__label__", "__lab", "</s>", "<s>", "<", ">", "</",
        "\t", "\x0b", "\x0c", "\r", "\x00", "  ", "x" * 300, "ü" * 120, "a-b_c.d", "12345", "http://x.y/z",
    ]  # fmt: skip
    lines = ["", " ", "\t", "</s>", "__label__en", "</s> hello world", "hello </s> world"]
    for _ in range(n):
        lines.append(" ".join(rng.choice(pieces) for _ in range(rng.randint(1, 40))))
    return lines


def assert_same_as_fasttext(path, lines: list[str]) -> FastTextPredictor:
    ours = FastTextPredictor(path)
    ref_model = fasttext.load_model(str(path))
    arr = pa.array(lines, pa.string())
    label, prob, probs = ours.predict(arr)
    k = 1 if ours.model.loss == 1 else len(ours.labels)
    ref_labels, ref_probs = predict_lines(ref_model, arr, k)
    for i, (names, ps) in enumerate(zip(ref_labels, ref_probs)):
        if not len(names):
            assert label[i] == -1 and prob[i] == 0, lines[i]
            continue
        assert ours.labels[label[i]] == names[0].removeprefix("__label__"), lines[i]
        assert prob[i] == np.float32(ps[0]), lines[i]  # bit for bit
        for name, p in zip(names, ps):
            if probs.shape[1]:
                assert probs[i, ours.labels.index(name.removeprefix("__label__"))] == np.float32(p), lines[i]
    return ours


def test_language_model_bit_for_bit_on_real_text():
    ours = assert_same_as_fasttext(MODELS_DIR / "lid.176.ftz", real_lines())
    assert len(ours.labels) == 176 and ours.model.loss == 1  # hierarchical softmax


def test_language_model_bit_for_bit_on_fasttext_corners():
    assert_same_as_fasttext(MODELS_DIR / "lid.176.ftz", corner_lines())


def test_toxicity_model_bit_for_bit():
    meta = json.loads((MODELS_DIR / "toxicity_fasttext.json").read_text())
    prepared = prepare(pa.array(real_lines(3000) + corner_lines(1000)), lexicon_pattern(meta["lexicon"]))
    ours = assert_same_as_fasttext(MODELS_DIR / "toxicity_fasttext.ftz", prepared.to_pylist())
    assert ours.model.word_ngrams == 2 and ours.model.maxn == 0 and ours.model.loss == 3  # softmax


@pytest.fixture(scope="module")
def training_file(tmp_path_factory):
    """Labelled lines from the real sample: each turn labelled by its first word's length (any
    labels do; the predictor must agree with fastText whatever it learned)."""
    path = tmp_path_factory.mktemp("ft") / "train.txt"
    lines = [x for x in real_lines(4000) if x.strip()]
    path.write_text("".join(f"__label__{'long' if len(x.split()[0]) > 4 else 'short'} {x}\n" for x in lines))
    return path


@pytest.mark.parametrize(
    "train, quantize",
    [
        # lid.176's shape: hierarchical softmax, character n-grams, pruned and norm-quantized
        ({"loss": "hs", "minn": 2, "maxn": 4, "wordNgrams": 1}, {"qnorm": True, "cutoff": 3000}),
        # the toxicity model's shape: softmax, word bigrams and trigrams, no character n-grams
        ({"loss": "softmax", "minn": 0, "maxn": 0, "wordNgrams": 3}, {"qnorm": False, "cutoff": 0}),
        # character n-grams of another length, not pruned (-1), a last sub-quantizer of one column
        ({"loss": "softmax", "minn": 3, "maxn": 6, "wordNgrams": 2, "dim": 15}, {"dsub": 2}),
    ],
)
def test_trained_models_bit_for_bit(tmp_path, training_file, train, quantize):
    # thread >= 11: fastText's training can stop with "Encountered NaN" on fewer (see README)
    model = fasttext.train_supervised(
        str(training_file), epoch=2, dim=train.pop("dim", 16), bucket=200_000, thread=11, seed=3, verbose=0, **train
    )
    model.quantize(input=str(training_file), retrain=False, **quantize)
    model.save_model(str(tmp_path / "m.ftz"))
    assert_same_as_fasttext(tmp_path / "m.ftz", real_lines(1500) + corner_lines(500))


def test_a_dense_model_goes_to_fasttext_itself(tmp_path, training_file):
    model = fasttext.train_supervised(str(training_file), epoch=1, dim=8, bucket=50_000, thread=11, seed=3, verbose=0)
    model.save_model(str(tmp_path / "m.bin"))
    with pytest.raises(Unsupported, match="not quantized"):
        load(tmp_path / "m.bin")
    predictor = open_predictor(tmp_path / "m.bin")
    assert isinstance(predictor, LibraryPredictor)
    lines = real_lines(300)
    label, prob, probs = predictor.predict(pa.array(lines))
    ref = model.predict(lines, k=2)
    assert [predictor.labels[i] for i in label] == [x[0].removeprefix("__label__") for x in ref[0]]
    assert np.array_equal(prob, np.array([p[0] for p in ref[1]], np.float32))
    assert probs.shape == (300, 2)


def test_newlines_are_refused_as_fasttext_does():
    ours = FastTextPredictor(MODELS_DIR / "lid.176.ftz")
    with pytest.raises(ValueError, match="one line at a time"):
        ours.predict(pa.array(["first line\nsecond line"]))


@pytest.mark.parametrize("cut", [0, 3, 8, 70, 5000, 900_000])
def test_a_cut_or_foreign_file_is_not_a_model(tmp_path, cut):
    data = (MODELS_DIR / "lid.176.ftz").read_bytes()[:cut] if cut else b"PK\x03\x04 a zip archive"
    (tmp_path / "m.ftz").write_bytes(data)
    with pytest.raises(NotAModel):
        open_predictor(tmp_path / "m.ftz")
