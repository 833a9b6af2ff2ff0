"""Decontamination: curate beside decon and plain n-gram rules, same corpus, same run.

  python benchmarks/decontam/run.py                       # N=20k, the harness's synthetic eval sets
  python benchmarks/decontam/run.py --real-evals          # items planted from ../shared/data/eval_sets

Prints recall (overall and per kind: verbatim, paraphrase, embedded, answer), precision, the share
of template negatives flagged, docs/s and peak RSS. decon needs the harness's venv-decon
(bash ../shared/bench/setup_venvs.sh).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import BENCH, make_corpus, run_peers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--real-evals", action="store_true", help="plant real eval items (make_corpus.py --eval-dir)")
    ap.add_argument("--data", type=Path, default=Path("/tmp/bench/data"))
    ap.add_argument("--tools", default="curate-decon,decon,decon-t0.5,ngram13,ngram8")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--results", type=Path, default=Path("/tmp/bench/results/decontam"))
    args = ap.parse_args()
    name = f"n{args.n // 1000}k" + ("-realevals" if args.real_evals else "")
    extra = ["--eval-dir", str(BENCH.parent / "data" / "eval_sets")] if args.real_evals else []
    corpus = make_corpus(args.n, args.data / name, *extra)
    tools = args.tools.split(",")
    shutil.rmtree(args.results / name, ignore_errors=True)
    summary = run_peers(corpus, tools, args.results / name, rounds=args.rounds)

    print(f"\n{name}: N={args.n:,}, one core each (docs/s = N / wall, start-up included)\n")
    print("| tool | docs/s | wall s | peak RSS MB | precision | recall | verbatim | paraphrase | embedded | answer | template negatives flagged |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for t in tools:
        s = summary.get(t, {})
        if not s or s.get("failed"):
            print(f"| {t} | FAILED | | | | | | | | | |")
            continue
        d = s["quality"].get("decon", {})
        k = d.get("recall_by_kind", {})
        prec = d.get("precision")
        print(f"| {t} | {s['docs_per_s']:,.0f} | {s['wall_s_median']:.1f} | {s['peak_tree_rss_mb']:.0f} | "
              f"{prec if prec is None else f'{prec:.4f}'} | {d.get('recall', 0):.4f} | {k.get('verbatim', '-')} | {k.get('paraphrase', '-')} | "
              f"{k.get('embedded', '-')} | {k.get('answer', '-')} | {d.get('template_negative_fp', '-')} |")


if __name__ == "__main__":
    main()
