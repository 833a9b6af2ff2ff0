"""One `curate run`: plan the shards, let a runner do the pieces, check the counts, publish.

Nothing is published until every piece is done and rows in = kept + rejected + quarantined holds;
then the outputs are moved into the run directory and manifest.json is written last, so a run
directory with a manifest is a finished run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from curate import __version__
from curate.card import CARD, card_is_ours, write_card
from curate.config import Pipeline
from curate.engine import DEFAULT_RULES_DIR, Engine, RunPlan
from curate.errors import UserError
from curate.ids import make_unique as make_unique_ids
from curate.readers import list_input_files
from curate.readers import plan as plan_shards
from curate.report import write_report
from curate.runners import make_runner
from curate.stats import RunStats, StepStats
from curate.steps.base import GlobalStep
from curate.writers import WORK_FILE_FORMAT, atomic_path

OUTPUT_DIRS = ("kept", "rejected", "quarantine", "kept_jsonl")
RUN_FILES = ("stats.json", "manifest.json", "pipeline.yaml", "report.html", CARD)  # CARD: only while card_is_ours
WORK_DIR = "_work"


class IdentityError(RuntimeError):
    """Rows were lost or invented: a bug, never the user's fault."""


@dataclass
class RunResult:
    run_dir: Path
    stats: dict


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict:
    out = {"python": platform.python_version(), "curate": __version__}
    for pkg in ("pyarrow", "ray", "pydantic", "datasketch", "detoxify", "fasttext-numpy2", "beautifulsoup4", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix a new run into old results unless asked; never delete a stranger's folder."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"output.path: {run_dir} exists and is not a directory")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    ours = {*OUTPUT_DIRS, *RUN_FILES, WORK_DIR}
    if not card_is_ours(run_dir):  # a README.md of the user's own, or a card they edited
        ours.discard(CARD)
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in ours)
    if resume:
        if CARD not in ours:
            raise UserError(f"output directory {run_dir} holds a {CARD} curate did not write; the run's dataset card "
                            "would replace it: move it away first")
        return
    if not overwrite:
        raise UserError(f"output directory {run_dir} already holds results; pass --overwrite to replace them or --resume to continue")
    if foreign:
        raise UserError(
            f"output directory {run_dir} holds files curate did not write ({', '.join(foreign[:3])}); refusing to delete them"
        )
    for name in ours:
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _publish(work: Path, run_dir: Path) -> None:
    for name in OUTPUT_DIRS:
        target = run_dir / name
        if target.exists():
            shutil.rmtree(target)
        src = work / "out" / name
        if src.exists():
            os.replace(src, target)
    (run_dir / "kept").mkdir(exist_ok=True)


