"""decontaminate: reject (or flag) conversations that contain an eval item's question or answer.

Matching, per turn of the selected roles, on ASCII-lowercased word tokens (punctuation ignored):
  - an item with at least `ngram` tokens matches when the share of its distinct n-grams found in
    the turn reaches `min_overlap`: a long item needs real overlap, and one stock phrase shared with
    a long item does not condemn a conversation;
  - an item shorter than `ngram` tokens (a 9-word TruthfulQA question) matches when its whole token
    sequence appears in the turn, if it has at least `min_short_tokens` tokens; a shorter one
    ("Who is Larry Page?") only when it is the whole turn, since inside a longer text it is chance;
  - reference answers count only when they have at least `min_answer_tokens` tokens;
  - a question retyped with a few words changed (its n-gram share falls under the bar: one changed
    word breaks `ngram` n-grams) matches when, at the place its n-grams matched, at least
    `min_aligned` of its words are found in order (the mean of the plain and the rarity-weighted
    share), a word may shift by one place, and all of its numbers are in the turn;
  - numbers matter: an item with numbers matches only if the turn has more than half of them, so a
    question built from the same template with other numbers is not flagged.
n-grams that occur in more than `max_items_per_ngram` items ("which of the following is") are left
out of the index: they say nothing about which item a turn contains.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from curate.errors import UserError
from curate.registry import register
from curate.schema import Part, parts_param, turns_of
from curate.steps import _ngram_index
from curate.steps._ngram_index import BitFilter, Tokens, ngrams, whole_text_hashes
from curate.steps.base import MapStep, Params, StepOutput, read_rules_yaml, set_column

EVAL_TEXT_LIMIT = 1000
# Part of the index cache key: bump it when the Index class changes shape.
INDEX_VERSION = 14
GRAM_FILTER_BITS = 27  # 16 MB for ~1.2M n-grams: about 1% of absent n-grams pass
SHORT_FILTER_BITS = 20  # 128 KB for a few hundred short items
SPAN_LIMIT = 400
SIBLING_SHARE = 0.2
BATCH = 2048


class EvalSource(BaseModel):
    """One eval set: a registry name, and/or a path with its field mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str | None = Field(None, description="a name from rules/eval_sets.yaml, or your label for path")
    path: str | None = Field(None, description="file or directory (JSONL, JSON, CSV, Parquet; .gz ok)")
    format: Literal["jsonl", "json", "csv", "parquet"] | None = None
    records: str | None = Field(None, description="JSON: the key holding the list of items")
    question: str | list[str] | None = Field(None, description="field path(s) of the question (default: question)")
    answer: str | list[str] | None = Field(None, description="field path(s) of the reference answer (default: answer)")
    id: str | None = Field(None, description="field path of the item id (default: id, doc_id, question_id or task_id)")


class DecontaminateParams(Params):
    eval_sets: list[str | EvalSource] | None = Field(
        None, description="registry names or {name, path, ...}; default: every shipped set"
    )
    mode: Literal["drop", "flag"] = Field("drop", description="drop contaminated rows, or only annotate them")
    parts: list[Part] = parts_param(
        ["user", "assistant", "reasoning"], "what is searched, each turn and trace on its own"
    )
    ngram: int = Field(5, ge=3, le=32, description="n-gram length in words")
    min_overlap: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="share of a question's n-grams (weighted by rarity) that must appear in one turn",
    )
    min_answer_overlap: float = Field(
        0.8, gt=0.0, le=1.0, description="the same for reference answers (code and stock answers overlap by chance)"
    )
    min_short_tokens: int = Field(
        5, ge=1, le=32, description="items shorter than ngram are found inside a turn if at least this long"
    )
    min_whole_turn_tokens: int = Field(
        2, ge=1, le=32, description="shorter items match only a turn that is exactly the item, if at least this long"
    )
    min_answer_tokens: int = Field(
        20, ge=1, le=10000, description="reference answers from this long match at min_answer_overlap"
    )
    min_exact_answer_tokens: int = Field(
        10,
        ge=1,
        le=10000,
        description="shorter answers from this long match only in full: every n-gram and every number",
    )
    min_matched_ngrams: int = Field(
        3,
        ge=1,
        le=100,
        description="a turn must share at least this many distinct n-grams with an item; items too short to have them are matched whole",
    )
    max_items_per_ngram: int = Field(
        20, ge=1, le=100000, description="n-grams shared by more items are stock phrases, not evidence"
    )
    numbers: bool = Field(
        True, description="an item with numbers needs more than half of them in the turn (template negatives)"
    )
    min_aligned: float = Field(
        0.875,
        gt=0.0,
        le=1.0,
        description="a question retyped with a few words changed: share of its words (mean of plain and rarity-weighted) found in order where its n-grams matched",
    )
    min_aligned_tokens: int = Field(
        8,
        ge=3,
        le=10000,
        description="questions from this long can match by alignment (shorter ones change too much with one word)",
    )

    @field_validator("eval_sets")
    @classmethod
    def _not_empty(cls, v):
        if v is not None and not v:
            raise ValueError("must list at least one eval set")
        return v


