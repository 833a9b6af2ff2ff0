"""Formats out: Parquet (always), and ShareGPT or OpenAI-messages JSONL for the kept set.

The JSONL writers give back the shape each row was read in (content parts, JSON-string tools,
function_call turns, Hermes tags, where the trace was), from what the readers noted under the
`_curate` key of `extra`: a row read and written without steps round-trips.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.records import SHAPE, TEXT_PARTS, TRACE_PARTS
from curate.schema import MESSAGES, PROVENANCE_COLUMNS

# Fixed writer settings: the same table must give the same bytes on every run and runner.
PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": True, "write_statistics": True}

# Canonical role -> the speaker name each format uses.
SHAREGPT_ROLES = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to; renamed to `path` once the block succeeds, so a
    reader (or a --resume after a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    yield tmp
    os.replace(tmp, path)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """One chunk per column first: Parquet's pages are cut at chunk ends too, so the same rows in
    other chunks would give other bytes (the steps see a shard in slices: engine.MAP_BATCH_ROWS)."""
    with atomic_path(path) as tmp:
        pq.write_table(table.combine_chunks(), tmp, **PARQUET_OPTIONS)


# Part of every run's fingerprint: --resume never reads work files written in another format.
WORK_FILE_FORMAT = "arrow-ipc"


def write_work_atomic(table: pa.Table, path: Path) -> None:
    """An intermediate file under _work/, written once and read once by the next phase: Arrow IPC,
    uncompressed, so writing is a copy and reading a memory map. A 20k-row shard (54 MB) took
    142 ms to write and 105 ms to read as LZ4 Parquet; 16 ms and 1 ms this way, for 1.7x the disk."""
    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read_work(path: Path) -> pa.Table:
    """A file write_work_atomic wrote (memory-mapped: pages are read as they are used)."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def _arguments_out(arguments: str, as_object: bool):
    if not as_object:
        return arguments
    try:
        return json.loads(arguments)
    except (json.JSONDecodeError, RecursionError):
        return arguments  # a step may have been told to keep what is not JSON


def _call_json(call: dict, as_object: bool = True, rest: dict | None = None) -> dict:
    """A call as ShareGPT function_call turns and LLaMA-Factory tool_call parts write it."""
    fn = call["function"]
    return {"name": fn["name"], "arguments": _arguments_out(fn["arguments"], as_object), **(rest or {})}


def _rest(shape: dict, k: int) -> dict:
    return shape.get("call_extra", {}).get(str(k), ({}, {}))[0]


def _openai_calls(calls: list[dict], shape: dict) -> list[dict]:
    out = []
    for k, call in enumerate(calls):
        fn = {
            "name": call["function"]["name"],
            "arguments": _arguments_out(call["function"]["arguments"], shape.get("args") == "object"),
        }
        rest, rest_fn = shape.get("call_extra", {}).get(str(k), ({}, {}))
        if shape.get("flat"):
            out.append({**({"id": call["id"]} if shape.get("ids", True) else {}), **fn, **rest})
            continue
        item = {"id": call["id"]} if shape.get("ids", True) else {}
        if shape.get("type", True):
            item["type"] = call["type"]
        out.append({**item, "function": {**fn, **rest_fn}, **rest})
    return out


def _split(text: str, lengths: list[int]) -> list[str]:
    """`text` cut back into the parts it was joined from ("\n\n" between them) when it is unchanged;
    after a step rewrote it, all of it in the first part."""
    if len(lengths) > 1 and sum(lengths) + 2 * (len(lengths) - 1) == len(text):
        pieces, at = [], 0
        for n in lengths:
            pieces.append(text[at : at + n])
            at += n + 2
        if "\n\n".join(pieces) == text:
            return pieces
    return [text] + [""] * (len(lengths) - 1)


def _parts_out(m: dict, layout: list, shape: dict) -> list:
    """The list of content parts the input had, rebuilt from the turn's fields."""
    texts = iter(
        _split(
            m["content"], [p.get("len", p.get("str", 0)) for p in layout if "str" in p or p.get("type") in TEXT_PARTS]
        )
    )
    traces = iter(_split(m["reasoning_content"] or "", [p["len"] for p in layout if p.get("type") in TRACE_PARTS]))
    calls = iter(enumerate(m["tool_calls"] or []))
    out = []
    for p in layout:
        if "part" in p:
            out.append(p["part"])
        elif "str" in p:
            out.append(next(texts))
        elif p["type"] == "tool_call":
            found = [
                _call_json(c, rest=_rest(shape, k))
                for k, c in (next(calls, (0, None)) for _ in range(p["calls"]))
                if c is not None
            ]
            out.append(
                {"type": "tool_call", p["key"]: json.dumps(found[0] if len(found) == 1 else found, ensure_ascii=False)}
            )
        else:
            value = next(traces) if p["type"] in TRACE_PARTS else next(texts)
            out.append({"type": p["type"], p["key"]: value, **p.get("rest", {})})
    return out


