"""curate as a tool of ../shared/bench: the adapter contract of its tools/common.py.

  python curate_adapter.py --corpus DATA --out OUT [--threads N] [--steps dedup|decontam] [--runner ray] [--src DIR]

Writes a pipeline with the peers' settings (word 5-grams, 14 bands x 8 rows, seed 1), runs
`curate run` (the local runner for one thread, embedded Ray with N CPUs otherwise) and maps
curate's rejected rows to removed.txt / contaminated.txt; the runner's timing (Ray's start-up, the
gap between a worker's pieces) goes into info.json's stages. `--src` runs the curate checked out
there (an older commit, to compare runners in the same run). benchmarks/dedup/run.py installs this
file into a scratch copy of the harness; it is not meant to run from here.
"""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Stages, parser, write_ids, write_info  # noqa: E402  (the harness's helpers)

STEPS = {
    "dedup": "  - exact_dedup: {}\n  - minhash_dedup: {ngram: 5, num_bands: 14, rows_per_band: 8, seed: 1}\n",
    "decontam": "  - decontaminate: {eval_sets: [{path: %(evals)s}]}\n",
}

PIPELINE = """\
input: {path: %(corpus)s, format: sharegpt, shard_rows: %(shard_rows)d}
output: {path: %(out)s}
runner: %(runner)s
steps:
%(steps)s"""


def main():
    ap = parser(__doc__)
    ap.add_argument("--steps", default="dedup", choices=sorted(STEPS))
    ap.add_argument("--shard-rows", type=int, default=20000)
    ap.add_argument(
        "--runner",
        choices=["auto", "ray"],
        default="auto",
        help="auto: the local runner for one thread, Ray otherwise; ray: Ray even on one CPU",
    )
    ap.add_argument("--src", required=True, help="the curate source tree to run (a checkout's root)")
    args = ap.parse_args()
    st = Stages()
    work = os.path.abspath(os.path.join(args.out, "work"))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ray = args.runner == "ray" or args.threads > 1
    runner = f"{{type: ray, num_cpus: {args.threads}}}" if ray else "{type: local}"
    values = {
        "corpus": os.path.abspath(os.path.join(args.corpus, "corpus.jsonl")),
        "evals": os.path.abspath(os.path.join(args.corpus, "evals")),
        "out": os.path.join(work, "out"),
        "runner": runner,
        "shard_rows": args.shard_rows,
    }
    values["steps"] = STEPS[args.steps] % values
    yaml_path = os.path.join(work, "pipeline.yaml")
    with open(yaml_path, "w") as f:
        f.write(PIPELINE % values)
    with st("curate run"):
        # cwd too: `python -m` puts the working directory before PYTHONPATH on sys.path.
        p = subprocess.run(
            [sys.executable, "-m", "curate", "run", yaml_path],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=args.src),
            cwd=args.src,
        )
    with open(os.path.join(args.out, "tool.log"), "w") as f:
        f.write(p.stdout + "\n" + p.stderr)
    if p.returncode != 0:
        sys.exit(p.stderr[-3000:])
    timing = json.loads(open(os.path.join(work, "out", "stats.json")).read()).get("runner_timing") or {}
    st.times.update({f"runner {k}": v for k, v in timing.items() if v is not None})
    import pyarrow.dataset as ds

    rejected = (
        ds.dataset(os.path.join(work, "out", "rejected"), format="parquet")
        .to_table(columns=["id", "_curate_drop_step"])
        .to_pylist()
    )
    write_ids(
        args.out,
        "removed.txt",
        [r["id"] for r in rejected if r["_curate_drop_step"] in ("exact_dedup", "minhash_dedup")],
    )
    write_ids(args.out, "contaminated.txt", [r["id"] for r in rejected if r["_curate_drop_step"] == "decontaminate"])
    settings = f"curate {args.steps} ({f'Ray, {args.threads} CPUs' if ray else 'local runner'}); pipeline: {values['steps'].strip()}"
    write_info(args.out, tool="curate", stages=st.times, settings=settings.replace("\n", ";"))
    shutil.rmtree(work, ignore_errors=True)  # the kept set of a 1M corpus is GBs


if __name__ == "__main__":
    main()
