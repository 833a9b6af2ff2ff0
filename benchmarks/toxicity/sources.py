"""The public data the offline toxicity model is trained and measured on, and its one split rule.

Every source is split by sha256 of a key, modulo 5: 0 is the test split (never trained on, never
used to choose anything), 1-4 are the folds the training script cross-validates over to calibrate
the score and choose the threshold. The key is the text for labelled rows and the conversation for
chats (a conversation's turns stay together). The test split of Davidson, ToxiGen and the
ShareGPT sample is the one the previous model held out too, so both models are measured on rows
neither saw (the previous model never trained on Wikipedia, OpenAI-messages or Alpaca rows at all).

labelled: Davidson tweets (hate or offensive = toxic; MIT), Wikipedia talk comments (Wulczyn et al.,
  CC0 labels), ToxiGen human-written implicit hate vs neutral sentences (MIT).
chats: the ShareGPT, OpenAI-messages and Alpaca files of shared/data/instructions, read by curate's
  own reader, as conversations (the clean-chat false-positive budget is measured on their test split);
  plus OASST messages, Self-Instruct seed tasks and HH-RLHF harmless-base preferred assistant turns,
  which are training negatives only.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import html
import json
import re
import tempfile
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
LABELLED = ("davidson", "wikipedia", "toxigen")
# The files whose held-out conversations make the clean-chat flag share (ShareGPT, OpenAI, Alpaca).
CHAT_FILES = (
    "sharegpt92k_cleaned_sample.json",
    "sharegpt_fastchat_dummy_conversation.json",
    "sharegpt_llamafactory_dpo_en_demo.json",
    "sharegpt_llamafactory_glaive_toolcall_en_demo.json",
    "openai_messages_llamafactory_kto_en_demo.json",
    "openai_messages_arena_refusal_labeled.jsonl",
    "alpaca_llamafactory_alpaca_en_demo.json",
    "alpaca_llamafactory_identity.json",
)


def split(key: str) -> int:
    """0 = test, 1-4 = cross-validation folds."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 5


def held_out(key: str) -> bool:
    return split(key) == 0


def labelled() -> dict[str, list[tuple[str, int]]]:
    """source -> [(text, 1 if toxic)]."""
    tox = DATA / "toxicity"
    with open(tox / "davidson_hate_offensive_labeled.csv", newline="", encoding="utf-8") as f:
        davidson = [(html.unescape(r["tweet"]), int(r["class"] in ("0", "1"))) for r in csv.DictReader(f)]
    with open(tox / "wikipedia_toxicity_nonfuzzed_testset.csv", newline="", encoding="utf-8") as f:
        wikipedia = [(r["comment"], int(r["toxic"] == "True")) for r in csv.DictReader(f)]
    toxigen = [
        (r["text"], int(r["label"] == "hate"))
        for r in map(json.loads, (tox / "toxigen_demonstrations.jsonl").read_text().splitlines())
    ]
    return {"davidson": davidson, "wikipedia": wikipedia, "toxigen": toxigen}


def chat_tables() -> dict[str, pa.Table]:
    """file -> canonical rows as curate's reader makes them (what the toxicity step sees in a run).
    Chatbot Arena battles keep two conversations per record: conversation_a is read as the messages."""
    from curate.readers import plan, read_shard
    from curate.records import FieldNames

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CHAT_FILES:
            path = DATA / "instructions" / name
            if name.startswith("openai_messages_arena"):
                records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
                path = Path(tmp) / name
                path.write_text(
                    "".join(
                        json.dumps({"id": r["question_id"], "messages": r["conversation_a"]}) + "\n" for r in records
                    )
                )
            table, bad = read_shard(plan([str(path)], "auto", 10_000_000)[0], FieldNames())
            assert bad.num_rows == 0, f"{name}: {bad.num_rows} records quarantined"
            out[name] = table
    return out


def chat_key(name: str, table: pa.Table) -> list[str]:
    """The split key of each conversation: the ShareGPT sample by its id (the previous model's split),
    the others by file and position."""
    if name.startswith("sharegpt92k"):
        return table.column("id").to_pylist()
    return [f"{name}:{i}" for i in table.column("source_index").to_pylist()]


def negatives_only() -> dict[str, list[tuple[str, str]]]:
    """Clean texts that only train (source -> [(split key, text)]): OASST messages (key: the tree),
    Self-Instruct seed tasks, the assistant turns of HH-RLHF harmless-base's preferred replies (its
    human turns are red-team requests, not clean)."""
    inst = DATA / "instructions"
    oasst = []
    for line in (inst / "oasst_en_100_trees.jsonl").read_text().splitlines():
        tree = json.loads(line)
        stack = [tree["prompt"]]
        while stack:
            m = stack.pop()
            oasst.append((tree["message_tree_id"], m["text"]))
            stack += m.get("replies", [])
    seeds = [
        (r["id"], r["instruction"])
        for r in map(json.loads, (inst / "self_instruct_seed_tasks.jsonl").read_text().splitlines())
    ]
    hh = []
    with gzip.open(inst / "hh_rlhf_harmless_base_test.jsonl.gz", "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            for turn in re.split(r"\n\n(?=Human:|Assistant:)", json.loads(line)["chosen"]):
                if turn.startswith("Assistant:"):
                    hh.append((f"hh:{i}", turn.removeprefix("Assistant:").strip()))
    return {"oasst": oasst, "self_instruct": seeds, "hh_rlhf_chosen_assistant": hh}
