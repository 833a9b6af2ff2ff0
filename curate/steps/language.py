"""language: identify each conversation's language with fastText lid.176; keep or drop by language.

The model (lid.176.ftz, CC BY-SA 3.0, Joulin et al. 2016) ships inside curate, so the step works
offline; `_fasttext` computes fastText's predictions from it (the same labels and probabilities,
3x faster than fastText's own predict). Each turn of the chosen roles is predicted on its
natural-language text only (code blocks, inline code, URLs and code-like lines removed, see
`_prose.strip_code`): a Python answer explained in English is English. A turn with fewer than `min_letters` letters left is "code" (if code was removed)
or "unknown", and does not vote.

Conversation level: a vote of the turns weighted by their letter count (capped at `max_chars`).
Why not predict on the concatenated text? Per-turn votes are needed anyway for the per-turn
columns, a length-weighted vote is what a concatenation approximates without the truncation bias
toward the first turns, and it gives an honest score for mixed conversations: `lang_score` is the
weighted share of the winner's confident votes, sum(w * p for turns of the winner) / sum(w), so a
conversation that is half English, half French scores <= 0.5 whatever the per-turn confidences.

A turn's numbers (letters, code removed, label, probability) depend on its text alone, so a text
this worker has seen before comes from the memo (`_memo`) instead of the model.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from curate.registry import register
from curate.resources import MODELS_DIR
from curate.schema import parts_param, turns_of
from curate.steps._fasttext import NotAModel, open_predictor
from curate.steps._memo import TextMemo
from curate.steps._prose import one_line_letters, strip_code
from curate.steps.base import MapStep, Params, StepOutput, set_column

DEFAULT_MODEL = MODELS_DIR / "lid.176.ftz"
NO_VOTE = ("unknown", "code")


@cache
def model_labels() -> frozenset[str]:
    return frozenset((MODELS_DIR / "lid.176.labels.txt").read_text().split())


Role = Literal["system", "user", "assistant", "tool"]


class LanguageParams(Params):
    keep: list[str] | None = Field(
        None, description="keep only conversations in these languages (lid.176 codes, e.g. en)"
    )
    drop: list[str] | None = Field(None, description="drop conversations in these languages; exclusive with keep")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="drop when lang_score is below this")
    keep_unknown: bool = Field(
        True, description="keep conversations with no natural-language text to identify (code only, empty)"
    )
    parts: list[Role] = parts_param(
        ["user", "assistant"], "turns that vote (traces do not: a trace's language is its answer's)"
    )
    min_letters: int = Field(20, ge=1, le=10_000, description="letters of prose a turn needs to vote")
    max_chars: int = Field(2000, ge=50, le=1_000_000, description="characters of each turn given to the model")
    windows: int = Field(
        1,
        ge=1,
        le=64,
        description="a longer turn is given as this many evenly spaced pieces of its prose (1: its first max_chars characters)",
    )
    model_path: str | None = Field(None, description="a fastText language-id model (default: the bundled lid.176.ftz)")

    @field_validator("keep", "drop")
    @classmethod
    def _known_codes(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("must list at least one language code")
        unknown = [c for c in v if c not in model_labels() and c not in NO_VOTE]
        if unknown:
            raise ValueError(
                f"unknown language code {unknown[0]!r}; lid.176 uses ISO 639 codes such as 'en', 'zh', 'ru'"
            )
        return v

    @model_validator(mode="after")
    def _keep_or_drop(self):
        if self.keep is not None and self.drop is not None:
            raise ValueError("keep and drop are mutually exclusive; set one of them")
        return self


def sample_windows(text: str, max_chars: int, k: int) -> str:
    """`text` if it fits in max_chars, else k pieces of max_chars // k characters at evenly spaced
    places from its start to its end, each cut at spaces where one is near (no half words), joined
    by spaces. Python, but only on the turns' text already converted for fastText: one slice per
    window of the long turns."""
    if len(text) <= max_chars:
        return text
    w = max_chars // k
    step = (len(text) - w) / (k - 1)
    pieces = []
    for j in range(k):
        a = round(j * step)
        b = a + w
        if a:
            cut = text.find(" ", a, a + w // 4)
            a = cut + 1 if cut >= 0 else a
        if b < len(text):
            cut = text.rfind(" ", b - w // 4, b)
            b = cut if cut > a else b
        pieces.append(text[a:b])
    return " ".join(pieces)


@register
class Language(MapStep):
    """Language of each conversation and turn (fastText lid.176, bundled); keep/drop by language."""

    name = "language"
    Params = LanguageParams
    columns = {
        "lang": pa.string(),
        "lang_score": pa.float32(),
        "lang_turns": pa.list_(pa.string()),
        "lang_turn_scores": pa.list_(pa.float32()),
    }

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self._model = None
        self._memo = TextMemo(4)
        self._labels: list[str] = []  # label codes of the memo's rows
        self._codes: dict[str, int] = {}

    def setup(self) -> None:
        self.model  # noqa: B018  (load once per worker)

    @property
    def model(self):
        """Loaded lazily, once per worker (a model object does not pickle to Ray workers)."""
        if self._model is None:
            path = Path(self.params.model_path) if self.params.model_path else DEFAULT_MODEL
            if not path.is_file():
                from curate.errors import UserError

                raise UserError(f"language: model file not found: {path}")
            try:
                self._model = open_predictor(path)
            except NotAModel as e:
                from curate.errors import UserError

                raise UserError(f"language: {path} is not a fastText model ({e})") from None
        return self._model

    def predict(self, lines: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(labels, probabilities) for single-line texts, in one call to the model."""
        if not len(lines):
            return np.array([], dtype=object), np.array([], dtype=np.float32)
        label, prob, _ = self.model.predict(lines)
        names = np.array([*self.model.labels, "unknown"], dtype=object)  # -1: no prediction
        return names[label], np.minimum(prob, 1.0)

    def process(self, table: pa.Table) -> StepOutput:
        p = self.params
        t = turns_of(table)
        n_rows = table.num_rows
        counters: Counter = Counter({"backend:fasttext_lid176": n_rows})
        selected = np.isin(t.role.astype(str), p.parts) if len(t.role) else np.zeros(0, bool)
        sel_idx = np.nonzero(selected)[0]
        texts = t.text.take(pa.array(sel_idx, pa.int64()))
        # per selected turn: letters of prose, code removed?, label code (-1: no vote), probability
        per_turn = self._memo.resolve(texts, lambda idx: self._identify(texts.take(pa.array(idx, pa.int64()))))
        letters = np.zeros(len(t.row), np.int64)
        had_code = np.zeros(len(t.row), bool)
        letters[sel_idx] = per_turn[:, 0]
        had_code[sel_idx] = per_turn[:, 1] > 0
        votes = selected & (letters >= p.min_letters)

        turn_lang = np.full(len(t.row), None, dtype=object)
        turn_score = np.full(len(t.row), np.nan, dtype=np.float32)
        turn_lang[selected] = np.where(had_code[selected], "code", "unknown")
        vote_idx = np.nonzero(votes)[0]
        voting = per_turn[votes[sel_idx]]
        labels = np.array(self._labels, dtype=object)[voting[:, 2].astype(np.int64)]
        probs = voting[:, 3].astype(np.float32)
        turn_lang[vote_idx] = labels
        turn_score[vote_idx] = probs
        counters["turns_predicted"] += len(vote_idx)
        counters["turns_code_only"] += int((selected & ~votes & had_code).sum())

        lang, score = self._vote(t.row[vote_idx], labels, probs, np.minimum(letters[vote_idx], p.max_chars), n_rows)
        # Rows with no voting turn: "code" if some selected turn was all code, else "unknown".
        code_rows = np.zeros(n_rows, bool)
        code_rows[t.row[selected & had_code & ~votes]] = True
        nolang = lang == None  # noqa: E711 -- elementwise over an object array
        lang[nolang & code_rows] = "code"
        lang[nolang & ~code_rows] = "unknown"
        counters.update(f"lang:{x}" for x in lang)

        reason, detail = self._decide(lang, score)
        table = set_column(table, "lang", pa.array(lang.tolist(), pa.string()))
        table = set_column(table, "lang_score", pa.array(score, pa.float32(), mask=np.isnan(score)))
        offsets = pa.array(t.offsets, pa.int32())
        turn_lang_arr = pa.array(turn_lang.tolist(), pa.string())
        turn_score_arr = pa.array(turn_score, pa.float32(), mask=np.isnan(turn_score))
        table = set_column(table, "lang_turns", pa.ListArray.from_arrays(offsets, turn_lang_arr))
        table = set_column(table, "lang_turn_scores", pa.ListArray.from_arrays(offsets, turn_score_arr))
        return StepOutput(table, reason=reason, detail=detail, counters=counters)

    def _identify(self, texts: pa.Array) -> np.ndarray:
        """Per text (a turn of the chosen roles): [letters of prose, 1 if code was removed, label
        code into self._labels or -1 when too few letters to vote, probability]. A function of the
        text alone: the memo serves repeats from it."""
        p = self.params
        # Windows spread over the turn need all of its prose; the first max_chars need only a prefix.
        prose, had_code = strip_code(texts, p.max_chars if p.windows == 1 else None)
        prose, letters = one_line_letters(prose)
        votes = letters >= p.min_letters
        out = np.zeros((len(texts), 4), np.float64)
        out[:, 0] = letters
        out[:, 1] = had_code
        out[:, 2] = -1
        vote_idx = np.nonzero(votes)[0]
        lines = prose.take(pa.array(vote_idx, pa.int64()))
        if p.windows > 1:
            lines = pa.array([sample_windows(x, p.max_chars, p.windows) for x in lines.to_pylist()], pa.string())
        labels, probs = self.predict(lines)
        names, which = np.unique(labels.astype(str), return_inverse=True)
        out[vote_idx, 2] = np.array([self._label_code(x) for x in names], np.float64)[which]
        out[vote_idx, 3] = probs
        return out

    def _label_code(self, label: str) -> int:
        code = self._codes.get(label)
        if code is None:
            code = self._codes[label] = len(self._labels)
            self._labels.append(label)
        return code

    @staticmethod
    def _vote(rows: np.ndarray, labels: np.ndarray, probs: np.ndarray, weights: np.ndarray, n_rows: int):
        """Length-weighted vote per row: (winner or None, weighted share of the winner's confidence)."""
        lang = np.full(n_rows, None, dtype=object)
        score = np.full(n_rows, np.nan, dtype=np.float32)
        if len(rows) == 0:
            return lang, score
        names, code = np.unique(labels.astype(str), return_inverse=True)  # sorted: ties go to the first code
        w = weights.astype(np.float64)
        votes = np.zeros((n_rows, len(names)))
        confident = np.zeros((n_rows, len(names)))
        np.add.at(votes, (rows, code), w)
        np.add.at(confident, (rows, code), w * probs)
        total = votes.sum(axis=1)
        has = total > 0
        win = np.argmax(votes, axis=1)
        lang[has] = names[win[has]]
        score[has] = (confident[np.arange(n_rows), win] / np.where(has, total, 1))[has]
        return lang, score

    def _decide(self, lang: np.ndarray, score: np.ndarray) -> tuple[list, list]:
        """Reason per row: confidence first (a low-confidence call is not evidence of a language)."""
        p = self.params
        codes = lang.astype(str)
        no_vote = np.isin(codes, NO_VOTE)
        listed_keep = np.isin(codes, p.keep) if p.keep is not None else np.zeros(len(codes), bool)
        unknown_drop = no_vote & (not p.keep_unknown) & ~listed_keep
        low = ~no_vote & (score < p.min_confidence)
        not_kept = ~no_vote & ~low & (~listed_keep if p.keep is not None else np.isin(codes, p.drop or []))
        reason: list[str | None] = [None] * len(lang)
        detail: list[str | None] = [None] * len(lang)
        rule = f"keep: {', '.join(p.keep)}" if p.keep is not None else "in drop"
        for i in np.nonzero(unknown_drop)[0]:
            reason[i], detail[i] = "language_not_kept", f"no natural-language text to identify ({codes[i]})"
        for i in np.nonzero(low)[0]:
            reason[i], detail[i] = (
                "low_language_confidence",
                f"lang={codes[i]} score {score[i]:.2f} < {p.min_confidence}",
            )
        for i in np.nonzero(not_kept)[0]:
            reason[i], detail[i] = "language_not_kept", f"lang={codes[i]} ({score[i]:.2f}); {rule}"
        return reason, detail
