"""The labelled quality data of ../shared/data/quality as (instruction, response) pairs, split by source.

Every source is cut 80/20 by a hash of its instruction (the prompt's last user turn), so an
instruction and all its answers are on one side: train.py learns from the 80% ("train"), run.py
measures on the 20% ("eval"; ../shared/data keeps a further split, by its own hash, that nobody here
has seen). Choices (regularisation, features) are made on "validation", a fifth of "train" cut by
another hash, with the model fitted on the rest ("fit"): `train.py --validate`.

Sources (licences in curate/models/LICENSE-quality_linear.md):
  gpt4_vs_davinci   pairs: GPT-4's answer (chosen) vs text-davinci-003's to the same Alpaca instruction
  alpaca_eval       pairs: AlpacaEval's GPT-4 judge preferences (4 generators vs text-davinci-003)
  hh_harmless       pairs: Anthropic HH-RLHF harmless-base chosen vs rejected last assistant turn
  alpagasus         rows: AlpaGasus's LLM-rated >= 4.5 Alpaca rows (label 1) vs its random 9k (label 0)
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "quality"
PAIR_FILES = {
    "gpt4_vs_davinci": "pairs_alpaca_gpt4_vs_davinci.jsonl.gz",
    "alpaca_eval": "pairs_alpaca_eval_gpt4_judge.jsonl.gz",
    "hh_harmless": "pairs_hh_rlhf_harmless_base_test.jsonl.gz",
}
RATED_FILES = {"claude": "alpagasus_claude_t45.jsonl.gz", "chatgpt": "alpagasus_helpfulness_t45.jsonl.gz"}


@dataclass
class Pairs:
    instruction: list[str]
    chosen: list[str]
    rejected: list[str]


@dataclass
class Rated:
    instruction: list[str]
    response: list[str]
    label: list[int]  # 1: rated >= 4.5, 0: the random 9k
    rater: list[str]


SPLITS = ("train", "eval", "fit", "validation")


def held_out(instruction: str) -> bool:
    return int(hashlib.sha256(instruction.encode()).hexdigest(), 16) % 5 == 0


def in_split(instruction: str, split: str) -> bool:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if held_out(instruction):
        return split == "eval"
    if split == "train":
        return True
    validation = int(hashlib.sha256(b"validation:" + instruction.encode()).hexdigest(), 16) % 5 == 0
    return split == ("validation" if validation else "fit")


def _lines(name: str):
    with gzip.open(DATA / name, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def _alpaca_instruction(r: dict) -> str:
    return r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "")


def pairs(source: str, split: str) -> Pairs:
    out = Pairs([], [], [])
    for r in _lines(PAIR_FILES[source]):
        users = [m["content"] for m in r["prompt"] if m["role"] == "user"]
        instr = users[-1] if users else ""
        if not in_split(instr, split):
            continue
        out.instruction.append(instr)
        out.chosen.append(r["chosen"])
        out.rejected.append(r["rejected"])
    return out


def rated(split: str) -> Rated:
    out = Rated([], [], [], [])
    seen = set()
    for rater, name in RATED_FILES.items():
        for r in _lines(name):
            instr = _alpaca_instruction(r)
            if in_split(instr, split):
                (
                    out.instruction.append(instr),
                    out.response.append(r["output"]),
                    out.label.append(1),
                    out.rater.append(rater),
                )
                seen.add((instr, r["output"]))
    for r in _lines("alpagasus_random_9k.jsonl.gz"):
        instr = _alpaca_instruction(r)
        # for training, a random row that was also rated >= 4.5 is not a negative
        if in_split(instr, split) and (split in ("eval", "validation") or (instr, r["output"]) not in seen):
            (
                out.instruction.append(instr),
                out.response.append(r["output"]),
                out.label.append(0),
                out.rater.append("random"),
            )
    return out