def _think(m: dict) -> str:
    """ShareGPT has no trace field: a trace goes back into the text, in <think> tags."""
    return f"<think>\n{m['reasoning_content']}\n</think>\n\n" if m.get("reasoning_content") is not None else ""


def _hermes(content: str, calls: list[dict]) -> str:
    blocks = [
        "<tool_call>\n"
        + (json.dumps(_call_json(c), ensure_ascii=False) if c["function"]["name"] else c["function"]["arguments"])
        + "\n</tool_call>"
        for c in calls
    ]
    return "\n".join([content, *blocks] if content else blocks)


def _sharegpt_turns(m: dict, shape: dict, msg_extra: dict) -> list[dict]:
    calls = m["tool_calls"] or []
    if m["role"] == "assistant" and calls and not shape.get("hermes"):
        # One function_call turn per call list (LLaMA-Factory's shape), after any text the turn had.
        values = [_call_json(c, shape.get("args") != "string", _rest(shape, k)) for k, c in enumerate(calls)]
        value = json.dumps(values if len(values) > 1 or shape.get("call") == "list" else values[0], ensure_ascii=False)
        head = (
            [{"from": "gpt", "value": _think(m) + m["content"]}] if m["content"] or m.get("reasoning_content") else []
        )
        return head + [{"from": "function_call", "value": value, **msg_extra}]
    # Tool turns keep their own name (observation, function, tool); the rest use human/gpt.
    speaker = m["original_role"] if m["role"] == "tool" and m["original_role"] else SHAREGPT_ROLES[m["role"]]
    content = _hermes(m["content"], calls) if shape.get("hermes") else m["content"]
    out = {"from": speaker, "value": content if shape.get("reasoning_key") else _think(m) + content, **msg_extra}
    if shape.get("reasoning_key"):
        out[shape["reasoning_key"]] = m["reasoning_content"]
    return [out]


def _openai_message(m: dict, shape: dict, msg_extra: dict) -> dict:
    calls = m["tool_calls"] or []
    if shape.get("parts") is not None:
        content = _parts_out(m, shape["parts"], shape)
    elif shape.get("hermes"):
        content = _hermes(m["content"], calls)
    elif shape.get("json"):
        content = json.loads(m["content"])
    elif m["content"] == "" and (shape.get("null") or (calls and not shape.get("empty"))):
        content = None  # OpenAI's shape of a call-only assistant turn
    else:
        content = m["content"]
    out = {"role": m["role"], "content": content}
    in_parts = shape.get("parts") is not None and any(p.get("type") in TRACE_PARTS for p in shape["parts"])
    if m.get("reasoning_content") is not None and not in_parts:
        out[shape.get("reasoning_key", "reasoning_content")] = m["reasoning_content"]
    in_content = shape.get("hermes") or (
        shape.get("parts") is not None and any(p.get("type") == "tool_call" for p in shape["parts"])
    )
    if calls and not in_content:
        out["tool_calls"] = _openai_calls(calls, shape)
    if m["role"] == "tool":
        if m["tool_call_id"] is not None:
            out["tool_call_id"] = m["tool_call_id"]
        if m["name"] is not None:
            out["name"] = m["name"]
    return {**out, **msg_extra}


def _tools_out(tools: str, shape: dict):
    value = json.loads(tools)
    for k in shape.get("tools_wrapped", ()):
        value[k] = value[k]["function"]
    return json.dumps(value, ensure_ascii=False) if shape.get("tools_string") else value


def _record(row: dict, fmt: str) -> dict:
    extra = json.loads(row["extra"]) if row.get("extra") else {}
    shape = extra.pop(SHAPE, {})
    messages = []
    for m in row["messages"]:
        msg_extra = json.loads(m["extra"]) if m.get("extra") else {}
        msg_shape = msg_extra.pop(SHAPE, {})
        if fmt == "sharegpt":
            messages += _sharegpt_turns(m, msg_shape, msg_extra)
        else:
            messages.append(_openai_message(m, msg_shape, msg_extra))
    key = "conversations" if fmt == "sharegpt" else "messages"
    out = {"id": row["id"], key: messages}
    if row.get("tools") is not None:
        out["tools"] = _tools_out(row["tools"], shape)
    elif "tools" in shape:
        out["tools"] = shape["tools"]
    out.update({c: row[c] for c in PROVENANCE_COLUMNS if row.get(c) is not None})
    return {**out, **extra}


def write_jsonl(table: pa.Table, path: Path, fmt: str) -> None:
    """The kept rows in the chosen chat format, one JSON object per line; input fields restored."""
    columns = ["id", MESSAGES, "tools", *PROVENANCE_COLUMNS, "extra"]
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for batch in table.select(columns).to_batches(max_chunksize=2048):
            f.writelines(json.dumps(_record(row, fmt), ensure_ascii=False) + "\n" for row in batch.to_pylist())
