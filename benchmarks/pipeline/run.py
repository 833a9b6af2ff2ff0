"""The whole recipe against the peers' own pipelines: runs ../shared/bench/pipeline (not copied).

Points the harness at this checkout (a `curate` wrapper with PYTHONPATH set, so the curate under test
is this one, not an installed copy), makes the make_corpus corpora (seed 11) it expects under
PIPEBENCH_DIR, and calls its bench.py for the tools asked. The peers need the venvs of
../shared/bench/setup_venvs.sh (/tmp/bench/venv-dj, /tmp/bench/venv-datatrove); without them pass
`--tools curate,curate-default`, which measures curate's five-step recipe and its default 12-step one.

    python benchmarks/pipeline/run.py --n 20000 --tools curate,curate-default --rounds 2
    python benchmarks/pipeline/run.py --n 20000              # with data-juicer and datatrove (venvs needed)
    python benchmarks/pipeline/run.py --n 20000 --rounds 1 --no-wait   # on a busy box: no quiet wait
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = Path(os.environ.get("CURATE_BENCH", REPO.parent / "shared" / "bench"))
PEER_PYTHON = {"data-juicer": "/tmp/bench/venv-dj/bin/python", "datatrove": "/tmp/bench/venv-datatrove/bin/python"}


def curate_wrapper() -> str:
    """A `curate` command that imports this checkout (the harness runs CURATE_BIN as a program)."""
    fd, path = tempfile.mkstemp(prefix="curate-", suffix=".sh")
    with os.fdopen(fd, "w") as f:
        f.write(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m curate "$@"\n')
    os.chmod(path, stat.S_IRWXU)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--tools", default="curate,curate-default,data-juicer,datatrove")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait for other test/benchmark runs to finish (on a shared box the harness may wait 20 min a run)",
    )
    a = ap.parse_args()
    tools = a.tools.split(",")
    missing = [t for t in tools if t in PEER_PYTHON and not os.access(PEER_PYTHON[t], os.X_OK)]
    if missing:
        sys.exit(
            f"no venv for {', '.join(missing)}: run `bash {BENCH}/setup_venvs.sh` first, or --tools curate,curate-default"
        )
    wrapper = curate_wrapper()
    scratch = tempfile.mkdtemp(prefix="curate-pipebench-")
    try:
        race(a, tools, wrapper, Path(scratch))
    finally:
        os.unlink(wrapper)
        shutil.rmtree(scratch)


def harness_checkout(scratch: Path) -> Path:
    """The checkout as run_all.sh expects it: it looks for lid.176.ftz and the word list with
    `find $CHECKOUT/curate $CHECKOUT/rules` under `set -o pipefail`, so it stops silently unless both
    folders exist (rules/ moved into the package), and find does not enter symlinked folders. A
    scratch folder with the two files in curate/, an empty rules/ and this checkout's pipelines/."""
    view = scratch / "checkout"
    (view / "curate").mkdir(parents=True)
    (view / "rules").mkdir()
    for src in (REPO / "curate" / "models" / "lid.176.ftz", REPO / "curate" / "rules" / "toxicity_words_en.txt"):
        shutil.copy(src, view / "curate" / src.name)
    (view / "pipelines").symlink_to(REPO / "pipelines")
    return view


def race(a: argparse.Namespace, tools: list[str], wrapper: str, scratch: Path) -> None:
    home = Path(os.environ.get("PIPEBENCH_DIR", "/tmp/pipebench"))
    env = dict(os.environ, CURATE_CHECKOUT=str(REPO), CURATE_BIN=wrapper, PIPEBENCH_DIR=str(home))
    if any(t in PEER_PYTHON for t in tools):
        env["CURATE_CHECKOUT"] = str(harness_checkout(scratch))
        if a.no_wait:
            # run_all.sh has no such option; its bench.py waits while `pgrep` finds a busy process,
            # so a `pgrep` that finds none, first on PATH, skips the wait (and nothing else)
            shim = scratch / "pgrep"
            shim.write_text("#!/bin/sh\nexit 1\n")
            shim.chmod(stat.S_IRWXU)
            env["PATH"] = f"{scratch}{os.pathsep}{env.get('PATH', '')}"
        # the harness's own script: peer assets (curate's lid.176 and word list where the peers look),
        # data-juicer's untimed filters-only run for attribution, both corpora, the timed runs
        env.update(ROUNDS=str(a.rounds), TOOLS_20K=",".join(tools), TOOLS_100K=",".join(tools))
        if a.n == 100_000:
            env["WITH_100K"] = "1"
        for corpus in ("n20k", "n100k"):  # bench.py appends; its summary must be of this run only
            (home / "runs" / corpus / "runs.jsonl").unlink(missing_ok=True)
        subprocess.run(["bash", str(BENCH / "pipeline" / "run_all.sh")], cwd=REPO, env=env, check=True)
        return
    corpus = home / f"n{a.n // 1000}k"
    if not (corpus / "truth.jsonl").exists():
        subprocess.run(
            [sys.executable, str(BENCH / "make_corpus.py"), "--n", str(a.n), "--seed", "11", "--out", str(corpus)],
            check=True,
        )
    out = home / "runs" / corpus.name
    (out / "runs.jsonl").unlink(missing_ok=True)  # the harness appends; its summary is of this run only
    cmd = [
        sys.executable,
        str(BENCH / "pipeline" / "bench.py"),
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        "--rounds",
        str(a.rounds),
        "--tools",
        ",".join(tools),
    ] + (["--no-wait"] if a.no_wait else [])
    subprocess.run(cmd, cwd=REPO, env=env, check=True)


if __name__ == "__main__":
    main()
