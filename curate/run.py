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
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from curate import __version__
from curate.card import CARD, card_is_ours, write_card
from curate.config import Pipeline
from curate.engine import DEFAULT_RULES_DIR, RunPlan, execute_plan, plan_input
from curate.errors import UserError
from curate.ids import make_unique as make_unique_ids
from curate.readers import list_input_files
from curate.report import write_report
from curate.runners import make_runner, pick
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


# An input's identity for --resume and the manifest, without reading it all in the driver: its
# size, its modification time, and a sha256 of SAMPLES blocks spread over it (first and last
# included). A file rewritten in place changes its mtime; one edited without a new mtime and size
# could slip past the samples, which is the price of not hashing terabytes before any work starts.
SAMPLES, SAMPLE_BYTES = 16, 1 << 16


def describe_input(path: str) -> dict:
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        last = max(st.st_size - SAMPLE_BYTES, 0)
        for k in range(SAMPLES):
            f.seek(last * k // (SAMPLES - 1))
            h.update(f.read(SAMPLE_BYTES))
    return {"path": path, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sampled_sha256": h.hexdigest()}


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
            raise UserError(
                f"output directory {run_dir} holds a {CARD} curate did not write; the run's dataset card "
                "would replace it: move it away first"
            )
        return
    if not overwrite:
        raise UserError(
            f"output directory {run_dir} already holds results; pass --overwrite to replace them or --resume to continue"
        )
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
    inputs = [describe_input(f) for f in sorted(files)]
    address = address or cfg.runner.address
    kind = pick(runner_kind or cfg.runner.type, address, sum(i["bytes"] for i in inputs), cfg.runner.num_cpus)
    resolved = pipeline.resolved()
    fingerprint = hashlib.sha256(
        json.dumps(
            {
                "inputs": inputs,
                "input": resolved["input"],
                "version": __version__,
                "format": resolved["output"]["format"],
                "stats_by": resolved["output"]["stats_by"],
                "work_files": WORK_FILE_FORMAT,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    work = run_dir / WORK_DIR
    if not resume and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    runner = make_runner(kind, address, cfg.runner.num_cpus, progress)
    try:
        shards = plan_input(runner, files, record_format, cfg.input.shard_rows, cfg.input.max_record_mb << 20)
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
        totals, resumed_shards = execute_plan(plan, runner, resume, log)
        timing = runner.timing()
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
        runner_timing=timing,
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
