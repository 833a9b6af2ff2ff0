"""quality_score's model scorers through their real loading code: a tiny GPT-2 and classifiers with
random weights, built here and saved with save_pretrained, loaded from the folder; and an LLM judge
against a real local HTTP server that speaks the OpenAI chat-completions API."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow as pa
import pytest

from curate.errors import UserError
from curate.steps.base import StepContext, apply_map_step
from curate.steps.quality_score import QualityScore
from tests.helpers import REPO, pipeline_yaml, read_dir, rows_table, run, write_jsonl

CORPUS = [
    "Give three tips for staying healthy.",
    "Eat vegetables, sleep well and walk every day.",
    "What is the capital of France?",
    "The capital of France is Paris.",
    "Write a short poem about the sea.",
] * 20


def tiny_tokenizer(path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<|endoftext|>", "<unk>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<unk>"
    )
    fast.save_pretrained(path)
    return fast


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, cls, labels in (
        ("lm", GPT2LMHeadModel, None),
        ("reward", GPT2ForSequenceClassification, 1),
        ("rater", GPT2ForSequenceClassification, 6),
    ):
        tok = tiny_tokenizer(root / name)
        cfg = GPT2Config(
            vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2, pad_token_id=tok.eos_token_id
        )
        if labels:
            cfg.num_labels = labels
        torch.manual_seed(0)
        cls(cfg).save_pretrained(root / name)
        out[name] = root / name
    return out


def step(**kw) -> QualityScore:
    return QualityScore(QualityScore.Params(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))


PAIRS = [
    ("Give three tips for staying healthy.", "Eat vegetables, sleep well and walk every day."),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Write a short poem about the sea.", "Waves"),
]


def table():
    return rows_table([[("user", q), ("assistant", a)] for q, a in PAIRS])


def reference_nll(path, prompt: str, answer: str) -> float:
    """The mean NLL of the answer's tokens after the prompt's, computed by transformers' own loss."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    a = tok(answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + a])
    labels = ids.clone()
    labels[0, : len(p)] = -100
    with torch.no_grad():
        return float(model(input_ids=ids, labels=labels).loss)


def test_perplexity_and_ifd_match_transformers_own_loss(models):
    ppl = np.array(
        apply_map_step(step(scorer="perplexity", model_path=str(models["lm"]), batch_size=2), table())[0]
        .column("quality_score")
        .to_pylist()
    )
    ifd = np.array(
        apply_map_step(step(scorer="ifd", model_path=str(models["lm"])), table())[0].column("quality_score").to_pylist()
    )
    for i, (q, a) in enumerate(PAIRS):
        cond = reference_nll(models["lm"], q + "\n", a)
        alone = reference_nll(models["lm"], "<|endoftext|>", a)
        assert ppl[i] == pytest.approx(np.exp(cond), rel=1e-3)
        assert ifd[i] == pytest.approx(np.exp(cond - alone), rel=1e-3)


def test_classifier_reward_and_rating(models):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    reward = (
        apply_map_step(step(scorer="classifier", model_path=str(models["reward"])), table())[0]
        .column("quality_score")
        .to_pylist()
    )
    tok, model = (
        AutoTokenizer.from_pretrained(models["reward"]),
        AutoModelForSequenceClassification.from_pretrained(models["reward"]),
    )
    with torch.no_grad():
        expected = float(model(**tok(PAIRS[1][0], PAIRS[1][1], return_tensors="pt")).logits[0, 0])
    assert reward[1] == pytest.approx(expected, rel=1e-3, abs=1e-4)
    rating = (
        apply_map_step(step(scorer="classifier", model_path=str(models["rater"])), table())[0]
        .column("quality_score")
        .to_pylist()
    )
    assert all(0.0 <= r <= 5.0 for r in rating) and len(set(rating)) == 3


def test_missing_or_broken_model_folder_is_one_line(tmp_path):
    with pytest.raises(UserError, match="quality_score: scorer perplexity needs model_path: a local folder"):
        step(scorer="perplexity", model_path=str(tmp_path / "nope")).setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="quality_score: cannot load ifd model from"):
        step(scorer="ifd", model_path=str(tmp_path / "empty")).setup()


