"""The real tool-call and reasoning records in ../shared/data/post_training, in the shapes tests need.

glaive (ShareGPT function_call / observation + a JSON-string `tools`) and LLaMA-Factory's
reason_tool_use demo (content parts of type reasoning / text / tool_call + `tools`) are read as they
are. Berkeley Function-Calling items are questions and function schemas, with the ground-truth calls
in a separate __possible_answer file: `bfcl_records` joins them into OpenAI conversations (the user's
question, then an assistant turn carrying the ground-truth calls). The Hermes transcripts in
few_shot are plain text; `hermes_records` cuts them into messages whose assistant text holds
`<tool_call>` tags.
"""

from __future__ import annotations

import ast
import gzip
import json
import re

from tests.helpers import SHARED_DATA

POST_TRAINING = SHARED_DATA / "post_training"
BFCL_SINGLE = ("simple_python", "multiple", "parallel", "parallel_multiple", "live_simple")


def load(name: str) -> list[dict]:
    with gzip.open(POST_TRAINING / name, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _first_choice(choices: list) -> tuple[bool, object]:
    """BFCL lists the accepted values of a parameter; "" (or no value at all) means it may be left out."""
    return (False, None) if not choices or choices[0] == "" else (True, choices[0])


def _ground_truth_call(call: dict) -> dict:
    ((name, params),) = call.items()
    args = {}
    for key, choices in params.items():
        present, value = _first_choice(choices)
        if present:
            args[key] = value
    return {"name": name, "arguments": args}


def _python_call(text: str) -> dict:
    """`cd(folder='document')` -> {"name": "cd", "arguments": {"folder": "document"}}; positional
    arguments (the multi-turn files have 28 in 855 calls, and no schemas to name them) as "$0"..."""
    expr = ast.parse(text, mode="eval").body
    args = {f"${k}": ast.literal_eval(a) for k, a in enumerate(expr.args)}
    args.update({kw.arg: ast.literal_eval(kw.value) for kw in expr.keywords})
    return {"name": ast.unparse(expr.func), "arguments": args}


def _assistant(calls: list[dict], turn: int) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{turn}_{k}",
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)},
            }
            for k, c in enumerate(calls)
        ],
    }


def bfcl_records(category: str) -> list[tuple[dict, list[list[dict]]]]:
    """(OpenAI record, ground-truth calls per assistant turn) for each BFCL item of `category`."""
    answers = {a["id"]: a["ground_truth"] for a in load(f"BFCL_v4_{category}__possible_answer.jsonl.gz")}
    out = []
    for item in load(f"BFCL_v4_{category}.jsonl.gz"):
        truth = answers[item["id"]]
        messages, expected = [], []
        if category.startswith("multi_turn"):
            for question, calls in zip(item["question"], truth):
                messages += question
                parsed = [_python_call(c) for c in calls]
                if parsed:
                    messages.append(_assistant(parsed, len(messages)))
                    expected.append(parsed)
            record = {"id": item["id"], "messages": messages}
        else:
            messages = list(item["question"][0])
            calls = [_ground_truth_call(c) for c in truth]
            messages.append(_assistant(calls, len(messages)))
            expected.append(calls)
            record = {
                "id": item["id"],
                "messages": messages,
                "tools": [{"type": "function", "function": f} for f in item["function"]],
            }
        out.append((record, expected))
    return out


_SPEAKER = re.compile(r"^(SYSTEM|USER|ASSISTANT):\s*", re.M)


def hermes_records() -> list[dict]:
    """few_shot's SYSTEM:/USER:/ASSISTANT: transcripts as ShareGPT rows (tags left in the text)."""
    out = []
    for i, row in enumerate(load("few_shot.jsonl.gz")):
        text = row["example"].strip().strip("`").strip()
        pieces = _SPEAKER.split(text)[1:]
        speaker = {"SYSTEM": "system", "USER": "human", "ASSISTANT": "gpt"}
        turns = [{"from": speaker[who], "value": said.strip()} for who, said in zip(pieces[0::2], pieces[1::2])]
        out.append({"id": f"hermes_{i}", "conversations": turns})
    return out
