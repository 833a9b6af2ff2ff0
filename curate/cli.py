"""The `curate` command. User mistakes are one line on stderr and exit 1; bugs exit 3."""

from __future__ import annotations

import errno
import os
import sys
import traceback
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from curate.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Clean, deduplicate and decontaminate instruction-tuning data.",
)
out = Console(highlight=False, soft_wrap=True)


def _show_progress(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return sys.stderr.isatty() and not os.environ.get("CI")


@app.command()
def run(
    pipeline: str = typer.Argument(..., help="pipeline YAML, or the name of a shipped recipe (curate recipes)"),
    input: list[str] | None = typer.Option(None, "--input", "-i", help="replaces input.path (repeatable)"),
    output: str | None = typer.Option(None, "--output", "-o", help="replaces output.path"),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster address (default: RAY_ADDRESS, else embedded)"
    ),
    runner: str | None = typer.Option(None, "--runner", help="auto, ray or local (replaces runner.type)"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run, skipping finished work"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the results already in the output directory"),
    progress: bool | None = typer.Option(None, "--progress/--no-progress", help="progress bars"),
) -> None:
    """Run a pipeline: kept/, rejected/, quarantine/, stats.json, report.html in the output directory."""
    from curate.config import load_pipeline
    from curate.resources import pipeline_path
    from curate.run import execute

    if resume and overwrite:
        raise UserError("--resume and --overwrite cannot be used together")
    if runner not in (None, "auto", "ray", "local"):
        raise UserError(f"--runner: must be 'auto', 'ray' or 'local' (got {runner!r})")
    overrides = {}
    if input:
        overrides["input.path"] = input if len(input) > 1 else input[0]
    if output:
        overrides["output.path"] = output
    pipe = load_pipeline(pipeline_path(pipeline), overrides)
    show = _show_progress(progress if progress is not None else pipe.config.runner.progress)
    log = (lambda msg: out.print(f"[dim]{msg}[/dim]")) if show else (lambda msg: None)
    result = execute(
        pipe, resume=resume, overwrite=overwrite, runner_kind=runner, address=address, progress=show, log=log
    )
    _summary(result.stats, result.run_dir)


def _summary(stats: dict, run_dir: Path) -> None:
    table = Table(title=None, show_edge=False)
    for col in ("step", "in", "kept", "dropped", "top reason", "seconds"):
        table.add_column(col, justify="left" if col in ("step", "top reason") else "right")
    for s in stats["steps"]:
        top = max(s["dropped"].items(), key=lambda kv: kv[1])[0] if s["dropped"] else ""
        table.add_row(
            s["step"], f"{s['rows_in']:,}", f"{s['rows_kept']:,}", f"{s['rows_dropped']:,}", top, f"{s['seconds']:.2f}"
        )
    out.print(table)
    out.print(
        f"rows in {stats['rows_in']:,}"
        + (f" + {stats['rows_added']:,} created by splitting" if stats["rows_added"] else "")
        + f" = kept {stats['rows_kept']:,} + rejected {stats['rows_rejected']:,} + quarantined {stats['rows_quarantined']:,}"
        + f"   [{stats['elapsed_seconds']:.1f} s, {stats['runner']} runner]"
    )
    report = run_dir / "report.html"
    out.print(f"output: {run_dir}/" + (f"   report: {report}" if report.exists() else ""))


@app.command()
def validate(pipeline: str = typer.Argument(..., help="pipeline YAML, or the name of a shipped recipe")) -> None:
    """Check the YAML and every step's parameters; do no work."""
    from curate.config import load_pipeline
    from curate.resources import pipeline_path

    pipe = load_pipeline(pipeline_path(pipeline))
    out.print(f"{pipeline}: OK ({len(pipe.steps)} steps: {', '.join(s.name for s in pipe.steps) or 'none'})")