@dataclass
class Item:
    eval_set: str
    item_id: str
    kind: str  # question | answer
    text: str


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "curate" / "decontaminate"


def _field(record, path: str):
    value = record
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _text(record, paths) -> str:
    if paths is None:
        return ""
    parts = [_field(record, p) for p in ([paths] if isinstance(paths, str) else paths)]
    return "\n".join(str(p) for p in parts if p not in (None, ""))


def _read_records(path: Path, fmt: str | None, records_key: str | None) -> list[dict]:
    name = path.name.lower().removesuffix(".gz")
    fmt = fmt or (
        "jsonl"
        if name.endswith(".jsonl")
        else "json"
        if name.endswith(".json")
        else "csv"
        if name.endswith(".csv")
        else "parquet"
        if name.endswith(".parquet")
        else None
    )
    if fmt is None:
        raise UserError(f"{path}: cannot tell the eval file's format; set format: jsonl, json, csv or parquet")
    try:
        if fmt == "parquet":
            return pq.read_table(path).to_pylist()
        raw = gzip.open(path).read() if path.name.endswith(".gz") else path.read_bytes()
        text = raw.decode("utf-8-sig")
        if fmt == "jsonl":
            return [json.loads(line) for line in text.split("\n") if line.strip()]  # not splitlines: \u2028 is text
        if fmt == "csv":
            return list(csv.DictReader(io.StringIO(text)))
        data = json.loads(text)
    except (OSError, ValueError, EOFError, pa.ArrowException) as e:
        raise UserError(f"{path}: cannot read eval set: {str(e).splitlines()[0][:200]}") from None
    if records_key:
        data = data.get(records_key) if isinstance(data, dict) else None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a list of items" + (f" under '{records_key}'" if records_key else ""))
    return data


def _suggest(name: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, names, n=1)
    return f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(names)}"


@dataclass(frozen=True)
class EvalFile:
    """One file of an eval set, with where its fields are."""

    set_name: str
    path: Path
    format: str | None
    records: str | None
    question: str | list[str]
    answer: str | list[str]
    id: str | None


def eval_files(params: DecontaminateParams, rules_dir: Path) -> list[EvalFile]:
    """The files of the eval sets the params name (the registry read, every path checked)."""
    registry_path = rules_dir / "eval_sets.yaml"
    registry = read_rules_yaml(registry_path, "the eval-set registry")
    for name, spec in registry.items():
        if not isinstance(spec, dict):
            raise UserError(
                f"{registry_path}: eval set '{name}' must be a mapping (path, question, answer, ...), "
                f"not a {type(spec).__name__}"
            )
    wanted = params.eval_sets if params.eval_sets is not None else [n for n, e in registry.items() if e.get("default")]
    found: list[EvalFile] = []
    for entry in wanted:
        src = EvalSource(name=entry) if isinstance(entry, str) else entry
        spec = dict(registry.get(src.name, {})) if src.name else {}
        if src.name and not spec and not src.path:
            raise UserError(f"decontaminate: unknown eval set '{src.name}'{_suggest(src.name, list(registry))}")
        path = src.path or spec.get("path")
        if not path:
            raise UserError(
                f"decontaminate: eval set '{src.name}' is not shipped ({spec.get('license', '')}); give its path: "
                f"eval_sets: [{{name: {src.name}, path: /path/to/file}}]"
            )
        path = Path(path) if src.path else rules_dir / path
        if not path.exists():
            raise UserError(f"decontaminate: eval set file not found: {path}")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            found.append(
                EvalFile(
                    set_name=src.name or f.name.split(".")[0],
                    path=f,
                    format=src.format or spec.get("format"),
                    records=src.records or spec.get("records"),
                    question=src.question or spec.get("question") or "question",
                    answer=src.answer or spec.get("answer") or "answer",
                    id=src.id or spec.get("id"),
                )
            )
    return found


