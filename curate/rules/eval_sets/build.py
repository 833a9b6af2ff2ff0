"""Rebuild curate/rules/eval_sets/*.jsonl.gz from ../shared/data/eval_sets (see README.md beside this).

    python curate/rules/eval_sets/build.py [--shared ../shared/data/eval_sets]

Each output line is {"id", "question", "answer"}: the fields decontaminate matches, nothing else.
Deterministic: gzip with mtime 0, records in source order.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def jsonl(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def with_choices(stem: str, choices: list[str]) -> str:
    return stem if len(stem.split()) >= 8 else "\n".join([stem, *map(str, choices)])


def sources(shared: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    out["gsm8k"] = [
        {"id": str(i), "question": r["question"], "answer": r["answer"]}
        for i, r in enumerate(jsonl(shared / "gsm8k" / "test.jsonl"))
    ]
    out["humaneval"] = [
        {"id": r["task_id"], "question": r["prompt"], "answer": r["canonical_solution"]}
        for r in jsonl(shared / "humaneval" / "HumanEval.jsonl.gz")
    ]
    # A stem of a few words ("The Federal Open Market Committee", "Which of the following are true:")
    # is no evidence alone: such items carry their choices, so only the item with them matches.
    out["mmlu"] = [
        {
            "id": f"{r['subject']}/{i}",
            "question": with_choices(r["question"], r["choices"]),
            "answer": r["choices"][r["answer"]],
        }
        for i, r in enumerate(jsonl(shared / "mmlu" / "test.jsonl.gz"))
    ]
    out["arc_challenge"] = [
        {
            "id": r["id"],
            "question": r["question"],
            "answer": dict(zip(r["choices"]["label"], r["choices"]["text"])).get(r["answerKey"], ""),
        }
        for r in jsonl(shared / "arc_challenge" / "test.jsonl")
    ]
    with open(shared / "truthfulqa" / "TruthfulQA.csv", newline="", encoding="utf-8") as f:
        out["truthfulqa"] = [
            {"id": str(i), "question": r["Question"], "answer": r["Best Answer"]}
            for i, r in enumerate(csv.DictReader(f))
        ]
    for name in ("mt_bench", "vicuna_bench"):
        out[name] = [
            {"id": str(r["question_id"]), "question": "\n".join(r["turns"]), "answer": ""}
            for r in jsonl(shared / name / "question.jsonl")
        ]
    out["arena_hard"] = [
        {"id": r["question_id"], "question": r["turns"][0]["content"], "answer": ""}
        for r in jsonl(shared / "arena_hard" / "arena_hard_v0.1_prompts.jsonl")
    ]
    out["ifeval"] = [
        {"id": str(r["key"]), "question": r["prompt"], "answer": ""}
        for r in jsonl(shared / "ifeval" / "input_data.jsonl")
    ]
    out["bbh"] = [
        {"id": f"{p.stem}/{i}", "question": ex["input"], "answer": ex["target"]}
        for p in sorted((shared / "bbh").glob("*.json"))
        for i, ex in enumerate(json.loads(p.read_text())["examples"])
    ]
    out["math500"] = [
        {"id": r.get("unique_id", str(i)), "question": r["problem"], "answer": r["solution"]}
        for i, r in enumerate(jsonl(shared / "math500" / "test.jsonl"))
    ]
    with open(shared / "simpleqa" / "simple_qa_test_set.csv", newline="", encoding="utf-8") as f:
        out["simpleqa"] = [
            {"id": str(i), "question": r["problem"], "answer": r["answer"]} for i, r in enumerate(csv.DictReader(f))
        ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", type=Path, default=HERE.parents[3] / "shared" / "data" / "eval_sets")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    for name, rows in sources(args.shared).items():
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
            gz.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
        (args.out / f"{name}.jsonl.gz").write_bytes(buf.getvalue())
        print(f"{name}: {len(rows)} items")


if __name__ == "__main__":
    main()