def test_model_scorer_runs_on_ray_actors_like_local(tmp_path, models, ray_cluster):
    assert step(scorer="perplexity", model_path=str(models["lm"])).resources().actor and not step().resources().actor
    assert step(scorer="perplexity", model_path=str(models["lm"]), device="cuda").resources().gpus == 1
    recs = [{"instruction": q, "input": "", "output": a} for q, a in PAIRS * 4]
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    steps = f"\n  - quality_score: {{scorer: perplexity, model_path: {models['lm']}}}\n  - select: {{rows: 5, ascending: true}}"
    kept = {}
    for runner in ("local", "ray"):
        stats = run(
            pipeline_yaml(
                tmp_path / f"{runner}.yaml",
                src,
                tmp_path / runner,
                steps=steps,
                runner=runner,
                extra="  shard_rows: 4\n",
            )
        )
        assert stats["rows_kept"] == 5
        kept[runner] = read_dir(tmp_path / runner / "kept").column("quality_score").to_pylist()
    assert kept["local"] == kept["ray"]


# ---------------------------------------------------------------------- the judge


class _Judge(BaseHTTPRequestHandler):
    """An OpenAI chat-completions endpoint: 'Score: 4' for answers over 20 characters, else 'Score: 1';
    the first request for each prompt is answered 429 (retry), 'nonsense' for answers saying so."""

    seen: set = set()
    calls: list = []

    def do_POST(self):  # noqa: N802 -- http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(body)
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": "not found"})
        if self.headers.get("Authorization") != "Bearer sk-test":
            return self._send(401, {"error": "bad key"})
        user = body["messages"][-1]["content"]
        if user not in self.seen:
            self.seen.add(user)
            return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
        answer = user.split("### Response:\n", 1)[1].split("\n\nPlease rate", 1)[0]
        content = "I cannot rate this." if "nonsense" in answer else f"Score: {4 if len(answer) > 20 else 1}\nBecause."
        self._send(
            200,
            {
                "id": "x",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": len(user.split()),
                    "completion_tokens": 3,
                    "total_tokens": len(user.split()) + 3,
                },
            },
        )

    def _send(self, code, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_server():
    _Judge.seen, _Judge.calls = set(), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_judge_scores_retries_caches_and_counts(tmp_path, judge_server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    recs = [
        {"instruction": f"Question {i}?", "input": "", "output": a}
        for i, a in enumerate(
            ["A long and careful answer to the question.", "Short.", "nonsense here", "Another long, careful answer."]
        )
    ]
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    judge = (
        f"{{url: '{judge_server}', model: tiny-judge, api_key_env: JUDGE_KEY, concurrency: 3, backoff_seconds: 0, "
        f"usd_per_1k_prompt_tokens: 1.0, usd_per_1k_completion_tokens: 2.0, cache_dir: '{tmp_path / 'cache'}'}}"
    )
    steps = f"\n  - quality_score: {{scorer: judge, judge: {judge}, min_score: 3}}"
    stats = run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "o1", steps=steps, extra="  shard_rows: 2\n"))
    counters = {k: v for s in stats["steps"] for k, v in s.get("counters", {}).items()}
    assert counters["judge_retries"] == 4 and counters["judge_requests"] == 8 and counters["judge_unparsed"] == 1
    prompt_tokens = sum(
        len(u.split()) for u in {c["messages"][-1]["content"] for c in _Judge.calls}
    )  # one 200 per prompt
    assert counters["judge_prompt_tokens"] == prompt_tokens
    assert counters["judge_completion_tokens"] == 12
    assert counters["judge_cost_microusd"] == round((prompt_tokens * 1.0 + 12 * 2.0) * 1000)
    assert {c["model"] for c in _Judge.calls} == {"tiny-judge"} and all(c["temperature"] == 0 for c in _Judge.calls)
    scores = {
        r["id"]: r["quality_score"]
        for r in read_dir(tmp_path / "o1" / "rejected").to_pylist() + read_dir(tmp_path / "o1" / "kept").to_pylist()
    }
    assert sorted(scores.values(), key=lambda v: (v is None, v)) == [1.0, 4.0, 4.0, None]
    assert stats["rows_kept"] == 3 and stats["rows_rejected"] == 1  # the unscored row is not judged
    # the same prompts again (another output, same cache): nothing is paid twice
    n = len(_Judge.calls)
    stats = run(pipeline_yaml(tmp_path / "p2.yaml", src, tmp_path / "o2", steps=steps, extra="  shard_rows: 2\n"))
    counters = {k: v for s in stats["steps"] for k, v in s.get("counters", {}).items()}
    assert len(_Judge.calls) == n and counters["judge_cache_hits"] == 4 and "judge_prompt_tokens" not in counters


def test_judge_wrong_key_is_one_line(tmp_path, judge_server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "wrong")
    s = step(scorer="judge", judge={"url": judge_server, "api_key_env": "JUDGE_KEY", "cache_dir": str(tmp_path)})
    s.setup()
    with pytest.raises(UserError, match=r"quality_score: the judge at .* answered HTTP 401"):
        s.scorer.score(pa.array(["q"]), pa.array(["a"]))
