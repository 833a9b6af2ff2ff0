"""quality_score: how good each response is given its instruction, as a column; a decision only on request.

Every assistant turn is scored with the user turn before it (the instruction it answers); the row's
`quality_score` is the mean (or min, or last) over its assistant turns, in [0, 1]. A row without an
assistant turn gets no score (null). The step never rejects unless `min_score` is set: scores are for
`select` and the report (docs/quality.md).

Scorers:
  offline  the default: a linear model over hashed features of the response and its instruction,
           shipped as curate/models/quality_linear.npz, trained by benchmarks/quality/train.py on
           public preference data (GPT-4 vs davinci-003 answers, AlpacaEval judge preferences,
           HH-RLHF harmless pairs, AlpaGasus ratings); one compiled pass, no model server.
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
from curate.steps.base import MapStep, Params, StepOutput, set_column

MODELS = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = MODELS / "quality_linear.npz"


class QualityScoreParams(Params):
    scorer: Literal["offline"] = Field("offline", description="offline: the linear model curate ships")
    model_path: str | None = Field(None, description="offline: another model file trained by benchmarks/quality/train.py")
    aggregate: Literal["mean", "min", "last"] = Field("mean", description="how a row's assistant turns combine into its score")
    min_score: float | None = Field(None, ge=0.0, le=1.0, description="reject rows scoring below this (low_quality); none: only annotate")


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
    """The shipped linear model: sigmoid(w . features(instruction, response) + b)."""

    def __init__(self, path: Path):
        try:
            with np.load(path) as z:
                self.w_hash = z["w_hash"].astype(np.float64)
                self.w_dense = z["w_dense"].astype(np.float64)
                self.bias = float(z["bias"])
        except (OSError, KeyError, ValueError) as e:
            raise UserError(f"quality_score: cannot load the quality model {path}: {e}") from None
        if len(self.w_dense) != _quality_features.N_DENSE:
            raise UserError(f"quality_score: {path} was trained with other features ({len(self.w_dense)} dense, expected {_quality_features.N_DENSE})")

    def score(self, instructions: pa.Array, responses: pa.Array) -> np.ndarray:
        raw = _quality_features.score(instructions, responses, self.w_hash, self.w_dense, self.bias)
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

    def setup(self) -> None:
        if self.scorer is None:
            self.scorer = OfflineScorer(Path(self.params.model_path) if self.params.model_path else DEFAULT_MODEL)

    def process(self, table: pa.Table) -> StepOutput:
        self.setup()
        n = table.num_rows
        rows, instr, resp = response_pairs(table)
        turn_scores = self.scorer.score(instr, resp) if len(rows) else np.zeros(0)
        scores = per_row(rows, turn_scores, n, self.params.aggregate)
        counters = Counter({f"scorer:{self.params.scorer}": n, "unscored": int(np.isnan(scores).sum())})
        out = set_column(table, "quality_score", pa.array(scores.astype(np.float32), pa.float32(), from_pandas=True))
        reason = detail = None
        limit = self.params.min_score
        if limit is not None:
            low = np.nan_to_num(scores, nan=np.inf) < limit
            reason = np.where(low, "low_quality", None).tolist()
            detail = [f"quality {s:.3f} < {limit:g}" if d else None for s, d in zip(scores, low)]
            counters["below_min_score"] = int(low.sum())
        return StepOutput(out, reason=reason, detail=detail, counters=counters)