@app.command("list-steps")
def list_steps(
    names: list[str] | None = typer.Argument(None, help="only these steps (names or package.module:Class)"),
) -> None:
    """Every registered step (built in, or from an installed package's `curate.steps` entry point)
    with its parameters, types, limits and defaults."""
    from curate.registry import all_steps, get_step, plugin_steps

    plugins = plugin_steps()
    steps = {n: get_step(n) for n in (names or [*all_steps(), *plugins])}
    for name, cls in steps.items():
        kind = "global" if hasattr(cls, "summarize") else "map"
        origin = f" (from {plugins[name]})" if name in plugins else ""
        out.print(f"[bold]{escape(name)}[/bold] ({kind}){escape(origin)}: {escape(cls.summary())}")
        for field_name, field in cls.Params.model_fields.items():
            limits = [str(m) for m in field.metadata]
            ann = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
            default = field.get_default(call_default_factory=True)
            desc = f"  {field.description}" if field.description else ""
            out.print(
                f"    {field_name}: {ann} = {default!r}" + (f"  [{', '.join(limits)}]" if limits else "") + desc,
                markup=False,
            )


@app.command()
def recipes() -> None:
    """The recipes shipped with curate: `curate run NAME` runs one; copy its file to adapt it."""
    from curate.resources import recipe_purpose
    from curate.resources import recipes as shipped

    for name, path in shipped().items():
        out.print(f"[bold]{name}[/bold]: {escape(recipe_purpose(path))}")
        out.print(f"    {path}", markup=False)


rules_app = typer.Typer(help="the rules folder: word and phrase lists, thresholds, eval sets")
app.add_typer(rules_app, name="rules")


@rules_app.command("copy")
def rules_copy(dest: str = typer.Argument(..., help="a new folder")) -> None:
    """Copy the shipped rules to DEST, to edit there; a pipeline uses them with `rules: DEST`."""
    from curate.resources import copy_rules

    target = copy_rules(Path(dest))
    out.print(
        f"copied the shipped rules to {target}/; use them with this line in a pipeline:\nrules: {target.resolve()}",
        markup=False,
    )


models_app = typer.Typer(help="model weights for steps that use them (run on a connected machine)")
app.add_typer(models_app, name="models")


@models_app.command("download")
def models_download(
    name: str = typer.Argument(
        "detoxify-original", help="detoxify-original, detoxify-unbiased or detoxify-multilingual"
    ),
    dest: str | None = typer.Option(None, "--dest", help="folder (default: ~/.cache/curate/models)"),
) -> None:
    """Download model weights to where the pipeline config expects them."""
    from curate.models import download

    snippet = download(name, Path(dest) if dest else None)
    out.print("downloaded; use it in a pipeline with:\n" + snippet, markup=False)


@app.command()
def report(run_dir: str = typer.Argument(..., help="a finished run's directory")) -> None:
    """Re-render RUN_DIR/report.html from the run's files alone."""
    from curate.report import write_report

    path = write_report(Path(run_dir))
    out.print(f"report: {path}")


def _user_facing(exc: BaseException) -> str | None:
    """The one-line message for an error the user can act on, found along the exception's chain:
    `__cause__`/`__context__`, and `cause`, where Ray's RayTaskError keeps the exception a worker
    raised (the Ray runner re-raises a worker's UserError itself; this also covers other paths)."""
    seen = 0
    while exc is not None and seen < 20:
        cause = getattr(exc, "cause", None)
        if isinstance(exc, UserError) and not isinstance(cause, BaseException):
            return str(exc)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return f"no space left on device while writing {exc.filename or 'output'}; free space, then rerun with --resume"
        exc = cause if isinstance(cause, BaseException) else exc.__cause__ or exc.__context__
        seen += 1
    return None


def main() -> None:
    try:
        _main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception:  # a bug in curate, not the user's mistake: show everything, exit 3
        traceback.print_exc()
        print("internal error: this is a bug in curate; please report it with the traceback above", file=sys.stderr)
        sys.exit(3)


def _main() -> None:
    try:
        app(standalone_mode=True)
    except Exception as e:
        message = _user_facing(e)
        if message is None:
            raise
        print(message, file=sys.stderr)
        sys.exit(1)
