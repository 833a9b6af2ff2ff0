"""The bundled sample end to end: the default runner (auto) beside --runner local and --runner ray.

    python benchmarks/scale/sample.py [--rounds 3]

Runs `python -m curate run pipelines/sharegpt.yaml` with each runner in turn, round after round (so a
busy machine slows all of them alike), and prints the median wall time and the ratio to local.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pipeline", type=Path, default=REPO / "pipelines" / "sharegpt.yaml")
    args = ap.parse_args()
    runners = {"default (auto)": [], "local": ["--runner", "local"], "ray": ["--runner", "ray"]}
    walls: dict[str, list[float]] = {name: [] for name in runners}
    picked: dict[str, str] = {}
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, extra in runners.items():
                out = Path(tmp) / name.split()[0]
                start = time.perf_counter()
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "curate",
                        "run",
                        str(args.pipeline),
                        "--output",
                        str(out),
                        "--overwrite",
                        "--no-progress",
                        *extra,
                    ],
                    check=True,
                    capture_output=True,
                    env=env,
                    cwd=REPO,
                )
                walls[name].append(time.perf_counter() - start)
                picked[name] = json.loads((out / "stats.json").read_text())["runner"]
    local = statistics.median(walls["local"])
    print(
        f"sample: {args.pipeline.name} on {REPO / 'sample_data'}, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs at the end"
    )
    print("| runner | ran as | median wall s | all walls s | x local |")
    print("|---|---|---:|---|---:|")
    for name, w in walls.items():
        print(
            f"| {name} | {picked[name]} | {statistics.median(w):.1f} | {', '.join(f'{x:.1f}' for x in w)} | "
            f"{statistics.median(w) / local:.2f} |"
        )


if __name__ == "__main__":
    main()
