"""semantic_dedup: bad model paths are one-line errors; wordllama loads offline and embeds as
WordLlama.embed does; local model2vec and sentence-transformers folders (tiny random models built
here) load through the real loading code; the duplicate score is (1 - w) cosine + w word Jaccard;
reworded copies are found, unrelated rows kept; local and Ray agree."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pytest

from curate.errors import UserError
from curate.steps.base import StepContext
from curate.steps.semantic_dedup import SemanticDedup, pair_scores
from tests.helpers import (
    REPO,
    SHARED_DATA,
    assert_step_config_error,
    parquet_bytes,
    pipeline_yaml,
    read_dir,
    rows_table,
    run,
    run_global,
    write_jsonl,
)


def step(**kw) -> SemanticDedup:
    return SemanticDedup(SemanticDedup.Params(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))


def dedup(s: SemanticDedup, t: pa.Table, shards: int = 1) -> pa.Table:
    return run_global(s, t, shards)[0]


BREAD = (
    "How do I bake sourdough bread at home?",
    "Mix flour, water and starter, let it rise overnight, shape it and bake at 230 C.",
)
BREAD2 = (
    "How can I bake sourdough bread at home?",
    "Mix flour, water and starter, let it rise overnight, shape it, then bake at 230 C.",
)
OTHERS = [
    ("What is the capital of France?", "Paris."),
    ("Write a haiku about autumn.", "Leaves drift on cold wind."),
    ("Explain recursion to a child.", "A function that calls itself on a smaller piece of the problem."),
]


def conv(pair):
    return [("user", pair[0]), ("assistant", pair[1])]


@pytest.mark.parametrize("embedder", ["model2vec", "sentence_transformers"])
def test_a_missing_model_folder_is_one_line_naming_it(tmp_path, embedder):
    missing = tmp_path / "no-such-model"
    with pytest.raises(UserError) as e:
        step(embedder=embedder, model_path=str(missing)).setup()
    assert str(e.value) == (
        f"semantic_dedup: embedder {embedder} needs model_path: a local model folder (no such folder: {missing})"
    )


@pytest.mark.parametrize("embedder", ["model2vec", "sentence_transformers"])
def test_a_folder_that_is_not_a_model_is_one_line(tmp_path, embedder):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError) as e:
        step(embedder=embedder, model_path=str(tmp_path)).setup()
    msg = str(e.value)
    assert msg.startswith(f"semantic_dedup: cannot load {embedder} model from {tmp_path}: ") and "\n" not in msg


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A model2vec StaticModel and a sentence-transformers BERT with random weights, saved to local
    folders the way their libraries save them."""
    import torch
    from model2vec import StaticModel
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("embedders")
    words = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"] + sorted(
        {w.strip(".,?!").lower() for pair in [BREAD, BREAD2, *OTHERS] for t in pair for w in t.split()}
    )
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    rng = np.random.default_rng(0)
    StaticModel(vectors=rng.standard_normal((len(words), 24)).astype(np.float32), tokenizer=tok).save_pretrained(
        root / "m2v"
    )
    bert = root / "bert"
    bert.mkdir()
    (bert / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(bert / "vocab.txt")).save_pretrained(bert)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(bert)
    encoder = Transformer(str(bert))
    SentenceTransformer(modules=[encoder, Pooling(encoder.get_embedding_dimension())]).save(str(root / "st"))
    return {"model2vec": root / "m2v", "sentence_transformers": root / "st"}


def test_model2vec_folder_embeds_as_model2vec_does(tiny_models):
    from model2vec import StaticModel

    from curate.steps._embed import load_embedder

    texts = [BREAD[0], OTHERS[0][0], "words nobody knows"]
    ours = load_embedder("model2vec", str(tiny_models["model2vec"]), 256, 2000, "semantic_dedup")
    theirs = StaticModel.from_pretrained(tiny_models["model2vec"], force_download=False).encode(texts)
    theirs = theirs / np.maximum(np.linalg.norm(theirs, axis=1, keepdims=True), 1e-12)
    assert ours.dim == 24
    assert np.allclose(ours.embed(pa.array(texts)), theirs, atol=1e-5)


