"""Near-duplicate removal: curate beside datasketch, rensa and datatrove, same corpus, same run.

  python benchmarks/dedup/run.py                      # N=20k, 1 round
  python benchmarks/dedup/run.py --n 200000 --tools curate,curate-2cpu,rensa,datasketch-batch
  python benchmarks/dedup/run.py --n 1000000 --tools curate,curate-2cpu,curate-ray1cpu --rounds 2
  CURATE_BASELINE_SRC=/tmp/base python benchmarks/dedup/run.py --n 200000 --tools curate,curate-2cpu,curate-baseline-2cpu

Prints docs/s, peak RSS (largest process and whole tree), precision/recall from the harness's
ground truth, recall on HTML re-renders and template siblings removed, and curate's ratios.
Peers need the harness's venvs (bash ../shared/bench/setup_venvs.sh, once).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import make_corpus, run_peers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--data", type=Path, default=Path("/tmp/bench/data"))
    ap.add_argument("--tools", default="curate,curate-2cpu,rensa,datasketch-batch,datatrove")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--results", type=Path, default=Path("/tmp/bench/results/dedup"))
    args = ap.parse_args()
    name = f"n{args.n // 1000}k" if args.n < 1_000_000 else f"n{args.n // 1_000_000}m"
    corpus = make_corpus(args.n, args.data / name)
    tools = args.tools.split(",")
    shutil.rmtree(args.results / name, ignore_errors=True)
    summary = run_peers(corpus, tools, args.results / name, rounds=args.rounds)

    print(f"\nN={args.n:,}  (docs/s = N / wall, wall includes start-up; one core unless the name says 2cpu)\n")
    print(
        "| tool | docs/s | wall s | CPU s | peak RSS MB (proc / tree) | precision | recall | recall near_html | hard negatives removed | x curate docs/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    ref = summary.get("curate", {}).get("docs_per_s")
    for t in tools:
        s = summary.get(t, {})
        if s.get("failed") or not s:
            print(f"| {t} | FAILED | | | | | | | | |")
            continue
        d = s["quality"].get("dedup", {})
        ratio = f"{ref / s['docs_per_s']:.1f}x" if ref and not t.startswith("curate") else ""
        print(
            f"| {t} | {s['docs_per_s']:,.0f} | {s['wall_s_median']:.1f} | {s['cpu_s_median']} | "
            f"{s['peak_rss_mb']:.0f} / {s['peak_tree_rss_mb']:.0f} | {d.get('precision', 0):.4f} | {d.get('recall', 0):.4f} | "
            f"{d.get('recall_by_kind', {}).get('near_html', 0):.3f} | {d.get('hardneg_fp', '-')} | {ratio} |"
        )
    speed = {
        t: summary[t]["docs_per_s"]
        for t in ("curate", "curate-2cpu", "curate-ray1cpu", "curate-baseline-2cpu")
        if not summary.get(t, {}).get("failed") and t in summary
    }
    if "curate-2cpu" in speed:
        print()
        if "curate" in speed:
            print(f"Ray on 2 CPUs vs the local runner on one core: {speed['curate-2cpu'] / speed['curate']:.2f}x")
        if "curate-ray1cpu" in speed:
            print(f"Ray on 2 CPUs vs Ray on one CPU: {speed['curate-2cpu'] / speed['curate-ray1cpu']:.2f}x")
        if "curate-baseline-2cpu" in speed:
            base = speed["curate-baseline-2cpu"]
            print(
                f"Ray on 2 CPUs, this runner vs the baseline checkout's: {speed['curate-2cpu'] / base:.2f}x"
                + (f" (baseline vs one core: {base / speed['curate']:.2f}x)" if "curate" in speed else "")
            )
    timings = {t: summary[t].get("stages_last", {}) for t in speed}
    if any(any(k.startswith("runner ") for k in st) for st in timings.values()):
        print("\nWhere the runner's time goes (last round; seconds / ms as named):")
        for t, st in timings.items():
            shown = {k.removeprefix("runner "): v for k, v in st.items() if k.startswith("runner ")}
            if shown:
                print(f"  {t}: curate run {st.get('curate run', 0):.1f} s; {shown}")


if __name__ == "__main__":
    main()
