"""Rebuild the recipes' small samples from sample_data/sharegpt_sample.jsonl (deterministic: the
same files every time; tests/test_recipes.py runs each recipe on its sample).

    python pipelines/samples/build.py [--out DIR]

Planted rows, by id suffix or prefix: `-copy` an exact copy of the row before it (exact_dedup),
`-xsrc` a copy of a row of the other file of the mix, `eval-*` an eval-set item pasted into a user
turn (decontaminate), `refusal-*` an "As an AI language model" reply (ai_boilerplate); one
malformed line in openai_mix/code.jsonl (quarantined).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[1] / "sample_data" / "sharegpt_sample.jsonl"
ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


def openai(row: dict, system: str | None = None) -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": ROLES[t["from"]], "content": t["value"]} for t in row["conversations"]]
    return {"id": row["id"], "messages": messages}


def jsonl(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE)
    out = ap.parse_args().out
    rows = [json.loads(line) for line in SOURCE.read_text(encoding="utf-8").splitlines()]
    plain = [r for r in rows if "-" not in r["id"] and all(t["from"] in ROLES for t in r["conversations"])]
    evals = {r["id"]: r for r in rows if r["id"].startswith("eval-")}
    with_code = [r for r in plain if any("```" in t["value"] for t in r["conversations"])]
    prose = [r for r in plain if r not in with_code]

    chat = []
    for i, r in enumerate(prose[:30]):
        chat.append(openai(r, "You are a helpful assistant." if i % 3 == 0 else None))
        if i in (4, 11):
            chat.append({**chat[-1], "id": r["id"] + "-copy"})
    chat += [openai(evals["eval-gsm8k-0"]), openai(evals["eval-truthfulqa-0"])]
    code = [openai(r) for r in with_code[:12]]
    code.insert(5, {**chat[7], "id": chat[7]["id"] + "-xsrc"})
    code.insert(9, '{"id": "broken", "messages": [{"role": "user", "content": "unterminated\n')
    jsonl(out / "openai_mix" / "chat.jsonl", chat)
    jsonl(out / "openai_mix" / "code.jsonl", code)

    pairs = [r for r in prose[30:] if len(r["conversations"]) == 2][:30]
    alpaca = [
        {
            "instruction": r["conversations"][0]["value"],
            "input": "",
            "output": r["conversations"][1]["value"],
            "id": r["id"],
        }
        for r in pairs
    ]
    alpaca.insert(6, {**alpaca[5], "id": alpaca[5]["id"] + "-copy"})
    gsm = evals["eval-gsm8k-1"]["conversations"]
    alpaca.append({"instruction": gsm[0]["value"], "input": "", "output": gsm[1]["value"], "id": "eval-gsm8k-1"})
    alpaca.append(
        {
            "instruction": "Write a short poem about your feelings.",
            "input": "",
            "output": "As an AI language model, I do not have feelings, so I cannot write a poem about them.",
            "id": "refusal-0",
        }
    )
    (out / "alpaca.json").write_text(json.dumps(alpaca, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    finished = [openai(r) for r in prose[60:85]]
    for name in ("eval-gsm8k-2", "eval-truthfulqa-1", "eval-vicuna-1"):
        finished.insert(len(finished) // 2, openai(evals[name]))
    jsonl(out / "finished_set.jsonl", finished)


if __name__ == "__main__":
    main()