def read_items(files: list[EvalFile]) -> list[Item]:
    """The items (questions and answers) the eval files hold."""
    items: list[Item] = []
    for f in files:
        for i, rec in enumerate(_read_records(f.path, f.format, f.records)):
            item_id = (
                _field(rec, f.id)
                if f.id
                else next(
                    (
                        rec[k]
                        for k in ("id", "doc_id", "question_id", "task_id")
                        if isinstance(rec, dict) and rec.get(k) is not None
                    ),
                    i,
                )
            )
            q, a = _text(rec, f.question), _text(rec, f.answer)
            if q:
                items.append(Item(f.set_name, str(item_id), "question", q))
            if a:
                items.append(Item(f.set_name, str(item_id), "answer", a))
    if not items:
        raise UserError("decontaminate: the eval sets hold no items")
    return items


def load_items(params: DecontaminateParams, rules_dir: Path) -> list[Item]:
    return read_items(eval_files(params, rules_dir))


class Index:
    """Eval items as sorted hash arrays: n-gram -> items, short items by length, numbers per item."""

    def __init__(self, items: list[Item], p: DecontaminateParams):
        self.items = items
        tok = Tokens(pa.array([it.text for it in items]))
        counts = tok.counts
        self.is_answer = is_answer = np.array([it.kind == "answer" for it in items], bool)
        usable = np.where(is_answer, counts >= min(p.min_answer_tokens, p.min_exact_answer_tokens), counts >= 1)
        # Answers under min_answer_tokens (one-line GSM8K solutions) must appear in full: all their
        # n-grams and all their numbers, so a template sibling with other numbers never matches.
        self.exact = is_answer & (counts < p.min_answer_tokens)
        # Below min_short_tokens an item is only ever matched as a whole turn (see tiny below).
        # Items with fewer than min_matched_ngrams n-grams are matched as whole spans (short, below).
        whole_below = p.ngram + p.min_matched_ngrams - 1
        searchable = usable & (is_answer | (counts >= whole_below))
        # long items: (n-gram, item) pairs, distinct per item
        grams, starts = ngrams(tok, p.ngram)
        owner = tok.doc[starts]
        keep = searchable[owner]
        pairs, first = np.unique(np.stack([grams[keep].view(np.int64), owner[keep]], axis=1), axis=0, return_index=True)
        g, it = pairs[:, 0].view(np.uint64), pairs[:, 1]
        pos = starts[keep][first] - tok.first[it]  # where in its item the n-gram (first) occurs
        order = np.argsort(g, kind="stable")
        g, it, pos = g[order], it[order], pos[order]
        _, n_items = np.unique(g, return_counts=True)
        df = np.repeat(n_items, n_items)
        # An n-gram shared by k items is worth 1/k of one only this item has: the template text of a
        # family of math questions weighs little, the names and numbers that tell them apart a lot.
        weight = 1.0 / df
        self.item_weight = np.bincount(it, weights=weight, minlength=len(items))
        self.item_grams = np.bincount(it[df <= p.max_items_per_ngram], minlength=len(items))  # matchable ones
        stock = df > p.max_items_per_ngram
        self.gram, self.gram_item, self.gram_weight, self.gram_pos = g[~stock], it[~stock], weight[~stock], pos[~stock]
        # every item's token hashes, for the alignment of retyped questions
        self.token_hash, self.token_first, self.token_count = tok.hash, tok.first, counts
        # a word's weight in the alignment: log(items / items containing it), so a shared stock stem
        # ("which of the following is not one of the") weighs little against the item's own words
        uniq, inverse = np.unique(tok.hash, return_inverse=True)
        in_items = np.bincount(
            np.unique(np.stack([inverse.ravel(), tok.doc], axis=1), axis=0)[:, 0], minlength=len(uniq)
        )
        self.token_weight = np.log1p(len(items) / in_items)[inverse.ravel()]
        self.gram_filter = BitFilter(self.gram, GRAM_FILTER_BITS)
        # short items: whole token sequence, keyed by (length, hash)
        short = usable & (counts < whole_below) & (counts >= p.min_short_tokens) & ~is_answer
        whole = whole_text_hashes(tok)
        self.short_lengths = sorted(set(counts[short].tolist()))
        self.short = {
            L: (whole[short & (counts == L)], np.nonzero(short & (counts == L))[0]) for L in self.short_lengths
        }
        for L, (h, ids) in self.short.items():
            o = np.argsort(h)
            self.short[L] = (h[o], ids[o])
        # every n-gram of every turn is looked up once per short length: filter them first
        self.short_filter = BitFilter(whole[short], SHORT_FILTER_BITS)
        tiny = usable & (counts < p.min_short_tokens) & (counts >= p.min_whole_turn_tokens) & ~is_answer
        o = np.argsort(whole[tiny])
        self.tiny, self.tiny_item = whole[tiny][o], np.nonzero(tiny)[0][o]
        # numbers of each item (token hashes), for the template rule
        num = tok.numeric
        self.num_hash, self.num_item = tok.hash[num], tok.doc[num]
        o = np.lexsort((self.num_hash, self.num_item))
        self.num_hash, self.num_item = self.num_hash[o], self.num_item[o]
        self.num_first = np.searchsorted(self.num_item, np.arange(len(items) + 1))

    def numbers_of(self, item: int) -> np.ndarray:
        return np.unique(self.num_hash[self.num_first[item] : self.num_first[item + 1]])


