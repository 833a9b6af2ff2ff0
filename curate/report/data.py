"""What the report shows, read from a run directory alone, streaming its Parquet files.

Memory is bounded whatever the run's size: files are read batch by batch, only the needed columns,
histograms are counts in fixed bins, and samples are capped (the first rows in file order, so the
same run always gives the same report)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from curate.report.distributions import TOKEN_EDGES, TOKEN_LABELS, TURN_EDGES, TURN_LABELS, bin_counts

SAMPLES_PER_REASON = 5
QUARANTINE_SAMPLES = 20
CLUSTERS = 12
CONTAM_PER_SET = 6
TEXT_LIMIT = 1500
BATCH = 4096

SCORE_BINS = 20
# Scores whose top, middle and bottom rows the report shows (model scores: what they prefer is the question)
EXAMPLE_SCORES = ("quality_score",)
EXAMPLES_PER_PART = 3


@dataclass
class Histogram:
    """Counts in fixed bins for kept and for rejected rows."""

    edges: list[float]
    kept: np.ndarray = None
    rejected: np.ndarray = None

    def __post_init__(self):
        self.kept = np.zeros(len(self.edges), np.int64)
        self.rejected = np.zeros(len(self.edges), np.int64)

    def add(self, values: np.ndarray, rejected: bool) -> None:
        values = values[~np.isnan(values)] if values.dtype.kind == "f" else values
        counts = self.rejected if rejected else self.kept
        counts += bin_counts(values, self.edges)

    @classmethod
    def from_counts(cls, edges: list[float], labels: list[str], counts: dict) -> Histogram:
        """From stats.json's distributions: {"kept": {label: n}, "rejected": {...}}."""
        h = cls(edges)
        for side in ("kept", "rejected"):
            getattr(h, side)[:] = [counts.get(side, {}).get(label, 0) for label in labels]
        return h


@dataclass
class ReportData:
    run_dir: Path
    stats: dict
    manifest: dict
    pipeline: dict
    pipeline_text: str
    turns: Histogram = field(default_factory=lambda: Histogram(TURN_EDGES))
    tokens: Histogram = field(default_factory=lambda: Histogram(TOKEN_EDGES))
    langs: dict[str, Counter] = field(default_factory=lambda: {"kept": Counter(), "rejected": Counter()})
    scores: dict[str, Histogram] = field(default_factory=dict)
    score_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: dict[tuple[str, str], list[dict]] = field(default_factory=lambda: defaultdict(list))
    clusters: dict[str, list[dict]] = field(default_factory=dict)
    # score column -> {"top" | "middle" | "bottom": [{id, score, kept, first_text, answer_text}]}
    examples: dict[str, dict[str, list[dict]]] = field(default_factory=dict)
    cluster_kept: dict[str, dict] = field(default_factory=dict)
    contamination: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    contamination_counts: Counter = field(default_factory=Counter)
    quarantine: list[dict] = field(default_factory=list)
    columns: set[str] = field(default_factory=set)
    # output.stats_by: (column, {value: (kept, rejected, Counter of reasons)}), from stats.json
    by_value: tuple[str, dict[str, tuple[int, int, Counter]]] | None = None

    @property
    def step_names(self) -> list[str]:
        return [s["step"] for s in self.stats.get("steps", [])]

    def step_params(self, name: str) -> dict:
        for item in self.pipeline.get("steps") or []:
            if isinstance(item, dict) and name in item:
                return item[name] or {}
        return {}


def _by_value(dist: dict, column: str | None):
    """Kept, rejected and reasons per value of the stats_by column, counted by the run."""
    if not column:
        return None
    kind = f"by_{column}"
    kept, rejected = dist.get("kept", {}).get(kind, {}), dist.get("rejected", {}).get(kind, {})
    reasons: dict[str, Counter] = {}
    for reason, values in dist.get(f"reasons_by_{column}", {}).items():
        for value, n in values.items():
            reasons.setdefault(value, Counter())[reason] += n
    values = sorted(set(kept) | set(rejected), key=lambda v: (-(kept.get(v, 0) + rejected.get(v, 0)), v))
    return column, {v: (kept.get(v, 0), rejected.get(v, 0), reasons.get(v, Counter())) for v in values}


