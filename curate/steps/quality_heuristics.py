"""quality_heuristics: Gopher-style quality and repetition rules, adapted to chat turns.

Rules and thresholds follow Gopher (Rae et al. 2021, App. A.1 and Table A1) as implemented in
datatrove's gopher_quality_filter.py / gopher_repetition_filter.py; the numbers and their sources
live in rules/quality_heuristics.yaml. Chat is not web text, so:
  * statistics are computed on the prose of each turn (code blocks, inline code, URLs and code-like
    lines removed): a code answer is not "low quality" for having few stop words;
  * turn rules look at each checked turn long enough to measure (prose_min_words for ratios,
    repetition_min_words for repetition) and reject the conversation if any turn fails; the q_
    column holds the worst turn's value; "Thanks!" is never measured;
  * conversation rules (word count, mean word length, stop words) pool the checked turns;
  * English-only rules are skipped for rows whose `lang` (from the language step) is another
    language, and counted as `skipped_non_english:<rule>`.
Everything is vectorised over the batch's turns (Arrow compute for regex, numba byte scans for
the words and their shapes (`_word_shapes.words_of`), digit runs and n-gram repeats: no per-turn
Python loop). Rules that are off cost nothing. A turn text seen before by this worker is not
measured again: its per-turn numbers come from the memo (`_memo`; the same values, so the same
verdicts).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.errors import UserError
from curate.kernels import FNV_OFFSET, FNV_PRIME, SPACE, arrow_spaces, ascii_classes, fmix64, utf8_buffers
from curate.registry import register
from curate.schema import Part, parts_param, turns_of
from curate.steps import _literal
from curate.steps._memo import TextMemo
from curate.steps._prose import strip_code
from curate.steps._word_shapes import Words, spaced_word_counts, words_of
from curate.steps.base import MapStep, Params, StepOutput, read_rules_yaml

RuleName = Literal[
    "too_few_words",
    "too_many_words",
    "repeated_digits",
    "dup_lines",
    "dup_paragraphs",
    "top_ngram",
    "dup_ngrams",
    "mean_word_length",
    "too_many_hashes",
    "too_many_ellipses",
    "bullet_lines",
    "ellipsis_lines",
    "non_alpha_words",
    "no_stop_words",
]
NOT_A_LANGUAGE = ("en", "unknown", "code")
TOP_N = (2, 3, 4)
DUP_N = (5, 6, 7, 8, 9, 10)
RAW_TEXT_METRICS = {"words", "digit_run"}  # measured on the whole turn; the rest on its prose


@dataclass(frozen=True)
class Check:
    threshold: str  # key in the rules file / params.thresholds
    metric: str  # q_<metric> column
    fails_when: str  # "<", ">" or ">="


# Rule (= reason code) -> the checks it makes. A row failing several rules reports the first in
# this order: emptiness, then repetition (the most specific), then the prose statistics.
RULES: dict[str, tuple[Check, ...]] = {
    "too_few_words": (Check("min_words", "words", "<"),),
    "too_many_words": (Check("max_words", "words", ">"),),
    "repeated_digits": (Check("max_digit_run", "digit_run", ">="),),
    "dup_lines": (Check("dup_line_frac", "dup_line_frac", ">"), Check("dup_line_char_frac", "dup_line_char_frac", ">")),
    "dup_paragraphs": (
        Check("dup_para_frac", "dup_para_frac", ">"),
        Check("dup_para_char_frac", "dup_para_char_frac", ">"),
    ),
    "top_ngram": tuple(Check(f"top_{n}gram", f"top_{n}gram", ">") for n in TOP_N),
    "dup_ngrams": tuple(Check(f"dup_{n}gram", f"dup_{n}gram", ">") for n in DUP_N),
    "mean_word_length": (
        Check("min_mean_word_length", "mean_word_length", "<"),
        Check("max_mean_word_length", "mean_word_length", ">"),
    ),
    "too_many_hashes": (Check("max_hash_ratio", "hash_ratio", ">"),),
    "too_many_ellipses": (Check("max_ellipsis_ratio", "ellipsis_ratio", ">"),),
    "bullet_lines": (Check("max_bullet_lines", "bullet_lines", ">"),),
    "ellipsis_lines": (Check("max_ellipsis_lines", "ellipsis_lines", ">"),),
    "non_alpha_words": (Check("min_alpha_words", "alpha_words", "<"),),
    "no_stop_words": (Check("min_stop_words", "stop_words", "<"),),
}
ENGLISH_ONLY = ("mean_word_length", "non_alpha_words", "no_stop_words")
CONVERSATION_METRICS = ("words", "mean_word_length", "stop_words")
THRESHOLD_KEYS = tuple(c.threshold for checks in RULES.values() for c in checks)
METRICS = tuple(dict.fromkeys(c.metric for checks in RULES.values() for c in checks))
PER_TURN_METRICS = tuple(m for m in METRICS if m not in CONVERSATION_METRICS)  # the row's worst turn decides
# What the memo keeps per turn text: the per-turn metrics and the sums the conversation metrics pool.
TURN_FIELDS = ("words", "non_symbol_words", "bare_chars", "stop_bits", *PER_TURN_METRICS)
TURN_FIELD = {name: j for j, name in enumerate(TURN_FIELDS)}  # column of each in the memo's rows

_HEADING = r"(?m)^[ \t]*#{1,6}(?:[ \t]|$)"
_BULLET = r"^\s*(?:[•‣◦]|[-*](?:\s|$))"
_ELLIPSIS_END = r"(?:\.\.\.|…)\s*$"
_DIGIT_RUN = re.compile(r"([0-9])\1+")
_HASH_MULT = FNV_PRIME  # FNV prime: n-gram rolling hash modulo 2**64


PRESETS = ("chat", "gopher")


@cache
def load_rules(path: Path) -> dict[str, dict[str, dict[str, float] | None]]:
    """{preset: {rule: thresholds, or None when the rule is off in that preset}} from the rules file."""
    file = read_rules_yaml(path, "the quality heuristics thresholds")
    try:
        data = file["rules"]
        out: dict = {p: {} for p in PRESETS}
        for preset in PRESETS:
            for rule, checks in RULES.items():
                values = data[rule][preset]
                out[preset][rule] = (
                    None if values is None else {c.threshold: float(values[c.threshold]) for c in checks}
                )
        return out
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: each rule needs chat/gopher thresholds ({type(e).__name__}: {e})") from None


class QualityParams(Params):
    preset: Literal["chat", "gopher"] = Field(
        "chat", description="threshold set: chat (calibrated on chat data) or gopher (the paper's web values)"
    )
    rules: list[RuleName] | None = Field(
        None, description="rules to run (default: those the preset turns on in rules/quality_heuristics.yaml)"
    )
    thresholds: dict[str, float] = Field({}, description="override thresholds, e.g. {dup_line_frac: 0.4}")
    parts: list[Part] = parts_param(
        ["user", "assistant"], "what is checked (rules meant for prose: traces only if asked)"
    )
    prose_min_words: int = Field(50, ge=1, le=100_000, description="words a turn needs before ratio rules judge it")
    repetition_min_words: int = Field(
        50, ge=2, le=100_000, description="words a turn needs before repetition rules judge it"
    )

    @field_validator("thresholds")
    @classmethod
    def _known_thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        for key, value in v.items():
            if key not in THRESHOLD_KEYS:
                hint = difflib.get_close_matches(key, THRESHOLD_KEYS, n=1)
                known = f"did you mean {hint[0]!r}?" if hint else f"known: {', '.join(THRESHOLD_KEYS)}"
                raise ValueError(f"unknown threshold {key!r}; {known}")
            if value < 0:
                raise ValueError(f"threshold {key} must be >= 0 (got {value})")
        return v


@register
class QualityHeuristics(MapStep):
    """Gopher quality and repetition rules per turn (prose only), conversation-level verdict."""

    name = "quality_heuristics"
    Params = QualityParams
    columns = {f"q_{m}": pa.float32() for m in METRICS}

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self._config: tuple[list[str], dict[str, float]] | None = None
        self._memo = TextMemo(len(TURN_FIELDS))

    def setup(self) -> None:
        self.config()

    def config(self) -> tuple[list[str], dict[str, float]]:
        """(rules to run, thresholds): the preset from the rules file, then the params."""
        if self._config is None:
            file = load_rules(Path(self.ctx.rules_dir) / "quality_heuristics.yaml")
            preset = file[self.params.preset]
            other = file["gopher" if self.params.preset == "chat" else "chat"]
            wanted = self.params.rules if self.params.rules is not None else [r for r in RULES if preset[r] is not None]
            thresholds: dict[str, float] = {}
            for rule in RULES:
                # a rule asked for by name but off in this preset runs with the other preset's values
                thresholds.update(preset[rule] or other[rule] or {})
            thresholds.update(self.params.thresholds)
            self._config = ([r for r in RULES if r in wanted], thresholds)
        return self._config

    # ------------------------------------------------------------------ metrics

    def process(self, table: pa.Table) -> StepOutput:
        active, thresholds = self.config()
        t = turns_of(table, self.params.parts)
        n_rows = table.num_rows
        checked = np.isin(t.role.astype(str), self.params.parts) if len(t.role) else np.zeros(0, bool)
        idx = np.nonzero(checked)[0]
        rows = t.row[idx]
        positions = t.position[idx]
        raw = pc.fill_null(t.text.take(pa.array(idx, pa.int64())), "")
        needed = {c.metric for r in active for c in RULES[r]}
        per_text = self._memo.resolve(raw, lambda i: self._turn_metrics(raw.take(pa.array(i, pa.int64())), needed))
        col = {name: per_text[:, j] for j, name in enumerate(TURN_FIELDS)}
        values: dict[str, np.ndarray] = {}
        worst_turn: dict[str, np.ndarray] = {}
        if "words" in needed:
            values["words"] = np.bincount(rows, weights=col["words"], minlength=n_rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            if needed & {"mean_word_length", "stop_words"}:
                ns_rows = np.bincount(rows, weights=col["non_symbol_words"], minlength=n_rows)
                conv_prose = ns_rows >= self.params.prose_min_words
            if "mean_word_length" in needed:
                chars = np.bincount(rows, weights=col["bare_chars"], minlength=n_rows)
                values["mean_word_length"] = np.where(conv_prose, chars / ns_rows, np.nan)
            if "stop_words" in needed:
                values["stop_words"] = np.where(conv_prose, _stop_words(col["stop_bits"], rows, n_rows), np.nan)
        for metric in PER_TURN_METRICS:
            if metric in needed:
                lower_is_worse = metric == "alpha_words"
                values[metric], worst_turn[metric] = _worst(rows, positions, col[metric], n_rows, lower_is_worse)
        return self._decide(table, active, thresholds, values, worst_turn, raw, idx_by_turn=(rows, positions))

    def _turn_metrics(self, raw: pa.Array, needed: set[str]) -> np.ndarray:
        """One row of TURN_FIELDS per turn text (NaN where not needed): a function of the text alone
        (and the params), so the memo serves repeated turns from it. The conversation metrics are
        pooled from its per-turn sums in process()."""
        out = np.full((len(raw), len(TURN_FIELDS)), np.nan)
        col = TURN_FIELD
        if "words" in needed:
            out[:, col["words"]] = spaced_word_counts(raw)
        if needed - RAW_TEXT_METRICS:  # rules that are off cost nothing: no code stripping, no word split
            for name, v in self._prose_metrics(raw, needed).items():
                out[:, col[name]] = v
        if "digit_run" in needed:
            # on the whole turn, code included: a 5,000-zero string is garbage wherever it is
            out[:, col["digit_run"]] = _digit_runs(raw).astype(np.float64)
        return out

    def _prose_metrics(self, raw: pa.Array, needed: set[str]) -> dict[str, np.ndarray]:
        """The metrics measured on each turn's prose (code removed), per turn: the ratios, and the
        sums the conversation metrics pool (non-symbol words, their bare characters, which stop
        words occur)."""
        n_turns = len(raw)
        per_turn: dict[str, np.ndarray] = {}
        prose, _ = strip_code(raw)
        text_len = pc.utf8_length(prose).to_numpy().astype(np.float64)
        words = words_of(prose)
        parents, shapes = words.text, words.shapes
        n_words = np.bincount(parents, minlength=n_turns).astype(np.float64)
        symbol = shapes.symbol
        n_ns = np.bincount(parents, weights=~symbol, minlength=n_turns)
        per_turn["non_symbol_words"] = n_ns
        prose_turn = n_ns >= self.params.prose_min_words
        rep_turn = n_ns >= self.params.repetition_min_words
        with np.errstate(divide="ignore", invalid="ignore"):
            if "mean_word_length" in needed:
                # word length without the punctuation attached to it ("end." is 3 letters, as NLTK splits it)
                per_turn["bare_chars"] = np.bincount(
                    parents, weights=np.where(symbol, 0, shapes.bare_len), minlength=n_turns
                )
            if "stop_words" in needed:
                per_turn["stop_bits"] = _stop_word_bits(shapes.stop, parents, n_turns).astype(np.float64)
            if "hash_ratio" in needed:
                hashes = _literal.count(prose, "#").to_numpy()
                # headings are not counted: the regex runs only on the measured turns holding a '#'
                sel = pa.array(np.nonzero((hashes > 0) & prose_turn)[0], pa.int64())
                hashes = np.where(prose_turn, hashes, 0)
                hashes[sel.to_numpy()] = _literal.count(
                    pc.replace_substring_regex(prose.take(sel), _HEADING, ""), "#"
                ).to_numpy()
                per_turn["hash_ratio"] = np.where(prose_turn, hashes / n_words, np.nan)
            if "ellipsis_ratio" in needed:
                ell = _literal.count(prose, "...").to_numpy() + _literal.count(prose, "…").to_numpy()
                per_turn["ellipsis_ratio"] = np.where(prose_turn, ell / n_words, np.nan)
            if needed & {"bullet_lines", "ellipsis_lines"}:
                bullets, ellipses, n_lines = _line_shapes(prose)
                per_turn["bullet_lines"] = np.where(prose_turn, bullets / n_lines, np.nan)
                per_turn["ellipsis_lines"] = np.where(prose_turn, ellipses / n_lines, np.nan)
            if "alpha_words" in needed:
                per_turn["alpha_words"] = np.where(
                    prose_turn, np.bincount(parents, weights=shapes.has_letter, minlength=n_turns) / n_words, np.nan
                )
            if needed & {"dup_line_frac", "dup_line_char_frac", "dup_para_frac", "dup_para_char_frac"}:
                for kind, (frac, char_frac) in _duplicate_parts(prose, rep_turn).items():
                    per_turn[f"dup_{kind}_frac"] = np.where(rep_turn, frac, np.nan)
                    per_turn[f"dup_{kind}_char_frac"] = np.where(rep_turn, char_frac / text_len, np.nan)
            if needed & {f"top_{n}gram" for n in TOP_N} | {f"dup_{n}gram" for n in DUP_N}:
                for name, chars in _ngram_metrics(words, rep_turn, n_turns).items():
                    per_turn[name] = np.where(rep_turn, chars / text_len, np.nan)
        return per_turn

    # ------------------------------------------------------------------ verdict

    def _decide(self, table, active, thresholds, values, worst_turn, raw, idx_by_turn) -> StepOutput:
        n = table.num_rows
        counters: Counter = Counter()
        non_english = np.zeros(n, bool)
        if "lang" in table.column_names:
            lang = table.column("lang")
            non_english = pc.is_valid(lang).to_numpy(zero_copy_only=False) & ~np.isin(
                pc.fill_null(lang, "").to_numpy(zero_copy_only=False).astype(str), NOT_A_LANGUAGE
            )
        undecided = np.ones(n, bool)
        reason = np.full(n, None, dtype=object)
        detail = np.full(n, None, dtype=object)
        span = np.full(n, None, dtype=object)
        turn = np.full(n, -1, dtype=np.int64)
        for rule in active:
            applies = np.ones(n, bool)
            if rule in ENGLISH_ONLY:
                applies = ~non_english
                if non_english.any():
                    counters[f"skipped_non_english:{rule}"] += int(non_english.sum())
            for check in RULES[rule]:
                v = values[check.metric]
                limit = thresholds[check.threshold]
                with np.errstate(invalid="ignore"):
                    bad = {"<": v < limit, ">": v > limit, ">=": v >= limit}[check.fails_when]
                bad &= applies & undecided & ~np.isnan(v)
                for i in np.nonzero(bad)[0]:
                    where = worst_turn.get(check.metric)
                    t_i = int(where[i]) if where is not None else -1
                    reason[i] = rule
                    detail[i] = f"{check.metric} {_num(v[i])} {check.fails_when} {limit:g}" + (
                        f" (turn {t_i})" if t_i >= 0 else ""
                    )
                    turn[i] = t_i
                    span[i] = self._span(check.metric, raw, idx_by_turn, i, t_i)
                undecided &= ~bad
                if bad.any():
                    counters[f"fail:{check.threshold}"] += int(bad.sum())
        for metric in METRICS:
            v = values.get(metric)
            col = (
                pa.nulls(n, pa.float32())
                if v is None
                else pa.array(v.astype(np.float32), pa.float32(), mask=np.isnan(v))
            )
            table = (
                table.set_column(table.schema.get_field_index(f"q_{metric}"), f"q_{metric}", col)
                if f"q_{metric}" in table.column_names
                else table.append_column(f"q_{metric}", col)
            )
        return StepOutput(
            table,
            reason=reason.tolist(),
            detail=detail.tolist(),
            span=span.tolist(),
            turn=[int(x) if x >= 0 else None for x in turn],
            counters=counters,
        )

    @staticmethod
    def _span(metric: str, raw: pa.Array, idx_by_turn, row: int, position: int) -> str | None:
        """The text that triggered a repetition rule (for the report); computed for rejected rows only
        (the turn's prose made again here: the memo keeps numbers, not texts)."""
        if position < 0:
            return None
        rows, positions = idx_by_turn
        hit = np.nonzero((rows == row) & (positions == position))[0]
        if not len(hit):
            return None
        if metric == "digit_run":
            m = max(_DIGIT_RUN.finditer(raw[int(hit[0])].as_py() or ""), key=lambda m: len(m.group()), default=None)
            return m.group()[:200] if m else None
        text = strip_code(raw.slice(int(hit[0]), 1))[0][0].as_py() or ""
        if metric.startswith(("dup_line", "dup_para")):
            parts = re.split(r"\n+" if "line" in metric else r"\n\s*\n", text)
            seen: set[str] = set()
            for p in (p.strip() for p in parts):
                if p and p in seen:
                    return p[:500]
                seen.add(p)
            return None
        if metric.startswith(("top_", "dup_")):
            k = int(metric.split("_")[1].removesuffix("gram"))
            w = text.split()
            grams = Counter(" ".join(w[i : i + k]) for i in range(len(w) - k + 1))
            return grams.most_common(1)[0][0][:500] if grams else None
        return None


# ---------------------------------------------------------------------- vectorised helpers


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.3g}"