def _write_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def execute(
    pipeline: Pipeline,
    *,
    resume: bool = False,
    overwrite: bool = False,
    runner_kind: str | None = None,
    address: str | None = None,
    progress: bool = False,
    log=print,
) -> RunResult:
    cfg = pipeline.config
    started = time.perf_counter()
    run_dir = Path(cfg.output.path)
    prepare_run_dir(run_dir, resume, overwrite)
    rules_dir = Path(cfg.rules) if cfg.rules else DEFAULT_RULES_DIR
    if not rules_dir.is_dir():
        raise UserError(f"rules: directory not found: {rules_dir}")

    record_format = "auto" if cfg.input.format == "parquet" else cfg.input.format
    files = list_input_files(cfg.input.paths())  # a missing input fails here, before any runner starts
    kind = runner_kind or cfg.runner.type
    # Scanning the input for shard boundaries and hashing it (seconds for GBs; hashlib and file reads
    # release the GIL) run in threads while the runner starts (ray.init: seconds).
    with ThreadPoolExecutor(max_workers=2) as pool:
        planned = pool.submit(plan_shards, files, record_format, cfg.input.shard_rows, cfg.input.max_record_mb << 20)
        hashes = [pool.submit(_sha256, f) for f in files]
        runner = make_runner(kind, address or cfg.runner.address, cfg.runner.num_cpus, progress)
        try:
            shards = planned.result()
            digests = {f: h.result() for f, h in zip(files, hashes)}
        except BaseException:
            runner.close()
            raise
    totals = RunStats()
    resumed_shards = 0
    try:
        inputs = [{"path": f, "bytes": os.path.getsize(f), "sha256": digests[f]} for f in sorted({s.path for s in shards})]
        resolved = pipeline.resolved()
        fingerprint = hashlib.sha256(
            json.dumps({"inputs": inputs, "input": resolved["input"], "version": __version__,
                        "format": resolved["output"]["format"], "stats_by": resolved["output"]["stats_by"],
                        "work_files": WORK_FILE_FORMAT}, sort_keys=True).encode()
        ).hexdigest()
        work = run_dir / WORK_DIR
        if not resume and work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        plan = RunPlan(
            steps=tuple((s.name, s.params.model_dump(mode="json")) for s in pipeline.steps),
            shards=tuple(shards),
            work_dir=str(work.resolve()),
            rules_dir=str(rules_dir.resolve()),
            field_names=dict(cfg.input.columns),
            output_format=cfg.output.format,
            stats_by=cfg.output.stats_by,
            fingerprint=fingerprint,
        )
        engine = Engine(plan)  # the driver's copy: plans segments, finalizes global steps
        for seg in engine.segments:
            label = seg.label(engine.names)
            shard_ids = list(range(len(shards)))
            done = [s for s in shard_ids if resume and engine.shard_done(seg, s)]
            resumed_shards += len(done)
            todo = [s for s in shard_ids if s not in set(done)]
            actors = any(engine.steps[p].needs_actor for p in seg.map_steps)
            log(f"[{seg.index + 1}/{len(engine.segments)}] {label}: {len(todo)} shard(s)" + (f", {len(done)} already done" if done else ""))
            results = runner.run_shards(plan, seg.index, todo, label, actors)
            results += [json.loads(engine.shard_stats_path(seg, s).read_text()) for s in done]
            for r in results:
                totals = totals + RunStats.from_dict(r)
            if seg.summarize is not None:
                step = engine.steps[seg.summarize]
                assert isinstance(step, GlobalStep)
                t0 = time.perf_counter()
                if not (resume and engine.decisions_path(seg.summarize).exists()):
                    parts = [p for p in range(step.num_partitions()) if not (resume and engine.partition_done(seg.summarize, p))]
                    runner.resolve_partitions(plan, seg.summarize, parts, f"{step.name}:resolve")
                    engine.finalize(seg.summarize)
                totals.add_step(f"{seg.summarize}:{step.name}", StepStats(seconds=time.perf_counter() - t0))
        renamed = make_unique_ids(work / "out", cfg.output.format)
        if renamed:
            totals.read_counters["id_renamed:repeated"] += renamed
    except BaseException:
        runner.close()
        raise
    # The runner stops before anything is published. Stopping an embedded Ray takes ~1.4 s, and it
    # once overlapped publishing in a thread; but while Ray's core worker shuts down, anything that
    # reaches it (an object reference the driver's garbage collector frees, a Ray Data thread) ends
    # the process from C++ with no Python error: an unpublished run and exit 1 in one run of three
    # on a loaded machine. Nothing after this line may touch the runner.
    runner.close()
    if not totals.identity_holds():
        raise IdentityError(
            f"rows lost: in {totals.rows_read} (+{totals.rows_added} created) != kept {totals.rows_kept} + "
            f"rejected {totals.rows_rejected} + quarantined {totals.rows_quarantined}"
        )
    _publish(work, run_dir)
    stats = totals.to_dict()
    stats.update(
        runner=kind,
        shards=len(shards),
        resumed_shards=resumed_shards,
        elapsed_seconds=round(time.perf_counter() - started, 3),
    )
    _write_atomic(run_dir / "stats.json", json.dumps(stats, indent=2) + "\n")
    _write_atomic(run_dir / "pipeline.yaml", yaml.safe_dump(resolved, sort_keys=False))
    manifest = {
        "complete": True,
        "curate_version": __version__,
        "versions": _versions(),
        "command": sys.argv,
        "pipeline_source": pipeline.source,
        "inputs": inputs,
        "fingerprint": fingerprint,
        "runner": kind,
    }
    # The report before the manifest: manifest.json, written last, marks a finished run.
    write_report(run_dir, manifest=manifest)
    manifest["card_sha256"] = write_card(run_dir, resolved, stats, manifest, rules_dir)
    _write_atomic(run_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return RunResult(run_dir=run_dir, stats=stats)
