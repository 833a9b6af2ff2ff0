"""Real tool-call and reasoning records (../shared/data/post_training) in the input shapes users
have, and planted faults of every kind the reasoning and tool_calls steps name.

Three clean sets, as records a reader takes:
  glaive     LLaMA-Factory's glaive tool-call demo as it is (ShareGPT function_call / observation, tools)
  reasoning  LLaMA-Factory's reason_tool_use demo as OpenAI messages with the trace inline
             (`<think>\\n...\\n</think>\\n\\nanswer`, the OpenThoughts / R1 shape), calls as `tool_calls`
  bfcl       Berkeley Function-Calling items (simple, multiple, parallel, live) as a user turn and the
             assistant's ground-truth calls (the first acceptable value; a required one given), with the
             item's functions as `tools`: the set's target is the call, so it ends on it
"""

from __future__ import annotations

import copy
import gzip
import json
import random
from pathlib import Path

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "post_training"
BFCL_FILES = ("simple_python", "multiple", "parallel", "parallel_multiple", "live_simple")


def _jsonl(name: str) -> list[dict]:
    with gzip.open(DATA / name, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def glaive() -> list[dict]:
    return _jsonl("glaive_toolcall_en_demo.jsonl.gz")


def reasoning() -> list[dict]:
    out = []
    for rec in _jsonl("reason_tool_use_demo_50.jsonl.gz"):
        messages = []
        for m in rec["messages"]:
            parts = m["content"]
            trace = "\n".join(p["value"] for p in parts if p["type"] == "reasoning")
            text = "\n".join(p["value"] for p in parts if p["type"] == "text")
            calls = [json.loads(p["value"]) for p in parts if p["type"] == "tool_call"]
            msg = {"role": m["role"], "content": f"<think>\n{trace}\n</think>\n\n{text}" if trace else text}
            if calls:
                msg["tool_calls"] = [
                    {"type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                    for c in calls
                ]
            messages.append(msg)
        out.append({"messages": messages, "tools": rec["tools"]})
    return out


def _choose(options, required: bool = False):
    """BFCL lists the acceptable values of each argument, nested inside objects; "" = may be left
    out. The first one, resolved recursively; for a required argument, the first that is given."""
    options = options if isinstance(options, list) else [options]
    if required:
        options = [o for o in options if o != ""]
    return _resolve(options[0]) if options else ""


def _resolve(value, required=()):
    if isinstance(value, dict):
        return {k: c for k, c in ((k, _choose(v, k in required)) for k, v in value.items()) if c != ""}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


def bfcl() -> list[dict]:
    out = []
    for name in BFCL_FILES:
        answers = {a["id"]: a["ground_truth"] for a in _jsonl(f"BFCL_v4_{name}__possible_answer.jsonl.gz")}
        for item in _jsonl(f"BFCL_v4_{name}.jsonl.gz"):
            truth = answers.get(item["id"])
            if not truth:
                continue
            calls = []
            required = {f["name"]: set(f.get("parameters", {}).get("required", ())) for f in item["function"]}
            for call in truth:
                ((fname, args),) = call.items()
                chosen = _resolve(args, required.get(fname, ()))
                calls.append({"type": "function", "function": {"name": fname, "arguments": json.dumps(chosen)}})
            out.append(
                {
                    "id": item["id"],
                    "messages": item["question"][0] + [{"role": "assistant", "content": "", "tool_calls": calls}],
                    "tools": item["function"],
                }
            )
    return out


SETS = {"glaive": glaive, "reasoning": reasoning, "bfcl": bfcl}

# fault kind -> (the sets it is planted in, the reason the steps must give)
FAULTS = {
    "unclosed_trace": (("reasoning",), "reasoning_unclosed"),
    "empty_trace_required": (("reasoning",), "reasoning_empty"),
    "no_answer_after_trace": (("reasoning",), "reasoning_no_answer"),
    "two_traces": (("reasoning",), "reasoning_multiple"),
    "trace_in_user_turn": (("reasoning", "glaive"), "reasoning_in_user_turn"),
    "arguments_not_json": (("reasoning", "glaive", "bfcl"), "tool_arguments_not_json"),
    "unknown_function": (("reasoning", "glaive", "bfcl"), "tool_call_unknown_function"),
    "missing_required": (("reasoning", "glaive", "bfcl"), "tool_argument_missing"),
    "wrong_type": (("reasoning", "glaive", "bfcl"), "tool_argument_type"),
    "unanswered_call": (("reasoning", "glaive"), "tool_call_unanswered"),
    "orphan_result": (("reasoning", "glaive", "bfcl"), "tool_result_orphan"),
    "open_call_at_end": (("glaive",), "tool_call_open_at_end"),
}

# The steps each set runs through: a thinking-on set requires reasoning; BFCL items and 9 of the 42
# reason_tool_use records end on the assistant's call, their training target, so those two sets keep
# an open end (and the open-end fault is planted in glaive, whose conversations all end on an answer).
PIPELINES = {
    "reasoning": [{"reasoning": {"policy": "require"}}, {"tool_calls": {"open_end": "keep"}}],
    "glaive": [{"reasoning": {}}, {"tool_calls": {}}],
    "bfcl": [{"reasoning": {}}, {"tool_calls": {"open_end": "keep"}}],
}


# ----------------------------------------------------------------------------- turns, either shape


def _turns(rec: dict) -> list[dict]:
    return rec["conversations"] if "conversations" in rec else rec["messages"]


def _role(m: dict) -> str:
    r = m.get("role", m.get("from"))
    return {"human": "user", "gpt": "assistant", "function_call": "call", "observation": "tool"}.get(r, r)


def _calls_at(rec: dict) -> list[tuple[int, dict]]:
    """(turn, mutable call dict with name / arguments-as-dict) for every call; apply with _store."""
    out = []
    for i, m in enumerate(_turns(rec)):
        if _role(m) == "call":
            out.append((i, json.loads(m["value"])))
        for c in m.get("tool_calls") or ():
            out.append(
                (i, {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"]), "_ref": c})
            )
    return out


def _store(rec: dict, i: int, call: dict, raw_arguments: str | None = None) -> None:
    m = _turns(rec)[i]
    if "_ref" in call:
        call["_ref"]["function"]["name"] = call["name"]
        call["_ref"]["function"]["arguments"] = (
            raw_arguments if raw_arguments is not None else json.dumps(call["arguments"])
        )
    else:
        value = {"name": call["name"], "arguments": raw_arguments if raw_arguments is not None else call["arguments"]}
        m["value"] = json.dumps(value)


def _schema(rec: dict, name: str) -> dict | None:
    tools = rec.get("tools")
    tools = json.loads(tools) if isinstance(tools, str) else tools
    for t in tools or ():
        fn = t.get("function", t)
        if fn.get("name") == name:
            return fn.get("parameters") or {}
    return None


def _text_key(m: dict) -> str:
    return "value" if "value" in m else "content"


def _new_tool_message(rec: dict, content: str) -> dict:
    return {"from": "observation", "value": content} if "conversations" in rec else {"role": "tool", "content": content}


def plant(rec: dict, kind: str, rng: random.Random) -> dict | None:
    """A copy of `rec` with one fault of `kind`, or None where the record offers no place for it."""
    rec = copy.deepcopy(rec)
    turns = _turns(rec)
    roles = [_role(m) for m in turns]
    assistants = [i for i, r in enumerate(roles) if r == "assistant" and not turns[i].get("tool_calls")]
    final = assistants[-1] if assistants else None
    calls = _calls_at(rec)
    if kind in ("unclosed_trace", "empty_trace_required", "no_answer_after_trace", "two_traces"):
        if final is None or "</think>" not in turns[final]["content"]:
            return None
        trace, answer = turns[final]["content"].split("</think>", 1)
        trace = trace.replace("<think>", "")
        turns[final]["content"] = {
            "unclosed_trace": "<think>" + trace[: max(1, len(trace) // 2)],
            "empty_trace_required": "<think>\n\n</think>" + answer,
            "no_answer_after_trace": "<think>" + trace + "</think>\n\n",
            "two_traces": "<think>"
            + trace
            + "</think>"
            + answer
            + "\n\n<think>Let me double-check.</think>\n\n"
            + answer,
        }[kind]
        return rec
    if kind == "trace_in_user_turn":
        u = roles.index("user")
        key = _text_key(turns[u])
        turns[u][key] = "<think>\nThe user wants a quick answer.\n</think>\n\n" + turns[u][key]
        return rec
    if kind in ("arguments_not_json", "unknown_function", "missing_required", "wrong_type"):
        if not calls:
            return None
        i, call = calls[rng.randrange(len(calls))]
        args = call["arguments"]
        if kind == "arguments_not_json":
            _store(rec, i, call, raw_arguments=json.dumps(args)[:-1] if args else "{'a': 1")
            return rec
        if kind == "unknown_function":
            call["name"] += "_v2"
            _store(rec, i, call)
            return rec
        schema = _schema(rec, call["name"]) or {}
        if kind == "missing_required":
            present = [k for k in schema.get("required", ()) if k in args]
            if not present:
                return None
            del args[rng.choice(present)]
        else:
            props = schema.get("properties", {})
            typed = [
                k
                for k in args
                if isinstance(props.get(k), dict)
                and props[k].get("type") in ("string", "integer", "number", "float", "boolean")
            ]
            if not typed:
                return None
            k = rng.choice(typed)
            args[k] = 12345 if props[k]["type"] == "string" else "not a number"
        _store(rec, i, call)
        return rec
    call_turns = sorted({i for i, _ in calls})
    if kind == "unanswered_call":
        # drop the results of a call turn that an assistant answer follows
        for i in call_turns:
            j = i + 1
            while j < len(roles) and roles[j] == "tool":
                j += 1
            if j > i + 1 and j < len(roles) and roles[j] == "assistant":
                del turns[i + 1 : j]
                return rec
        return None
    if kind == "orphan_result":  # a result before any call was made
        turns.insert(roles.index("user") + 1, _new_tool_message(rec, '{"result": "ok"}'))
        return rec
    if kind == "open_call_at_end":
        if not call_turns or call_turns[-1] == len(turns) - 1:
            return None
        del turns[call_turns[-1] + 1 :]
        return rec
    raise ValueError(kind)