def test_sentence_transformers_folder_embeds_as_it_does(tiny_models):
    from sentence_transformers import SentenceTransformer

    from curate.steps._embed import load_embedder

    texts = [BREAD[0], OTHERS[0][0]]
    ours = load_embedder("sentence_transformers", str(tiny_models["sentence_transformers"]), 256, 2000, "x")
    theirs = SentenceTransformer(str(tiny_models["sentence_transformers"]), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    assert ours.dim == 32
    assert np.allclose(ours.embed(pa.array(texts)), theirs, atol=1e-5)


@pytest.mark.parametrize("embedder", ["model2vec", "sentence_transformers"])
def test_a_local_model_dedups_a_pipeline(tmp_path, tiny_models, embedder):
    """Random weights rank nothing, but a verbatim copy scores 1 under any embedder; blank rows
    (a transformer gives them all one vector) are nobody's duplicates."""
    recs = [
        {"id": f"x{i}", "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
        for i, (q, a) in enumerate([BREAD, *OTHERS, BREAD, (" ", " "), (" ", " ")])
    ]
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    steps = f"\n  - semantic_dedup: {{embedder: {embedder}, model_path: {json.dumps(str(tiny_models[embedder]))}, threshold: 0.99}}"
    stats = run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps=steps))
    rej = read_dir(tmp_path / "out" / "rejected")
    assert rej.column("id").to_pylist() == ["x4"]
    assert rej.column("semantic_duplicate_of").to_pylist() == ["x0"]
    assert stats["rows_rejected"] == 1


def test_score_is_weighted_cosine_plus_word_jaccard():
    """pair_scores on the step's features: w = 0 is the int8 cosine; w = 1 estimates the word
    Jaccard of the lowercased word sets (64 one-byte MinHash values: within ~0.2)."""
    s = step()
    a = ["The quick brown fox jumps over the lazy dog", "a b c d e f g h", "Paris is the capital of France"]
    b = ["the lazy dog is jumped over by a quick brown fox", "a b c d i j k l", "Paris is the capital of France!"]
    has, emb, sketch = s.features(pa.array(a + b))
    assert has.all()
    i = np.arange(3)
    exact_cos = (s.embedder.embed(pa.array(a)) * s.embedder.embed(pa.array(b))).sum(1)
    cos = pair_scores(emb, sketch, i, i + 3, 0.0)
    assert np.allclose(cos, np.minimum(exact_cos, 1), atol=0.01)
    jac = pair_scores(emb, sketch, i, i + 3, 1.0)
    words = [(set(x.lower().split()), set(y.lower().strip("!").split())) for x, y in zip(a, b)]
    exact_jac = np.array([len(x & y) / len(x | y) for x, y in words])
    assert np.abs(jac - exact_jac).max() < 0.2 and jac[2] == 1.0
    mixed = pair_scores(emb, sketch, i, i + 3, 0.3)
    assert np.allclose(mixed, 0.7 * cos + 0.3 * jac, atol=1e-5)
    # a pair whose cosine cannot reach the threshold keeps its cosine part alone
    cut = pair_scores(emb, sketch, i, i + 3, 0.3, threshold=0.3 + 0.7 * cos[1] + 1e-3)
    assert cut[1] == pytest.approx(0.7 * cos[1]) and cut[2] == pytest.approx(mixed[2])


def test_wordllama_loads_offline_and_matches_its_own_embed():
    from wordllama import WordLlama  # noqa: F401

    from curate.steps._embed import WordLlamaEmbedder, _wordllama

    texts = ["The cat sat on the mat.", "Stock markets fell sharply on Tuesday.", ""]
    ours = WordLlamaEmbedder().embed(pa.array(texts))
    theirs = _wordllama().embed(texts[:2], norm=True)
    assert np.allclose(ours[:2], theirs, atol=1e-4)
    assert not ours[2].any()  # no tokens: a zero vector, never anyone's duplicate


