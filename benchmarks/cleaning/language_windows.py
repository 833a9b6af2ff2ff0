"""What `language`'s `max_chars` / `windows` trade: CPU seconds against labels that change.

    python benchmarks/cleaning/language_windows.py [CORPUS_DIR]   # a make_corpus dir, e.g. /tmp/pipebench/n20k

For each setting: the step's CPU seconds (process time, so a loaded machine inflates it less than
wall time) on the real instruction files of ../shared/data/instructions that the readers read (and
on CORPUS_DIR/corpus.jsonl if given), the characters given to fastText, and against the default
(max_chars 2000, windows 1) how many conversations change `lang` and how many change keep/drop
under `keep: [en]`. Settings run alternately, twice; the lower CPU time is printed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from curate.readers import plan, read_shard  # noqa: E402
from curate.records import FieldNames  # noqa: E402
from curate.steps.base import StepContext, apply_map_step  # noqa: E402
from curate.steps.language import Language, LanguageParams  # noqa: E402

INSTRUCTIONS = REPO.parent / "shared" / "data" / "instructions"
CTX = StepContext(rules_dir=REPO / "rules")
SETTINGS = [(2000, 1), (2000, 4), (1000, 1), (1000, 2), (1000, 4), (500, 1), (500, 2)]


def tables(paths: list[Path]) -> list[pa.Table]:
    out = []
    for path in paths:
        try:
            shards = plan([str(path)], "auto", 2000)
        except Exception:  # noqa: BLE001 - a layout the readers do not read (OASST trees, HH, Self-Instruct)
            continue
        out += [t for t in (read_shard(s, FieldNames())[0] for s in shards) if t.num_rows]
    return out


def run(step: Language, batches: list[pa.Table]) -> tuple[float, list, list]:
    t0 = time.process_time()
    langs, kept = [], []
    for b in batches:
        out, _ = apply_map_step(step, b)
        langs += out.column("lang").to_pylist()
        kept += [r is None for r in out.column("_curate_drop_reason").to_pylist()]
    return time.process_time() - t0, langs, kept


def main() -> None:
    data = {"instructions (real)": tables(sorted(INSTRUCTIONS.iterdir()))}
    if len(sys.argv) > 1:
        data["make_corpus"] = tables([Path(sys.argv[1]) / "corpus.jsonl"])
    model = None
    for name, batches in data.items():
        rows = sum(b.num_rows for b in batches)
        print(f"\n{name}: {rows:,} conversations\n")
        print("| max_chars | windows | CPU s | vs default | lang changed | keep/drop changed |")
        print("|---:|---:|---:|---:|---:|---:|")
        results: dict = {}
        for _ in range(2):
            for mc, w in SETTINGS:
                step = Language(LanguageParams(keep=["en"], max_chars=mc, windows=w), CTX)
                if model is None:
                    step.setup()
                    model = step.model
                step._model = model
                cpu, langs, kept = run(step, batches)
                results[(mc, w)] = (min(cpu, results.get((mc, w), (cpu,))[0]), langs, kept)
        base_cpu, base_lang, base_kept = results[SETTINGS[0]]
        for mc, w in SETTINGS:
            cpu, langs, kept = results[(mc, w)]
            lang_diff = sum(a != b for a, b in zip(langs, base_lang))
            kept_diff = sum(a != b for a, b in zip(kept, base_kept))
            print(
                f"| {mc} | {w} | {cpu:.2f} | {base_cpu / cpu:.2f}x | {lang_diff} ({lang_diff / rows:.2%}) | {kept_diff} ({kept_diff / rows:.2%}) |"
            )


if __name__ == "__main__":
    main()