@register
class Decontaminate(MapStep):
    """Eval-set contamination: drops (or flags) conversations containing an eval question or answer."""

    name = "decontaminate"
    Params = DecontaminateParams
    columns = {
        "contam_eval_set": pa.string(),
        "contam_item_id": pa.string(),
        "contam_span": pa.string(),
        "contam_eval_text": pa.string(),
        "contam_score": pa.float32(),
        "contam_turn": pa.int32(),
    }

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self.index: Index | None = None
        self.cache_hit = False

    def setup(self) -> None:
        if self.index is not None:
            return
        files = eval_files(self.params, Path(self.ctx.rules_dir))
        # The key is what the index is made from: the files' bytes and fields, the params, and the code
        # that reads and indexes them (so an edit to it never meets an index built by the old code).
        # Parsing the eval sets to key on their items took 0.5 s of every worker's start.
        digest = hashlib.sha256()
        for code in (__file__, _ngram_index.__file__):
            digest.update(Path(code).read_bytes())
        for f in files:
            try:
                digest.update(hashlib.sha256(f.path.read_bytes()).digest())
            except OSError as e:
                raise UserError(f"{f.path}: cannot read eval set: {e.strerror}") from None
        fields = [(f.set_name, str(f.path), f.format, f.records, f.question, f.answer, f.id) for f in files]
        digest.update(json.dumps([INDEX_VERSION, self.params.model_dump(mode="json"), fields]).encode())
        self.index = self._cached(digest.hexdigest()[:32], files)

    def _cached(self, key: str, files: list[EvalFile]) -> Index:
        """The index from the on-disk cache, or built from the files' items (and cached)."""
        import pickle

        path = _cache_root() / f"{key}.pkl"
        try:
            with open(path, "rb") as f:
                index = pickle.load(f)
                self.cache_hit = True
                return index
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            pass
        index = Index(read_items(files), self.params)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                pickle.dump(index, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home is no reason to fail; the index is rebuilt next time
        return index

    def process(self, table: pa.Table) -> StepOutput:
        """In slices of BATCH rows: the token and n-gram arrays take ~60 bytes per word, so memory
        stays bounded whatever the shard size."""
        if table.num_rows <= BATCH:
            return self._process(table)
        outs = [self._process(table.slice(i, BATCH)) for i in range(0, table.num_rows, BATCH)]
        counters: Counter = Counter()
        for o in outs:
            counters.update(o.counters)
        return StepOutput(
            pa.concat_tables([o.table for o in outs]),
            reason=sum((o.reason for o in outs), []),
            detail=sum((o.detail for o in outs), []),
            span=sum((o.span for o in outs), []),
            turn=sum((o.turn for o in outs), []),
            counters=counters,
        )

    def _process(self, table: pa.Table) -> StepOutput:
        self.setup()
        p, idx = self.params, self.index
        n = table.num_rows
        t = turns_of(table, p.parts)
        sel = np.isin(t.role, p.parts)
        turn_ids = np.nonzero(sel)[0]
        texts = t.text.filter(pa.array(sel))
        tok = Tokens(texts)
        hits: list[tuple[int, int, float, int, int]] = []  # (turn#, item, score, first token, last token)
        partial: dict[tuple[int, int], float] = {}  # (row, question item) -> share of its n-grams in a turn
        retyped_hits: set[tuple[int, int]] = set()  # (turn, item) found by alignment: all numbers must agree
        grams, starts = ngrams(tok, p.ngram)
        all_grams = (grams, starts)  # also the whole-span candidates of items exactly ngram long
        if len(grams):
            maybe = idx.gram_filter.candidates(grams)
            grams, starts = grams[maybe], starts[maybe]
        if len(grams) and len(idx.gram):
            lo = np.searchsorted(idx.gram, grams, "left")
            hi = np.searchsorted(idx.gram, grams, "right")
            found = np.nonzero(hi > lo)[0]
            if len(found):
                reps = hi[found] - lo[found]
                gpos = np.repeat(found, reps)
                idx_pos = np.concatenate([np.arange(a, b) for a, b in zip(lo[found], hi[found])])
                item = idx.gram_item[idx_pos]
                doc = tok.doc[starts[gpos]]
                # distinct n-grams per (turn, item), weighted; the span runs from the first to the last match
                key = np.stack([doc, item, grams[gpos].view(np.int64)], axis=1)
                uk, first_at = np.unique(key, axis=0, return_index=True)
                pair, pair_of = np.unique(uk[:, :2], axis=0, return_inverse=True)
                matched = np.bincount(pair_of.ravel(), weights=idx.gram_weight[idx_pos[first_at]], minlength=len(pair))
                # Both the rarity-weighted share and the plain share must reach the bar: the weighted one
                # alone would let a few rare n-grams of a short item decide.
                n_matched = np.bincount(pair_of.ravel(), minlength=len(pair))
                plain = n_matched / np.maximum(idx.item_grams[pair[:, 1]], 1)
                score = np.minimum(matched / np.maximum(idx.item_weight[pair[:, 1]], 1e-9), plain)
                # a few shared n-grams ("what are the causes of") are a stock phrase, not an item
                score = np.where(n_matched >= p.min_matched_ngrams, score, 0.0)
                is_ans = idx.is_answer[pair[:, 1]]
                need = np.where(idx.exact[pair[:, 1]], 1.0, np.where(is_ans, p.min_answer_overlap, p.min_overlap))
                # How much of each question a turn holds, below the bar too: a short answer next to a
                # sibling of its own question (same template, other wording) is that sibling's answer.
                isq = ~is_ans & (plain >= SIBLING_SHARE)
                for (d, it), pl in zip(pair[isq], plain[isq]):
                    partial[(int(t.row[turn_ids[d]]), int(it))] = float(pl)
                # exact answers: every matchable n-gram (plain share), stock n-grams aside
                score = np.where(idx.exact[pair[:, 1]], np.where(plain >= 1.0 - 1e-9, 1.0, 0.0), score)
                ok = score >= need - 1e-9
                retyped = (
                    ~ok & ~is_ans & (plain >= SIBLING_SHARE) & (idx.token_count[pair[:, 1]] >= p.min_aligned_tokens)
                )
                if retyped.any():
                    # offset of each matched n-gram: its place in the turn minus its place in the item
                    offset = (starts[gpos[first_at]] - tok.first[uk[:, 0]]) - idx.gram_pos[idx_pos[first_at]]
                    by_pair = np.argsort(pair_of.ravel(), kind="stable")
                    bounds = np.searchsorted(pair_of.ravel()[by_pair], np.arange(len(pair) + 1))
                    which = np.nonzero(retyped)[0]
                    shares = self._aligned_shares(tok, pair[which], offset[by_pair], bounds[which], bounds[which + 1])
                    for k, aligned in zip(which, shares):
                        if aligned >= p.min_aligned:
                            ok[k], score[k] = True, aligned
                            retyped_hits.add((int(pair[k, 0]), int(pair[k, 1])))
                for (d, it), sc in zip(pair[ok], score[ok]):
                    m = (doc == d) & (item == it)
                    tok_starts = starts[gpos[m]]
                    hits.append(
                        (
                            int(d),
                            int(it),
                            float(min(sc, 1.0)),
                            int(tok_starts.min()),
                            int(tok_starts.max()) + p.ngram - 1,
                        )
                    )
        for L in idx.short_lengths:
            h, ids = idx.short[L]
            lgrams, lstarts = all_grams if L == p.ngram else ngrams(tok, L)
            maybe = idx.short_filter.candidates(lgrams)
            lgrams, lstarts = lgrams[maybe], lstarts[maybe]
            if not len(lgrams):
                continue
            pos = np.searchsorted(h, lgrams)
            ok = np.nonzero((pos < len(h)) & (h[np.minimum(pos, len(h) - 1)] == lgrams))[0]
            for j in ok:
                d = int(tok.doc[lstarts[j]])
                k = pos[j]
                while k < len(h) and h[k] == lgrams[j]:
                    hits.append((d, int(ids[k]), 1.0, int(lstarts[j]), int(lstarts[j]) + L - 1))
                    k += 1
        short_turns = np.nonzero((tok.counts >= 1) & (tok.counts < p.min_short_tokens))[0]
        if len(short_turns) and len(idx.tiny):
            whole = whole_text_hashes(tok)
            for d in short_turns:
                k = np.searchsorted(idx.tiny, whole[d])
                while k < len(idx.tiny) and idx.tiny[k] == whole[d]:
                    hits.append(
                        (int(d), int(idx.tiny_item[k]), 1.0, int(tok.first[d]), int(tok.first[d] + tok.counts[d] - 1))
                    )
                    k += 1
        return self._decide(table, n, t, turn_ids, texts, tok, hits, partial, retyped_hits)

    def _aligned_shares(self, tok: Tokens, pairs: np.ndarray, offsets: np.ndarray, lo: np.ndarray, hi: np.ndarray):
        """For each (turn, item) pair: the share of the item's words found in the turn at the most
        common of its n-gram offsets (offsets[lo:hi]; a word may sit one place off: an inserted or
        dropped word). Which words are found is one compiled pass over all pairs; the shares are
        numpy's sums over those, as before that pass existed (so the same floats)."""
        idx = self.index
        first, count = idx.token_first[pairs[:, 1]], idx.token_count[pairs[:, 1]]
        at = np.concatenate([[0], np.cumsum(count)])
        found = np.zeros(at[-1], np.bool_)
        _align(
            tok.hash,
            tok.first[pairs[:, 0]],
            tok.counts[pairs[:, 0]],
            idx.token_hash,
            first,
            count,
            offsets,
            lo,
            hi,
            at,
            found,
        )
        shares = []
        for k in range(len(pairs)):
            f, w = found[at[k] : at[k + 1]], idx.token_weight[first[k] : first[k] + count[k]]
            # the mean of the plain and the rarity-weighted share: a changed stem word ("following") costs
            # little, a changed name ("Bretton") more, and a stem shared with other content words fails
            shares.append(float((f.mean() + (w * f).sum() / max(w.sum(), 1e-9)) / 2))
        return shares

    def _decide(self, table, n, t, turn_ids, texts, tok, hits, partial, retyped_hits) -> StepOutput:
        p, idx = self.params, self.index
        best: dict[int, tuple] = {}
        counters: Counter = Counter()
        for d, it, score, a, b in sorted(hits, key=lambda h: (-h[2], h[0], h[1])):
            row = int(t.row[turn_ids[d]])
            if row in best:
                continue
            if (
                idx.exact[it]
                and it > 0
                and idx.items[it - 1].item_id == idx.items[it].item_id
                and (row, it - 1) in partial
            ):
                continue  # the row asks a sibling of this item's question; the answer is that sibling's
            if p.numbers:
                nums = idx.numbers_of(it)
                if len(nums):
                    turn_tokens = tok.hash[tok.first[d] : tok.first[d] + tok.counts[d]]
                    # a retyped question keeps its numbers; the same template with other values does not
                    strict = idx.exact[it] or (d, it) in retyped_hits
                    # more than half: an item with two numbers ("40 pages ... 160 pages") needs both
                    share = np.isin(nums, turn_tokens).mean()
                    if not (share == 1.0 if strict else share > 0.5):
                        continue
            best[row] = (d, it, score, a, b)
        cols = {c: [None] * n for c in self.columns}
        reason, detail, span, turn = [None] * n, [None] * n, [None] * n, [None] * n
        for row, (d, it, score, a, b) in best.items():
            item = idx.items[it]
            raw = texts[d].as_py().encode("utf-8")
            matched = raw[tok.start[a] : tok.end[b]].decode("utf-8", "replace")
            matched = matched if len(matched) <= SPAN_LIMIT else matched[:SPAN_LIMIT]
            position = int(t.position[turn_ids[d]])
            cols["contam_eval_set"][row] = item.eval_set
            cols["contam_item_id"][row] = item.item_id
            cols["contam_span"][row] = matched
            cols["contam_eval_text"][row] = item.text[:EVAL_TEXT_LIMIT]
            cols["contam_score"][row] = round(score, 4)
            cols["contam_turn"][row] = position
            counters[f"hits:{item.eval_set}"] += 1
            counters[f"hits_{item.kind}"] += 1
            if p.mode == "drop":
                reason[row] = f"contaminated_{item.kind}"
                how = "of its words in order (retyped)" if (d, it) in retyped_hits else "of its n-grams"
                detail[row] = f"{item.eval_set} item {item.item_id}: {score:.0%} {how} in turn {position}"
                span[row], turn[row] = matched, position
        out = table
        for c, typ in self.columns.items():
            out = set_column(out, c, pa.array(cols[c], typ))
        return StepOutput(out, reason=reason, detail=detail, span=span, turn=turn, counters=counters)


@numba.njit(cache=True, nogil=True)
def _align(turn_hash, turn_first, turn_count, item_hash, item_first, item_count, offsets, lo, hi, at, found):
    """For each pair k: the offset most of its n-grams share (the smallest of the most common), and
    for each word i of the item whether the turn has it at i + offset, one place before or after."""
    for k in range(lo.shape[0]):
        offs = np.sort(offsets[lo[k] : hi[k]])
        best, best_n, run = offs[0], 0, 0
        for j in range(offs.shape[0]):
            run = run + 1 if j > 0 and offs[j] == offs[j - 1] else 1
            if run > best_n:
                best, best_n = offs[j], run
        t0, tn, i0 = turn_first[k], turn_count[k], item_first[k]
        for i in range(item_count[k]):
            for shift in (0, -1, 1):
                j = i + best + shift
                if 0 <= j < tn and turn_hash[t0 + j] == item_hash[i0 + i]:
                    found[at[k] + i] = True
                    break