def test_reworded_copy_is_found_and_unrelated_rows_are_kept():
    t = rows_table([conv(BREAD)] + [conv(o) for o in OTHERS] + [conv(BREAD2)])
    out = dedup(step(), t, shards=2)
    reasons = out.column("_curate_drop_reason").to_pylist()
    assert reasons == [None, None, None, None, "semantic_duplicate"]
    assert out.column("semantic_duplicate_of").to_pylist() == [None, None, None, None, "r0"]
    assert out.column("semantic_cluster").to_pylist() == ["r0", None, None, None, "r0"]
    sim = out.column("semantic_similarity").to_pylist()
    assert sim[0] == sim[4] and 0.9 <= sim[4] <= 1.0
    assert out.column("_curate_drop_detail").to_pylist()[4].startswith("semantic duplicate of r0 (score 0.9")


def test_threshold_and_keep_policies():
    t = rows_table([conv(BREAD), conv(BREAD2)])
    assert dedup(step(threshold=0.999), t).column("_curate_drop_reason").to_pylist() == [None, None]
    out = dedup(step(keep="longest"), t)
    assert out.column("_curate_drop_reason").to_pylist() == ["semantic_duplicate", None]


def test_empty_rows_are_nobodys_duplicates():
    t = rows_table([[("user", "")], [("user", "")], [("user", "  ")]])
    assert dedup(step(), t).column("_curate_drop_reason").to_pylist() == [None, None, None]


def test_mrpc_paraphrases_score_higher_and_the_word_jaccard_helps():
    """On 600 MRPC training pairs (where the default weight was chosen): paraphrases score higher,
    and the default score ranks them better (ROC AUC) than the cosine alone."""
    with gzip.open(SHARED_DATA / "semantic" / "mrpc_msr_paraphrase_train.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][:600]
    s = step()
    n = len(rows)
    _, emb, sketch = s.features(pa.array([r["string1"] for r in rows] + [r["string2"] for r in rows]))
    i = np.arange(n)
    cos = pair_scores(emb, sketch, i, i + n, 0.0)
    score = pair_scores(emb, sketch, i, i + n, s.params.lexical_weight)
    label = np.array([int(r["quality"]) for r in rows])
    assert cos[label == 1].mean() > cos[label == 0].mean() + 0.03

    def auc(x):  # P(a paraphrase scores above a non-paraphrase)
        return (x[label == 1][:, None] > x[label == 0][None, :]).mean()

    assert auc(score) > auc(cos) + 0.01


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        ("{threshold: 0}", "steps[0].threshold: must be > 0.0 (got 0)"),
        ("{dim: 512}", "steps[0].dim: must be <= 256 (got 512)"),
        ("{keep: best}", "steps[0].keep: must be one of 'first', 'longest' or 'score' (got 'best')"),
        ("{keep: score}", "steps[0]: keep: score needs score_column (e.g. quality_score)"),
        ("{embedder: model2vec}", "steps[0]: embedder model2vec needs model_path: a local model folder"),
        (
            "{embedder: openai}",
            "steps[0].embedder: must be one of 'wordllama', 'model2vec' or 'sentence_transformers' (got 'openai')",
        ),
        ("{lexical_weight: 1.5}", "steps[0].lexical_weight: must be <= 1.0 (got 1.5)"),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "semantic_dedup", step_yaml, message)


def test_local_and_ray_agree(tmp_path, ray_cluster):
    pairs = (
        [BREAD, BREAD2]
        + OTHERS
        + [
            (f"Tell me fact number {i} about the ocean.", f"The ocean fact {i}: it covers most of Earth.")
            for i in range(12)
        ]
    )
    recs = [
        {"id": f"x{i}", "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
        for i, (q, a) in enumerate(pairs)
    ]
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    steps = "\n  - semantic_dedup: {partitions: 3}"
    outs = {}
    for runner in ("local", "ray"):
        stats = run(
            pipeline_yaml(
                tmp_path / f"{runner}.yaml",
                src,
                tmp_path / runner,
                steps=steps,
                runner=runner,
                extra="  shard_rows: 5\n",
            )
        )
        assert stats["rows_rejected"] >= 1
        rej = read_dir(tmp_path / runner / "rejected")
        assert "x1" in rej.column("id").to_pylist()
        outs[runner] = parquet_bytes(tmp_path / runner)
    assert outs["local"] == outs["ray"]
