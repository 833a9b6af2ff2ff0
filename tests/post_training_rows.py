"""Rows in the post-training `messages` schema, for the reasoning / tool_calls / token_budget tests."""

from __future__ import annotations

import json

import pyarrow as pa

from curate.readers import row_key, rows_to_table


def msg(
    role: str,
    content: str = "",
    reasoning: str | None = None,
    calls=None,
    call_id: str | None = None,
    name: str | None = None,
) -> dict:
    """calls: [(name, arguments)] or [(id, name, arguments)]; arguments a dict (dumped) or a string."""
    tool_calls = None
    if calls is not None:
        tool_calls = []
        for k, c in enumerate(calls):
            cid, fname, args = c if len(c) == 3 else (f"call_{k}", *c)
            tool_calls.append(
                {
                    "id": cid,
                    "type": "function",
                    "function": {"name": fname, "arguments": args if isinstance(args, str) else json.dumps(args)},
                }
            )
    return {
        "role": role,
        "content": content,
        "reasoning_content": reasoning,
        "tool_calls": tool_calls,
        "tool_call_id": call_id,
        "name": name,
        "original_role": role,
        "extra": None,
    }


def table(conversations: list[list[dict]], tools: list | None = None) -> pa.Table:
    """Canonical rows (curate's row schema); tools: per row, a list (dumped to JSON), a string (as is) or None."""
    tools = tools if tools is not None else [None] * len(conversations)
    return rows_to_table(
        [
            {
                "id": f"r{i}",
                "messages": conv,
                "tools": t if t is None or isinstance(t, str) else json.dumps(t),
                "source_file": "test",
                "source_index": i,
                "_curate_key": row_key(0, i),
            }
            for i, (conv, t) in enumerate(zip(conversations, tools))
        ]
    )


def function(name: str, properties: dict | None = None, required: list | None = None, openai: bool = True) -> dict:
    fn = {
        "name": name,
        "description": f"{name} tool",
        "parameters": {"type": "object", "properties": properties or {}, "required": required or []},
    }
    return {"type": "function", "function": fn} if openai else fn


def reasons(out: pa.Table) -> list[str | None]:
    return out.column("_curate_drop_reason").to_pylist()
