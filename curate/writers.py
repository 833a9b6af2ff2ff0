"""Formats out: Parquet (always), and ShareGPT or OpenAI-messages JSONL for the kept set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Fixed writer settings: the same table must give the same bytes on every run and runner.
PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": True, "write_statistics": True}
# Work files between segments are written once and read once: a fast codec, no dictionaries or
# statistics (2-3x cheaper to write and read than the published files' zstd).
WORK_PARQUET_OPTIONS = {"compression": "lz4", "use_dictionary": False, "write_statistics": False}

# Canonical role -> the speaker name each format uses.
SHAREGPT_ROLES = {"user": "human", "assistant": "gpt", "system": "system", "tool": "tool"}


def write_parquet_atomic(table: pa.Table, path: Path, work: bool = False) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file.

    work=True: an intermediate file under _work/ (fast settings); else a published one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, **(WORK_PARQUET_OPTIONS if work else PARQUET_OPTIONS))
    os.replace(tmp, path)


def _record(row: dict, fmt: str) -> dict:
    extra = json.loads(row["extra"]) if row.get("extra") else {}
    messages = []
    for m in row["conversations"]:
        msg_extra = json.loads(m["extra"]) if m.get("extra") else {}
        if fmt == "sharegpt":
            # Tool turns keep their own name (function_call, observation); the rest use human/gpt.
            speaker = m["original_role"] if m["role"] == "tool" and m["original_role"] else SHAREGPT_ROLES[m["role"]]
            messages.append({"from": speaker, "value": m["text"], **msg_extra})
        else:
            messages.append({"role": m["role"], "content": m["text"], **msg_extra})
    key = "conversations" if fmt == "sharegpt" else "messages"
    return {"id": row["id"], key: messages, **extra}


def write_jsonl(table: pa.Table, path: Path, fmt: str) -> None:
    """The kept rows in the chosen chat format, one JSON object per line; input fields restored."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for batch in table.select(["id", "conversations", "extra"]).to_batches(max_chunksize=2048):
            f.writelines(json.dumps(_record(row, fmt), ensure_ascii=False) + "\n" for row in batch.to_pylist())
    os.replace(tmp, path)
