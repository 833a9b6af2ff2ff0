"""Decontamination: curate beside decon and plain n-gram rules, same corpus, same run.

  python benchmarks/decontam/run.py                       # N=20k, the harness's synthetic eval sets
  python benchmarks/decontam/run.py --real-evals          # items planted from ../shared/data/eval_sets
  python benchmarks/decontam/run.py --natural             # list the natural overlap in ../shared/data/instructions

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


def natural_overlap() -> None:
    """Every hit of the default eval sets + AlpacaEval in the real instruction files, for judging."""
    from curate.readers import plan, read_shard
    from curate.records import FieldNames
    from curate.steps.base import StepContext
    from curate.steps.decontaminate import Decontaminate, DecontaminateParams, EvalSource, load_items

    shared = BENCH.parent / "data"
    alpaca = EvalSource(
        name="alpaca_eval", path=str(shared / "eval_sets" / "alpaca_eval" / "alpaca_eval_example_outputs.json")
    )
    rules = Path(__file__).resolve().parents[2] / "curate" / "rules"
    defaults = [n for n in __import__("yaml").safe_load((rules / "eval_sets.yaml").read_text()) if n != "alpaca_eval"]
    step = Decontaminate(DecontaminateParams(eval_sets=[*defaults, alpaca], mode="flag"), StepContext(rules_dir=rules))
    step.setup()
    print(
        f"\nNatural overlap in {shared / 'instructions'} (default sets + AlpacaEval, {len(load_items(step.params, rules)):,} items):\n"
    )
    print("| file | row id | eval set | item | score | turn | matched span |")
    print("|---|---|---|---|---|---|---|")
    total = 0
    for f in sorted((shared / "instructions").iterdir()):
        for shard in plan([str(f)], "auto", 1_000_000):
            table, _bad = read_shard(shard, FieldNames())
            if not table.num_rows:
                continue
            out = step.process(table)
            total += table.num_rows
            cols = {
                c: out.table.column(c).to_pylist()
                for c in ("id", "contam_eval_set", "contam_item_id", "contam_score", "contam_turn", "contam_span")
            }
            for i, es in enumerate(cols["contam_eval_set"]):
                if es:
                    span = " ".join(cols["contam_span"][i].split())[:90].replace("|", "\\|")
                    print(
                        f"| {f.name} | {cols['id'][i]} | {es} | {cols['contam_item_id'][i]} | {cols['contam_score'][i]:.2f} | {cols['contam_turn'][i]} | {span} |"
                    )
    print(f"\n{total:,} rows searched")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--real-evals", action="store_true", help="plant real eval items (make_corpus.py --eval-dir)")
    ap.add_argument("--data", type=Path, default=Path("/tmp/bench/data"))
    ap.add_argument("--tools", default="curate-decon,decon,decon-t0.5,ngram13,ngram8")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--results", type=Path, default=Path("/tmp/bench/results/decontam"))
    ap.add_argument(
        "--natural", action="store_true", help="only list the natural overlap in ../shared/data/instructions"
    )
    args = ap.parse_args()
    if args.natural:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        natural_overlap()
        return
    name = f"n{args.n // 1000}k" + ("-realevals" if args.real_evals else "")
    extra = ["--eval-dir", str(BENCH.parent / "data" / "eval_sets")] if args.real_evals else []
    corpus = make_corpus(args.n, args.data / name, *extra)
    tools = args.tools.split(",")
    shutil.rmtree(args.results / name, ignore_errors=True)
    summary = run_peers(corpus, tools, args.results / name, rounds=args.rounds)

    print(f"\n{name}: N={args.n:,}, one core each (docs/s = N / wall, start-up included)\n")
    print(
        "| tool | docs/s | wall s | peak RSS MB | precision | recall | verbatim | paraphrase | embedded | answer | template negatives flagged |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for t in tools:
        s = summary.get(t, {})
        if not s or s.get("failed"):
            print(f"| {t} | FAILED | | | | | | | | | |")
            continue
        d = s["quality"].get("decon", {})
        k = d.get("recall_by_kind", {})
        prec = d.get("precision")
        print(
            f"| {t} | {s['docs_per_s']:,.0f} | {s['wall_s_median']:.1f} | {s['peak_tree_rss_mb']:.0f} | "
            f"{prec if prec is None else f'{prec:.4f}'} | {d.get('recall', 0):.4f} | {k.get('verbatim', '-')} | {k.get('paraphrase', '-')} | "
            f"{k.get('embedded', '-')} | {k.get('answer', '-')} | {d.get('template_negative_fp', '-')} |"
        )


if __name__ == "__main__":
    main()
