"""Rows in the post-training `messages` schema, for the reasoning / tool_calls / token_budget tests."""

from __future__ import annotations

import json

import pyarrow as pa

from curate.readers import row_key

CALL = pa.struct([pa.field("id", pa.string()), pa.field("type", pa.string()),
                  pa.field("function", pa.struct([pa.field("name", pa.string()), pa.field("arguments", pa.string())]))])
TURN = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string()),
                  pa.field("reasoning_content", pa.string()), pa.field("tool_calls", pa.list_(CALL)),
                  pa.field("tool_call_id", pa.string()), pa.field("name", pa.string()),
                  pa.field("original_role", pa.string()), pa.field("extra", pa.string())])


def msg(role: str, content: str = "", reasoning: str | None = None, calls=None, call_id: str | None = None,
        name: str | None = None) -> dict:
    """calls: [(name, arguments)] or [(id, name, arguments)]; arguments a dict (dumped) or a string."""
    tool_calls = None
    if calls is not None:
        tool_calls = []
        for k, c in enumerate(calls):
            cid, fname, args = c if len(c) == 3 else (f"call_{k}", *c)
            tool_calls.append({"id": cid, "type": "function",
                               "function": {"name": fname, "arguments": args if isinstance(args, str) else json.dumps(args)}})
    return {"role": role, "content": content, "reasoning_content": reasoning, "tool_calls": tool_calls,
            "tool_call_id": call_id, "name": name, "original_role": role, "extra": None}


def table(conversations: list[list[dict]], tools: list | None = None) -> pa.Table:
    """tools: per row, a list (dumped to JSON), a string (as is) or None."""
    n = len(conversations)
    tools = tools if tools is not None else [None] * n
    tool_col = [t if t is None or isinstance(t, str) else json.dumps(t) for t in tools]
    cols = {
        "id": pa.array([f"r{i}" for i in range(n)], pa.string()),
        "messages": pa.array(conversations, pa.list_(TURN)),
        "tools": pa.array(tool_col, pa.string()),
        "source_file": pa.array(["test"] * n, pa.string()),
        "source_index": pa.array(range(n), pa.int64()),
        "extra": pa.nulls(n, pa.string()),
        "_curate_key": pa.array([row_key(0, i) for i in range(n)], pa.int64()),
    }
    for c in ("_curate_drop_step", "_curate_drop_reason", "_curate_drop_detail", "_curate_drop_span"):
        cols[c] = pa.nulls(n, pa.string())
    cols["_curate_drop_turn"] = pa.nulls(n, pa.int32())
    return pa.table(cols)


def function(name: str, properties: dict | None = None, required: list | None = None, openai: bool = True) -> dict:
    fn = {"name": name, "description": f"{name} tool",
          "parameters": {"type": "object", "properties": properties or {}, "required": required or []}}
    return {"type": "function", "function": fn} if openai else fn


def reasons(out: pa.Table) -> list[str | None]:
    return out.column("_curate_drop_reason").to_pylist()