def _files(run_dir: Path, sub: str) -> list[Path]:
    return sorted((run_dir / sub).glob("*.parquet"))


def _batches(files: list[Path], wanted: list[str]):
    for f in files:
        pf = pq.ParquetFile(f)
        names = set(pf.schema_arrow.names)  # built anew on every access: once per file
        cols = [c for c in wanted if c in names]
        if not cols:
            continue
        yield from pf.iter_batches(batch_size=BATCH, columns=cols)


def _schema_names(files: list[Path]) -> set[str]:
    names: set[str] = set()
    for f in files:
        names |= set(pq.read_schema(f).names)
    return names


def load(run_dir: Path, manifest: dict | None = None) -> ReportData:
    stats = json.loads((run_dir / "stats.json").read_text())
    if manifest is None:
        manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").exists() else {}
    text = (run_dir / "pipeline.yaml").read_text() if (run_dir / "pipeline.yaml").exists() else ""
    data = ReportData(run_dir, stats, manifest, yaml.safe_load(text) or {}, text)
    kept_files, rejected_files = _files(run_dir, "kept"), _files(run_dir, "rejected")
    data.columns = _schema_names(kept_files) | _schema_names(rejected_files)
    # Turns, tokens and languages were counted by the run's final segment (stats.json).
    dist = stats.get("distributions", {})
    per_kind = {
        kind: {side: dist.get(side, {}).get(kind, {}) for side in ("kept", "rejected")}
        for kind in ("turns", "tokens", "lang")
    }
    data.turns = Histogram.from_counts(TURN_EDGES, TURN_LABELS, per_kind["turns"])
    data.tokens = Histogram.from_counts(TOKEN_EDGES, TOKEN_LABELS, per_kind["tokens"])
    data.langs = {side: Counter(per_kind["lang"][side]) for side in ("kept", "rejected")}
    data.by_value = _by_value(dist, (data.pipeline.get("output") or {}).get("stats_by"))
    score_cols = sorted(
        c
        for c in data.columns
        if c.startswith(("q_", "tox_"))
        or c in ("lang_score", "contam_score", "dup_similarity")
        or c in EXAMPLE_SCORES
        or c == "semantic_similarity"
    )
    if score_cols:
        _score_ranges(data, kept_files + rejected_files, score_cols)
        for files, rejected in ((kept_files, False), (rejected_files, True)):
            _score_histograms(data, files, rejected, score_cols)
    _samples(data, rejected_files)
    _cluster_kept_rows(data, kept_files + rejected_files)
    _score_examples(data, kept_files + rejected_files)
    _quarantine(data, _files(run_dir, "quarantine"))
    return data


def _score_ranges(data: ReportData, files: list[Path], cols: list[str]) -> None:
    lo = {c: np.inf for c in cols}
    hi = {c: -np.inf for c in cols}
    for batch in _batches(files, cols):
        for c in batch.schema.names:
            mm = pc.min_max(batch.column(c))
            if mm["min"].is_valid:
                lo[c], hi[c] = min(lo[c], mm["min"].as_py()), max(hi[c], mm["max"].as_py())
    for c in cols:
        if np.isfinite(lo[c]):
            a, b = lo[c], hi[c]
            if c.startswith("tox_") or c in ("lang_score", "dup_similarity", "contam_score") or (0 <= a and b <= 1):
                a, b = 0.0, 1.0
            b = b if b > a else a + 1
            data.score_ranges[c] = (a, b)
            data.scores[c] = Histogram(list(np.linspace(a, b, SCORE_BINS + 1)[:-1]))


def _score_histograms(data: ReportData, files: list[Path], rejected: bool, score_cols: list[str]) -> None:
    for batch in _batches(files, score_cols):
        for c in score_cols:
            if c in batch.schema.names and c in data.scores:
                data.scores[c].add(batch.column(c).to_numpy(zero_copy_only=False).astype(np.float64), rejected)


def _clip(text: str | None, limit: int = TEXT_LIMIT) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + " …"


