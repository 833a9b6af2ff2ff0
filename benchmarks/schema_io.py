"""Reading and writing with the messages schema: rows/s of the readers (Arrow's fast ShareGPT path and
the record-by-record path that maps tool calls, traces and content parts) and of the JSONL writers
that give each shape back. CPU seconds (process time: the box is shared, wall time is not repeatable). Uses only read_shard / write_jsonl, so the same script times an older
checkout (PYTHONPATH=/path/to/old python benchmarks/schema_io.py) for a before/after table.

    python benchmarks/schema_io.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

from curate.readers import plan, read_shard
from curate.records import FieldNames
from curate.writers import write_jsonl

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
CORPORA = {
    # name: (source file, records wanted, output format)
    "sharegpt (fast path)": (SHARED / "instructions" / "sharegpt92k_cleaned_sample.json", 20_000, "sharegpt"),
    "glaive function_call": (SHARED / "post_training" / "glaive_toolcall_en_demo.jsonl.gz", 20_000, "sharegpt"),
    "LLaMA-Factory parts": (SHARED / "post_training" / "reason_tool_use_demo_50.jsonl.gz", 20_000, "openai"),
}


def _records(path: Path) -> list[dict]:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _corpus(src: Path, n: int, out: Path) -> Path:
    base = _records(src)
    if "conversations" in base[0]:  # the fast path reads {id, conversations[{from, value}]} only
        base = [
            {
                "id": r.get("id"),
                "conversations": [{"from": m["from"], "value": m["value"]} for m in r["conversations"]],
                **({"tools": r["tools"]} if "tools" in r else {}),
            }
            for r in base
        ]
    with out.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps(dict(base[i % len(base)], id=f"r{i}"), ensure_ascii=False) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print("| corpus | rows | read rows/s | write rows/s (its format) |")
    print("|---|---:|---:|---:|")
    for name, (src, n, fmt) in CORPORA.items():
        path = _corpus(src, n, tmp / "in.jsonl")
        (shard,) = plan([str(path)], "auto", n)
        reads, writes = [], []
        for _ in range(args.repeat):
            t0 = time.process_time()
            rows, bad = read_shard(shard, FieldNames())
            reads.append(time.process_time() - t0)
            assert rows.num_rows == n and bad.num_rows == 0, (name, bad.to_pylist()[:1])
            t0 = time.process_time()
            write_jsonl(rows, tmp / "out.jsonl", fmt)
            writes.append(time.process_time() - t0)
        print(f"| {name} | {n:,} | {n / min(reads):,.0f} | {n / min(writes):,.0f} |")


if __name__ == "__main__":
    main()
