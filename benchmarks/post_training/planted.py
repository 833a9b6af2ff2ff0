"""Planted faults: every fault kind of the reasoning and tool_calls steps, planted into real records,
run through the real readers and the local runner. Prints, per set and kind, how many were rejected
with the right reason, and how many clean records were rejected.

    PYTHONPATH=$PWD python benchmarks/post_training/planted.py [--per-kind N]

Target (issue 17): >= 98% of planted faults rejected with the right reason, <= 0.5% of clean
records rejected.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import FAULTS, PIPELINES, SETS, plant  # noqa: E402


def build(per_kind: int | None, seed: int = 0) -> dict[str, list[tuple[dict, str | None]]]:
    """set -> [(record with an id, the reason expected or None for clean)]."""
    rng = random.Random(seed)
    out = {}
    for name, load in SETS.items():
        clean = load()
        rows = [(dict(rec, id=f"{name}-{i}-clean"), None) for i, rec in enumerate(clean)]
        for kind, (sets, expected) in FAULTS.items():
            if name not in sets:
                continue
            order = list(range(len(clean)))
            rng.shuffle(order)
            made = 0
            for i in order:
                bad = plant(clean[i], kind, rng)
                if bad is None:
                    continue
                rows.append((dict(bad, id=f"{name}-{i}-{kind}"), expected))
                made += 1
                if per_kind is not None and made >= per_kind:
                    break
        out[name] = rows
    return out


def run_set(name: str, rows: list[tuple[dict, str | None]], workdir: Path) -> dict[str, tuple[str, str | None]]:
    """id -> (outcome: kept / rejected / quarantined, reason) after the set's pipeline."""
    import yaml

    from curate.config import load_pipeline
    from curate.run import execute
    from tests.helpers import read_dir

    src = workdir / f"{name}.jsonl"
    src.write_text("".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec, _ in rows), encoding="utf-8")
    cfg = {
        "input": {"path": str(src)},
        "output": {"path": str(workdir / f"out-{name}")},
        "runner": {"type": "local"},
        "steps": PIPELINES[name],
    }
    (workdir / f"{name}.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    result = execute(
        load_pipeline(str(workdir / f"{name}.yaml")), runner_kind="local", log=lambda m: None, overwrite=True
    )
    got = {}
    kept, rejected = read_dir(result.run_dir / "kept"), read_dir(result.run_dir / "rejected")
    for i in kept.column("id").to_pylist() if kept is not None else ():
        got[i] = ("kept", None)
    if rejected is not None:
        for i, r in zip(rejected.column("id").to_pylist(), rejected.column("_curate_drop_reason").to_pylist()):
            got[i] = ("rejected", r)
    quarantine = read_dir(result.run_dir / "quarantine")
    if quarantine is not None:
        for index, error in zip(quarantine.column("source_index").to_pylist(), quarantine.column("error").to_pylist()):
            got[rows[index][0]["id"]] = ("quarantined", error)
    return got


def evaluate(per_kind: int | None = None) -> tuple[list[dict], dict]:
    table, clean = [], Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, rows in build(per_kind).items():
            got = run_set(name, rows, Path(tmp))
            per = {}
            for rec, expected in rows:
                outcome, reason = got.get(rec["id"], ("lost", None))
                kind = rec["id"].rsplit("-", 1)[1]
                if expected is None:
                    clean["records"] += 1
                    clean[outcome] += 1
                    if outcome != "kept":
                        clean[f"{name}: {reason}"] += 1
                    continue
                c = per.setdefault(kind, Counter())
                c["planted"] += 1
                c[
                    "right"
                    if outcome == "rejected" and reason == expected
                    else outcome
                    if outcome != "rejected"
                    else "wrong"
                ] += 1
                if outcome == "rejected" and reason != expected:
                    c[f"as {reason}"] += 1
            for kind, c in per.items():
                table.append({"set": name, "fault": kind, "expected": FAULTS[kind][1], **c})
    return table, clean


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--per-kind", type=int, default=None, help="faults per kind and set (default: every record that has a place)"
    )
    args = ap.parse_args()
    table, clean = evaluate(args.per_kind)
    print("| set | fault | expected reason | planted | right reason | other reason | kept | quarantined |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for t in table:
        print(
            f"| {t['set']} | {t['fault']} | `{t['expected']}` | {t['planted']} | {t.get('right', 0)} | {t.get('wrong', 0)} | "
            f"{t.get('kept', 0)} | {t.get('quarantined', 0)} |"
        )
    planted = sum(t["planted"] for t in table)
    right = sum(t.get("right", 0) for t in table)
    print(f"\nplanted faults rejected with the right reason: {right}/{planted} = {right / planted:.2%}")
    bad_clean = clean["records"] - clean["kept"]
    print(f"clean records rejected or quarantined: {bad_clean}/{clean['records']} = {bad_clean / clean['records']:.2%}")
    for k, v in sorted(clean.items()):
        if ":" in k:
            print(f"  {k}: {v}")
    others = Counter()
    for t in table:
        for k, v in t.items():
            if k.startswith("as "):
                others[f"{t['set']}/{t['fault']} {k}"] += v
    for k, v in others.most_common():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