def _excerpt_around(text: str, span: str | None, limit: int = TEXT_LIMIT) -> str:
    """A window of the text that contains the span, so a match deep in a long turn is visible."""
    if not span or span not in text or len(text) <= limit:
        return _clip(text, limit)
    at = text.index(span)
    start = max(0, at - limit // 3)
    return ("… " if start else "") + _clip(text[start:], limit)


def _samples(data: ReportData, files: list[Path]) -> None:
    wanted = [
        "id",
        "messages",
        "_curate_drop_step",
        "_curate_drop_reason",
        "_curate_drop_detail",
        "_curate_drop_span",
        "_curate_drop_turn",
        "duplicate_of",
        "dup_cluster",
        "dup_similarity",
        "semantic_duplicate_of",
        "semantic_similarity",
        "contam_eval_set",
        "contam_item_id",
        "contam_span",
        "contam_eval_text",
        "contam_score",
        "contam_turn",
    ]
    for batch in _batches(files, wanted):
        names = batch.schema.names
        steps = batch.column("_curate_drop_step").to_pylist()
        reasons = batch.column("_curate_drop_reason").to_pylist()
        sets = batch.column("contam_eval_set").to_pylist() if "contam_eval_set" in names else [None] * batch.num_rows
        dups = batch.column("duplicate_of").to_pylist() if "duplicate_of" in names else [None] * batch.num_rows
        if "semantic_duplicate_of" in names:  # a row is removed by one dedup step: at most one is set
            dups = [d if d is not None else s for d, s in zip(dups, batch.column("semantic_duplicate_of").to_pylist())]
        # Python only for the few rows that will be shown.
        for i in range(batch.num_rows):
            key = (steps[i], reasons[i])
            show_reason = len(data.samples[key]) < SAMPLES_PER_REASON
            show_cluster = dups[i] is not None and (dups[i] in data.clusters or len(data.clusters) < CLUSTERS)
            show_contam = sets[i] is not None and len(data.contamination[sets[i]]) < CONTAM_PER_SET
            if sets[i] is not None:
                data.contamination_counts[sets[i]] += 1
            if not (show_reason or show_cluster or show_contam):
                continue
            row = {n: batch.column(n)[i].as_py() for n in names if n != "messages"}
            turns = batch.column("messages")[i].as_py() or []
            t = row.get("_curate_drop_turn")
            if sets[i] is not None and row.get("contam_turn") is not None:
                t = row["contam_turn"]
            turn = (
                turns[t]
                if t is not None and 0 <= t < len(turns)
                else (turns[0] if turns else {"role": "", "content": ""})
            )
            span = row.get("contam_span") if sets[i] is not None else row.get("_curate_drop_span")
            row["turn_index"] = t if t is not None else 0
            row["turn_role"] = turn.get("role")
            row["turn_text"] = _excerpt_around(turn.get("content") or "", span)
            row["span"] = span
            row["first_text"] = _clip((turns[0]["content"] or "") if turns else "", 600)
            if show_reason:
                data.samples[key].append(row)
            if show_cluster:
                data.clusters.setdefault(dups[i], []).append(row)
            if show_contam:
                data.contamination[sets[i]].append(row)


def _cluster_kept_rows(data: ReportData, files: list[Path]) -> None:
    """The kept row of each shown cluster (kept/; or rejected/ if a later step dropped it)."""
    wanted = pa.array(sorted(data.clusters))
    if not len(wanted):
        return
    for f in files:
        # ids first: the messages of a file (most of its bytes) are read only if it holds a kept row
        if not pc.any(pc.is_in(pq.read_table(f, columns=["id"]).column("id"), value_set=wanted)).as_py():
            continue
        for batch in _batches([f], ["id", "messages"]):
            for row in batch.filter(pc.is_in(batch.column("id"), value_set=wanted)).to_pylist():
                if row["id"] not in data.cluster_kept:
                    turns = row["messages"] or []
                    data.cluster_kept[row["id"]] = {
                        "id": row["id"],
                        "first_text": _clip((turns[0]["content"] or "") if turns else "", 600),
                    }
        if len(data.cluster_kept) == len(wanted):
            return


def _score_examples(data: ReportData, files: list[Path]) -> None:
    """Top, middle and bottom rows of each example score, kept and rejected together: a first pass
    reads ids and scores only, a second the messages of the few rows shown."""
    for col in (c for c in EXAMPLE_SCORES if c in data.columns):
        ids, scores, kept = [], [], []
        for f in files:
            t = pq.read_table(f, columns=[c for c in ("id", col) if c in pq.read_schema(f).names])
            if col not in t.column_names:
                continue
            ids += t.column("id").to_pylist()
            scores.append(t.column(col).to_numpy(zero_copy_only=False).astype(np.float64))
            kept += [f.parent.name == "kept"] * t.num_rows
        values = np.concatenate(scores) if scores else np.zeros(0)
        scored = np.nonzero(~np.isnan(values))[0]
        if not len(scored):
            continue
        order = scored[np.lexsort((scored, -values[scored]))]  # best first, then file order
        k, mid = EXAMPLES_PER_PART, len(order) // 2
        parts = {"top": order[:k], "middle": order[max(0, mid - k // 2) : mid - k // 2 + k], "bottom": order[-k:][::-1]}
        wanted = {ids[i] for p in parts.values() for i in p}
        texts = _first_pair_texts(files, wanted)
        data.examples[col] = {
            name: [{"id": ids[i], "score": float(values[i]), "kept": kept[i], **texts.get(ids[i], {})} for i in idx]
            for name, idx in parts.items()
        }


def _first_pair_texts(files: list[Path], wanted: set) -> dict[str, dict]:
    out: dict[str, dict] = {}
    value_set = pa.array(sorted(wanted), pa.string())
    for batch in _batches(files, ["id", "messages"]):
        for row in batch.filter(pc.is_in(batch.column("id"), value_set=value_set)).to_pylist():
            turns = row["messages"] or []
            answer = next((t["content"] or "" for t in turns if t["role"] == "assistant"), "")
            first = (turns[0]["content"] or "") if turns else ""
            out.setdefault(row["id"], {"first_text": _clip(first, 400), "answer_text": _clip(answer, 600)})
        if len(out) == len(wanted):
            break
    return out


def _quarantine(data: ReportData, files: list[Path]) -> None:
    for batch in _batches(files, ["source_file", "source_index", "line", "error", "raw"]):
        for row in batch.to_pylist():
            if len(data.quarantine) >= QUARANTINE_SAMPLES:
                return
            row["raw"] = _clip(row.get("raw"), 600)
            data.quarantine.append(row)


def thresholds(data: ReportData) -> dict[str, tuple[float, str]]:
    """Score column -> (limit, caption) from the resolved pipeline, where a step declares one."""
    out: dict[str, tuple[float, str]] = {}
    if "quality_heuristics" in data.step_names:
        try:
            from curate.engine import DEFAULT_RULES_DIR
            from curate.steps.base import StepContext
            from curate.steps.quality_heuristics import RULES, QualityHeuristics, QualityParams

            rules_dir = Path(data.pipeline.get("rules") or DEFAULT_RULES_DIR)
            step = QualityHeuristics(
                QualityParams(**data.step_params("quality_heuristics")), StepContext(rules_dir=rules_dir)
            )
            active, limits = step.config()
            for rule in active:
                for check in RULES[rule]:
                    if check.threshold in limits:
                        out[f"q_{check.metric}"] = (
                            limits[check.threshold],
                            f"{rule}: {check.fails_when} {limits[check.threshold]:g}",
                        )
        except Exception:  # noqa: BLE001 -- a report without threshold lines beats no report
            pass
    if "language" in data.step_names:
        mc = data.step_params("language").get("min_confidence")
        if mc:
            out["lang_score"] = (mc, f"min_confidence {mc:g}")
    if "minhash_dedup" in data.step_names:
        ms = data.step_params("minhash_dedup").get("min_similarity")
        if ms:
            out["dup_similarity"] = (ms, f"min_similarity {ms:g}")
    if "quality_score" in data.step_names:
        ms = data.step_params("quality_score").get("min_score")
        if ms is not None:
            out["quality_score"] = (ms, f"min_score {ms:g}")
    tox = data.step_params("toxicity").get("thresholds") if "toxicity" in data.step_names else None
    if isinstance(tox, dict):
        for label, value in tox.items():
            if isinstance(value, (int, float)):
                out[f"tox_{label}"] = (value, f"threshold {value:g}")
    return out
