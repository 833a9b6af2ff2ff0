"""The quality audit report: one self-contained HTML file per run, from the run's files alone."""

from __future__ import annotations

from pathlib import Path

from curate.errors import UserError
from curate.writers import atomic_path


def write_report(run_dir: Path, manifest: dict | None = None) -> Path:
    """Render RUN_DIR/report.html (atomically) from stats.json, manifest.json, pipeline.yaml and the
    kept/, rejected/ and quarantine/ Parquet files; returns its path. A run that is finishing passes
    the manifest it is about to write."""
    from curate.report.data import load
    from curate.report.render import render

    run_dir = Path(run_dir)
    if not (run_dir / "stats.json").is_file():
        raise UserError(f"{run_dir}: not a finished curate run (no stats.json)")
    html = render(load(run_dir, manifest))
    path = run_dir / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path