def _stop_word_bits(which: np.ndarray, text_of_word: np.ndarray, n_texts: int) -> np.ndarray:
    """Per text, a bit per Gopher stop word it uses, from each word's stop-word index (-1: none)."""
    bits = np.zeros(n_texts, np.int64)
    hit = which >= 0
    np.bitwise_or.at(bits, text_of_word[hit], np.left_shift(1, which[hit]))
    return bits


def _stop_words(turn_bits: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Distinct Gopher stop words per row: the union of its turns' stop-word bits, counted."""
    bits = np.zeros(n_rows, np.int64)
    np.bitwise_or.at(bits, rows, turn_bits.astype(np.int64))
    return np.unpackbits(bits.view(np.uint8)).reshape(n_rows, 64).sum(axis=1).astype(np.float64)  # popcount


def _line_shapes(prose: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bullet lines, ellipsis-ending lines, non-empty lines) per text."""
    lines = _literal.split(prose, "\n")
    parents = pc.list_parent_indices(lines).to_numpy()
    flat = pc.list_flatten(lines)
    nonempty = pc.greater(pc.binary_length(pc.utf8_trim_whitespace(flat)), 0).to_numpy(zero_copy_only=False)
    bullet = pc.match_substring_regex(flat, _BULLET).to_numpy(zero_copy_only=False) & nonempty
    ellipsis = pc.match_substring_regex(flat, _ELLIPSIS_END).to_numpy(zero_copy_only=False) & nonempty
    n = len(prose)
    return (
        np.bincount(parents, weights=bullet, minlength=n),
        np.bincount(parents, weights=ellipsis, minlength=n),
        np.bincount(parents, weights=nonempty, minlength=n),
    )


PART_SEPARATORS = {"line": r"\n+", "para": r"\n\s*\n"}


def _duplicate_parts(prose: pa.Array, measured: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Gopher's duplicate line and paragraph fractions and duplicated characters per measured text:
    {"line": (fraction, characters), "para": (...)}.

    A part is a duplicate if the same (stripped, non-empty) part occurred earlier in the same text.
    ASCII texts in one compiled pass (parts compared by a 64-bit hash of their bytes; an Arrow split
    into a list of every line, then a dictionary encoding, was a tenth of the step's time); the
    others by _duplicate_parts_re2, which is also the reference."""
    n = len(prose)
    out = {kind: (np.zeros(n), np.zeros(n)) for kind in PART_SEPARATORS}
    sel = np.nonzero(measured)[0]
    if not len(sel):
        return out
    data, offsets = utf8_buffers(prose)
    non_ascii = np.zeros(n, bool)
    (line_frac, line_chars), (para_frac, para_chars) = out["line"], out["para"]
    trim, re2_space = arrow_spaces(), ascii_classes() == SPACE
    _dup_parts_kernel(data, offsets, sel, trim, re2_space, line_frac, line_chars, para_frac, para_chars, non_ascii)
    if non_ascii.any():
        for kind, (frac, chars) in out.items():
            ref_frac, ref_chars = _duplicate_parts_re2(prose, kind, non_ascii)
            frac[non_ascii], chars[non_ascii] = ref_frac[non_ascii], ref_chars[non_ascii]
    return out


@numba.njit(inline="always")
def _part_hash(data, s, e):
    # FNV-1a in four interleaved lanes (a dependent multiply per byte was most of the pass), mixed
    h0 = h1 = h2 = h3 = FNV_OFFSET
    k = s
    while k + 4 <= e:
        h0 = (h0 ^ np.uint64(data[k])) * FNV_PRIME
        h1 = (h1 ^ np.uint64(data[k + 1])) * FNV_PRIME
        h2 = (h2 ^ np.uint64(data[k + 2])) * FNV_PRIME
        h3 = (h3 ^ np.uint64(data[k + 3])) * FNV_PRIME
        k += 4
    while k < e:  # the last 1-3 bytes, into the lanes in order
        h0, h1, h2, h3 = h1, h2, h3, (h0 ^ np.uint64(data[k])) * FNV_PRIME
        k += 1
    return fmix64(h0 ^ fmix64(h1 ^ fmix64(h2 ^ fmix64(h3 ^ np.uint64(e - s)))))


@numba.njit(inline="always")
def _count_part(data, s, e, trim, d, keys, stamp, counts):
    """Add the part [s, e) of text d, stripped, to the table; counts: [parts, duplicates, their chars]."""
    while s < e and trim[data[s]]:
        s += 1
    while e > s and trim[data[e - 1]]:
        e -= 1
    if e == s:
        return
    h = _part_hash(data, s, e)
    cap = keys.shape[0]
    slot = np.int64(h & np.uint64(cap - 1))
    while stamp[slot] == d and keys[slot] != h:
        slot = (slot + 1) & (cap - 1)
    if stamp[slot] == d:
        counts[1] += 1
        counts[2] += e - s
    else:
        stamp[slot] = d
        keys[slot] = h
    counts[0] += 1


@numba.njit(cache=True, nogil=True)
def _dup_parts_kernel(data, offsets, sel, trim, re2_space, line_frac, line_chars, para_frac, para_chars, non_ascii):
    keys = np.zeros(0, np.uint64)  # one open-addressing table for all texts, grown when one needs more
    stamp = np.zeros(0, np.int64)  # the text that uses each slot: no clearing between texts
    counts = np.zeros(3, np.int64)
    for d in sel:
        a, b = offsets[d], offsets[d + 1]
        bits, newlines = 0, 0
        for i in range(a, b):  # no early exit: this loop vectorises
            bits |= data[i]
            newlines += data[i] == 10
        if bits >= 128:
            non_ascii[d] = True
            continue
        if newlines == 0:
            continue  # one line, one paragraph: no duplicate
        cap = 16
        while cap < 2 * (newlines + 1):
            cap *= 2
        if cap > keys.shape[0]:
            keys = np.zeros(cap, np.uint64)
            stamp = np.full(cap, -1, np.int64)
        # lines: the parts between runs of newlines
        counts[:] = 0
        i = a
        while True:
            s = i
            while i < b and data[i] != 10:
                i += 1
            _count_part(data, s, i, trim, 2 * d, keys, stamp, counts)
            while i < b and data[i] == 10:
                i += 1
            if i == b:
                break
        line_frac[d] = counts[1] / counts[0] if counts[0] else 0.0
        line_chars[d] = counts[2]
        # paragraphs: a separator runs from a newline to the last newline of the whitespace run it starts
        counts[:] = 0
        s = i = a
        while True:
            while i < b and data[i] != 10:
                i += 1
            if i == b:
                _count_part(data, s, b, trim, 2 * d + 1, keys, stamp, counts)
                break
            j, last = i + 1, i
            while j < b and re2_space[data[j]]:
                if data[j] == 10:
                    last = j
                j += 1
            if last > i:
                _count_part(data, s, i, trim, 2 * d + 1, keys, stamp, counts)
                s = i = last + 1
            else:
                i = j
        para_frac[d] = counts[1] / counts[0] if counts[0] else 0.0
        para_chars[d] = counts[2]


def _duplicate_parts_re2(prose: pa.Array, kind: str, measured: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference: Arrow's regex split, trim and dictionary encoding (any script)."""
    pattern = PART_SEPARATORS[kind]
    n = len(prose)
    frac, chars = np.zeros(n), np.zeros(n)
    sel = np.nonzero(measured)[0]
    if not len(sel):
        return frac, chars
    parts = pc.split_pattern_regex(prose.take(pa.array(sel, pa.int64())), pattern)
    parents = sel[pc.list_parent_indices(parts).to_numpy()]
    flat = pc.utf8_trim_whitespace(pc.list_flatten(parts))
    keep = pc.greater(pc.binary_length(flat), 0).to_numpy(zero_copy_only=False)
    flat, parents = flat.filter(pa.array(keep)), parents[keep]
    if not len(flat):
        return frac, chars
    ids = pc.dictionary_encode(flat).indices.to_numpy().astype(np.int64)
    key = parents * (int(ids.max()) + 1) + ids
    dup = _not_first(key)
    lens = pc.utf8_length(flat).to_numpy().astype(np.float64)
    total = np.bincount(parents, minlength=n).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.bincount(parents, weights=dup, minlength=n) / total
    chars = np.bincount(parents, weights=np.where(dup, lens, 0), minlength=n)
    return np.nan_to_num(frac), chars


def _not_first(key: np.ndarray) -> np.ndarray:
    """True where `key` already occurred at a lower index."""
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first[inverse] != np.arange(len(key))


def _ngram_metrics(words: Words, measured: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Characters in the top 2/3/4-gram and in duplicated 5..10-grams, per text (Gopher Table A1).

    From the words' 64-bit hashes, one compiled pass per text rolls 64-bit n-gram hashes and
    counts them in a small open-addressing table (a text's table fits in
    cache, unlike one sort of every n-gram of the batch: 10x faster). Characters exclude the spaces
    between words, as in datatrove; the top n-gram is the most frequent one (ties: the earliest),
    counted with spaces, and only if it occurs more than once."""
    out = {f"top_{k}gram": np.zeros(n) for k in TOP_N} | {f"dup_{k}gram": np.zeros(n) for k in DUP_N}
    keep = measured[words.text]
    if not keep.any():
        return out
    text_of, ids, lens = words.text[keep], words.hash[keep], words.chars[keep]
    # words of a text are consecutive: its range is [starts[i], starts[i + 1])
    starts = np.concatenate([[0], np.nonzero(text_of[1:] != text_of[:-1])[0] + 1, [len(ids)]])
    owners = text_of[starts[:-1]]
    top, dup = _ngram_kernel(ids, lens, starts, np.uint64(_HASH_MULT), max(TOP_N), max(DUP_N), min(DUP_N))
    for k in TOP_N:
        out[f"top_{k}gram"][owners] = top[k - 2]
    for k in DUP_N:
        out[f"dup_{k}gram"][owners] = dup[k - min(DUP_N)]
    return out


@numba.njit(cache=True, nogil=True)
def _ngram_kernel(ids, lens, starts, mult, top_max, dup_max, dup_min):
    n_texts = starts.shape[0] - 1
    top = np.zeros((top_max - 1, n_texts))
    dup = np.zeros((dup_max - dup_min + 1, n_texts))
    for t in range(n_texts):
        s, e = starts[t], starts[t + 1]
        length = e - s
        cap = 16
        while cap < 2 * length:
            cap *= 2
        keys = np.zeros(cap, np.uint64)
        used = np.zeros(cap, np.bool_)
        first = np.zeros(cap, np.int64)
        count = np.zeros(cap, np.int64)
        cover = np.zeros(length + 1, np.int64)
        h = ids[s:e].copy()
        cum = np.zeros(length + 1)
        for j in range(length):
            cum[j + 1] = cum[j] + lens[s + j]
        for k in range(2, dup_max + 1):
            span = length - k + 1
            if span <= 0:
                break
            for j in range(span):
                h[j] = h[j] * mult + ids[s + j + k - 1]
            used[:] = False
            if k >= dup_min:
                cover[:] = 0
            best_slot = -1
            repeats = False
            for j in range(span):
                slot = np.int64(h[j] & np.uint64(cap - 1))
                while used[slot] and keys[slot] != h[j]:
                    slot = (slot + 1) & (cap - 1)
                if not used[slot]:
                    used[slot] = True
                    keys[slot] = h[j]
                    first[slot] = j
                    count[slot] = 1
                else:
                    count[slot] += 1
                    repeats = True
                    if k >= dup_min:  # a repeat: its words are covered
                        cover[j] += 1
                        cover[j + k] -= 1
                if k <= top_max and (
                    best_slot < 0
                    or count[slot] > count[best_slot]
                    or (count[slot] == count[best_slot] and first[slot] < first[best_slot])
                ):
                    best_slot = slot
            if k <= top_max and best_slot >= 0 and count[best_slot] > 1:
                f = first[best_slot]
                top[k - 2, t] = count[best_slot] * (cum[f + k] - cum[f] + k - 1)
            if k >= dup_min:
                run = 0
                total = 0.0
                for j in range(length):
                    run += cover[j]
                    if run > 0:
                        total += lens[s + j]
                dup[k - dup_min, t] = total
            if not repeats:
                break  # no k-gram occurs twice, so no longer one does: the rest stay 0
    return top, dup


def _digit_runs(texts: pa.Array) -> np.ndarray:
    """Longest run of one repeated digit per text (what `_DIGIT_RUN` finds; 0 without a digit), in one
    byte scan: the ASCII digits it matches are single bytes that no UTF-8 continuation byte equals.
    (A Python regex pass over the texts with a doubled digit was a tenth of the step's time.)"""
    data, offsets = utf8_buffers(texts)
    out = np.zeros(len(texts), np.int64)
    _digit_run_kernel(data, offsets, out)
    return out


@numba.njit(cache=True, nogil=True)
def _digit_run_kernel(data, offsets, out):
    for d in range(offsets.shape[0] - 1):
        best, run, prev = 0, 0, 0
        for i in range(offsets[d], offsets[d + 1]):
            c = data[i]
            if 48 <= c <= 57:
                run = run + 1 if c == prev else 1
                prev = c
                best = max(best, run)
            else:
                run, prev = 0, 0
        out[d] = best


def _worst(rows: np.ndarray, positions: np.ndarray, v: np.ndarray, n_rows: int, lower_is_worse: bool):
    """Per row: the worst measured turn's value (NaN if none) and that turn's position (-1)."""
    value = np.full(n_rows, np.nan)
    where = np.full(n_rows, -1, dtype=np.int64)
    ok = ~np.isnan(v)
    if not ok.any():
        return value, where
    r, p, x = rows[ok], positions[ok], v[ok]
    order = np.lexsort((p, x if lower_is_worse else -x, r))
    first = np.concatenate([[True], r[order][1:] != r[order][:-1]])
    pick = order[first]
    value[r[pick]] = x[pick]
    where[r[pick]] = p[pick]
    return value, where
