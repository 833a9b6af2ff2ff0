"""quality_score: how good each response is given its instruction, as a column; a decision only on request.

Every assistant turn is scored with the user turn before it (the instruction it answers); the row's
`quality_score` is the mean (or min, or last) over its assistant turns, in [0, 1]. A row without an
assistant turn gets no score (null). The step never rejects unless `min_score` is set: scores are for
`select` and the report (docs/quality.md).

Scorers:
  offline     the default: two linear heads over hashed features of the response and its instruction
              (helpfulness, and harmlessness where a gate on the instruction sees a harm-seeking
              request), shipped as curate/models/quality_linear.npz, trained by
              benchmarks/quality/train.py on public preference data (GPT-4 vs davinci-003 answers,
              AlpacaEval judge preferences, HH-RLHF harmless pairs, AlpaGasus ratings); one compiled
              pass, no model server.
  perplexity, ifd, classifier
              a transformers model from a local folder, on Ray actors (_model_scorers.py).
  judge       an LLM behind an OpenAI-compatible endpoint, cached, rate-limited (_judge.py).
The column holds the scorer's own scale: 0-1 (offline), perplexity (lower is better), IFD, the
classifier's logit or expected label, the judge's rating (0-5 with the shipped prompt).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.errors import UserError
from curate.registry import register
from curate.schema import turns_of
from curate.steps import _quality_features
from curate.steps._judge_params import JudgeParams
from curate.steps.base import MapStep, Params, Resources, StepOutput, set_column

MODELS = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = MODELS / "quality_linear.npz"


MODEL_SCORERS = ("perplexity", "ifd", "classifier")


class QualityScoreParams(Params):
    scorer: Literal["offline", "perplexity", "ifd", "classifier", "judge"] = Field(
        "offline",
        description="offline: the linear model curate ships; perplexity / ifd: a causal LM; classifier: a "
        "sequence classifier or reward model; judge: an LLM behind an OpenAI-compatible endpoint",
    )
    model_path: str | None = Field(
        None,
        description="offline: another file from benchmarks/quality/train.py; "
        "perplexity / ifd / classifier: a local transformers model folder",
    )
    device: Literal["cpu", "cuda"] = Field("cpu", description="model scorers: where the model runs")
    batch_size: int = Field(8, ge=1, le=4096, description="model scorers: texts per forward pass (sorted by length)")
    max_length: int = Field(512, ge=8, le=131072, description="model scorers: tokens of instruction + answer")
    torch_threads: int = Field(1, ge=1, le=256, description="model scorers: torch threads per actor")
    judge: JudgeParams = Field(
        default_factory=JudgeParams, description="judge: endpoint, model, prompt, concurrency, rate, retries, cache"
    )
    aggregate: Literal["mean", "min", "last"] = Field(
        "mean", description="how a row's assistant turns combine into its score"
    )
    min_score: float | None = Field(
        None, description="reject rows scoring below this (low_quality); none: only annotate"
    )
    max_score: float | None = Field(
        None, description="reject rows scoring above this (e.g. perplexity; reason high_score)"
    )


def response_pairs(table: pa.Table) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """(row of each assistant turn, the user turn before it or "", the assistant turn's text)."""
    t = turns_of(table)
    is_user = t.role == "user"
    idx = np.arange(len(t.row))
    last_user = np.maximum.accumulate(np.where(is_user, idx, -1)) if len(idx) else idx
    answer = np.nonzero(t.role == "assistant")[0]
    prev = last_user[answer]
    # the instruction must be in the same conversation
    prev = np.where((prev >= 0) & (prev >= t.offsets[t.row[answer]]), prev, -1)
    texts = t.text
    instr = pc.fill_null(texts.take(pa.array(np.where(prev >= 0, prev, 0))), "")
    instr = pc.if_else(pa.array(prev >= 0), instr, pa.scalar("")) if len(answer) else pa.array([], pa.string())
    return t.row[answer], instr, pc.fill_null(texts.take(pa.array(answer)), "")


def per_row(rows: np.ndarray, values: np.ndarray, n: int, how: str) -> np.ndarray:
    """Turn scores -> row scores (NaN for rows without any)."""
    out = np.full(n, np.nan)
    if not len(rows):
        return out
    if how == "mean":
        sums = np.bincount(rows, weights=values, minlength=n)
        counts = np.bincount(rows, minlength=n)
        np.divide(sums, counts, out=out, where=counts > 0)
    elif how == "min":
        tmp = np.full(n, np.inf)
        np.minimum.at(tmp, rows, values)
        out = np.where(np.isinf(tmp), np.nan, tmp)
    else:  # last: turns come in order, so the last write per row wins
        out[rows] = values
    return out


class OfflineScorer:
    """The shipped linear model: sigmoid(helpful + gate(instruction) * harmless), two linear heads over
    hashed features of the response given its instruction (_quality_features.py)."""

    def __init__(self, path: Path):
        try:
            with np.load(path) as z:
                self.w_hash = z["w_hash"].astype(np.float64)
                self.w_dense = z["w_dense"].astype(np.float64)
                self.bias = float(z["bias"])
                self.w_harm = z["w_harm"].astype(np.float64)
                self.w_harm_dense = z["w_harm_dense"].astype(np.float64)
                self.w_gate = z["w_gate"].astype(np.float64)
                self.gate_bias = float(z["gate_bias"])
        except (OSError, KeyError, ValueError) as e:
            raise UserError(f"quality_score: cannot load the quality model {path}: {e}") from None
        n = _quality_features.N_DENSE
        if len(self.w_dense) != n or len(self.w_harm_dense) != n or len(self.w_harm) != len(self.w_hash):
            raise UserError(
                f"quality_score: {path} was trained with other features ({len(self.w_dense)} dense, expected {n}); "
                "retrain it with benchmarks/quality/train.py"
            )

    def score(self, instructions: pa.Array, responses: pa.Array) -> np.ndarray:
        raw = _quality_features.score(
            instructions,
            responses,
            self.w_hash,
            self.w_dense,
            self.bias,
            self.w_harm,
            self.w_harm_dense,
            self.w_gate,
            self.gate_bias,
        )
        return 1.0 / (1.0 + np.exp(-raw))


@register
class QualityScore(MapStep):
    """Response quality given the instruction (offline linear model by default), a 0-1 column."""

    name = "quality_score"
    Params = QualityScoreParams
    columns = {"quality_score": pa.float32()}

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self.scorer = None

    def resources(self) -> Resources:
        """A model scorer holds a transformer: an actor per worker, so it loads once (and its GPU
        when `device: cuda`); the offline model and the judge (HTTP) are plain tasks."""
        p = self.params
        if p.scorer not in MODEL_SCORERS:
            return self.default_resources
        return Resources(cpus=p.torch_threads, gpus=1.0 if p.device == "cuda" else 0.0, memory_gb=1.0, model=True)

    def setup(self) -> None:
        if self.scorer is not None:
            return
        p = self.params
        if p.scorer == "offline":
            self.scorer = OfflineScorer(Path(p.model_path) if p.model_path else DEFAULT_MODEL)
        elif p.scorer == "judge":
            from curate.steps._judge import JudgeScorer

            self.scorer = JudgeScorer(p.judge, self.ctx)
        else:
            from curate.steps._model_scorers import CausalLMScorer, ClassifierScorer

            common = dict(device=p.device, batch_size=p.batch_size, max_length=p.max_length, threads=p.torch_threads)
            self.scorer = (
                ClassifierScorer(p.model_path, **common)
                if p.scorer == "classifier"
                else CausalLMScorer(p.scorer, p.model_path, **common)
            )

    def process(self, table: pa.Table) -> StepOutput:
        self.setup()
        n = table.num_rows
        rows, instr, resp = response_pairs(table)
        turn_scores = self.scorer.score(instr, resp) if len(rows) else np.zeros(0)
        scores = per_row(rows, turn_scores, n, self.params.aggregate)
        counters = Counter({f"scorer:{self.params.scorer}": n, "unscored": int(np.isnan(scores).sum())})
        counters.update(getattr(self.scorer, "take_counters", Counter)())
        out = set_column(table, "quality_score", pa.array(scores.astype(np.float32), pa.float32(), from_pandas=True))
        reason, detail = [None] * n, [None] * n
        lo, hi = self.params.min_score, self.params.max_score
        for limit, code, op, bad in (
            (lo, "low_quality", "<", lambda s: s < lo),
            (hi, "high_score", ">", lambda s: s > hi),
        ):
            if limit is None:
                continue
            out_of = np.nonzero(bad(scores) & ~np.isnan(scores))[0]  # unscored rows are not judged
            counters[code] = len(out_of)
            for r in out_of:
                reason[r], detail[r] = code, f"{self.params.scorer} score {scores[r]:.4g} {op} {limit:g}"
        return StepOutput(out, reason=reason, detail=detail, counters=counters)
