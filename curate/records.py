"""Map one parsed input record (a dict) to the canonical row, or say why it cannot be.

Formats: ShareGPT (`conversations` of {from, value}), OpenAI (`messages` of {role, content}, content
a string or a list of parts) and Alpaca (`instruction`, `input`, `output`, optional `system` and
`history`). Parquet rows arrive here as dicts too, so every format is mapped by the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from curate import jsontext

FORMATS = ("sharegpt", "openai", "alpaca")

# Speaker names seen in the wild -> canonical role. ShareGPT dumps use human/gpt (and bing, bard,
# chatgpt for other assistants); LLaMA-Factory's tool data uses function_call/observation.
ROLE_MAP = {
    "system": "system",
    "human": "user",
    "user": "user",
    "prompter": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "assistant": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "tool": "tool",
    "function": "tool",
    "function_call": "tool",
    "observation": "tool",
    "ipython": "tool",
}


class RecordError(ValueError):
    """This record cannot be mapped; the message says why (it goes to quarantine)."""


@dataclass
class FieldNames:
    """Which input keys hold what; `input.columns` in the YAML overrides them."""

    id: str = "id"
    conversations: str | None = None  # default: "conversations" (ShareGPT), "messages" (OpenAI)
    role: str | None = None  # default: "from" (ShareGPT), "role" (OpenAI)
    text: str | None = None  # default: "value" (ShareGPT), "content" (OpenAI)
    instruction: str = "instruction"
    input: str = "input"
    output: str = "output"
    system: str = "system"
    history: str = "history"
    overrides: dict = field(default_factory=dict)


def detect_format(record: object, names: FieldNames) -> str | None:
    """The format a record looks like, or None."""
    if not isinstance(record, dict):
        return None
    if names.conversations and names.conversations in record:
        first = record[names.conversations]
        if isinstance(first, list) and first and isinstance(first[0], dict) and "content" in first[0]:
            return "openai"
        return "sharegpt"
    if "conversations" in record:
        return "sharegpt"
    if "messages" in record:
        return "openai"
    if names.instruction in record and names.output in record:
        return "alpaca"
    return None


def _type_name(value: object) -> str:
    return "null" if value is None else "int" if isinstance(value, jsontext.BigInt) else type(value).__name__


def _message_extra(msg: dict, skip: tuple[str, ...]) -> str | None:
    rest = {k: v for k, v in msg.items() if k not in skip}
    return jsontext.dumps(rest) if rest else None


def _role(raw: object, where: str) -> str:
    if not isinstance(raw, str):
        raise RecordError(f"{where}: role must be a string (got {_type_name(raw)})")
    role = ROLE_MAP.get(raw.strip().lower())
    if role is None:
        raise RecordError(f"{where}: unknown role {raw!r}; known: {', '.join(sorted(ROLE_MAP))}")
    return role


def _openai_content(content: object, where: str) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""  # assistant messages that only carry tool_calls
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                if part.get("type", "text") == "text":
                    text = part.get("text")
                    if not isinstance(text, str):
                        raise RecordError(f"{where}.content[{j}].text: must be a string (got {_type_name(text)})")
                    texts.append(text)
                # image/audio parts carry no text; they stay in the message's extra field
            else:
                raise RecordError(f"{where}.content[{j}]: must be an object or string (got {_type_name(part)})")
        return "\n\n".join(texts)
    raise RecordError(f"{where}.content: must be a string or a list of parts (got {_type_name(content)})")


def _messages(record: dict, fmt: str, names: FieldNames) -> tuple[list[dict], set[str]]:
    conv_key = names.conversations or ("conversations" if fmt == "sharegpt" else "messages")
    role_key = names.role or ("from" if fmt == "sharegpt" else "role")
    text_key = names.text or ("value" if fmt == "sharegpt" else "content")
    if conv_key not in record:
        raise RecordError(f"missing key {conv_key!r} (a {fmt} record needs it)")
    conv = record[conv_key]
    if not isinstance(conv, list):
        raise RecordError(f"{conv_key}: must be a list (got {_type_name(conv)})")
    if not conv:
        raise RecordError(f"{conv_key}: empty conversation")
    out = []
    for i, msg in enumerate(conv):
        where = f"{conv_key}[{i}]"
        if not isinstance(msg, dict):
            raise RecordError(f"{where}: must be an object (got {_type_name(msg)})")
        if role_key not in msg:
            raise RecordError(f"{where}: missing key {role_key!r}")
        if text_key not in msg:
            raise RecordError(f"{where}: missing key {text_key!r}")
        raw_role = msg[role_key]
        role = _role(raw_role, where)
        if fmt == "openai":
            text = _openai_content(msg[text_key], where)
            content = msg[text_key]
            skip = (role_key, text_key) if isinstance(content, str) or content is None else (role_key,)
        else:
            text = msg[text_key]
            if not isinstance(text, str):
                raise RecordError(f"{where}.{text_key}: must be a string (got {_type_name(text)})")
            skip = (role_key, text_key)
        out.append({"role": role, "text": text, "original_role": raw_role, "extra": _message_extra(msg, skip)})
    return out, {conv_key}


def _alpaca(record: dict, names: FieldNames) -> tuple[list[dict], set[str]]:
    used = {names.instruction, names.input, names.output, names.system, names.history}
    instruction = record.get(names.instruction)
    if not isinstance(instruction, str):
        raise RecordError(f"{names.instruction}: must be a string (got {_type_name(instruction)})")
    extra_input = record.get(names.input) or ""
    if not isinstance(extra_input, str):
        raise RecordError(f"{names.input}: must be a string (got {_type_name(extra_input)})")
    output = record.get(names.output)
    if not isinstance(output, str):
        raise RecordError(f"{names.output}: must be a string (got {_type_name(output)})")
    turns = []
    system = record.get(names.system)
    if system:
        if not isinstance(system, str):
            raise RecordError(f"{names.system}: must be a string (got {_type_name(system)})")
        turns.append({"role": "system", "text": system, "original_role": "system", "extra": None})
    history = record.get(names.history) or []
    if not isinstance(history, list):
        raise RecordError(f"{names.history}: must be a list of [prompt, reply] pairs (got {_type_name(history)})")
    for i, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise RecordError(f"{names.history}[{i}]: must be a [prompt, reply] pair of strings")
        turns.append({"role": "user", "text": pair[0], "original_role": "instruction", "extra": None})
        turns.append({"role": "assistant", "text": pair[1], "original_role": "output", "extra": None})
    prompt = f"{instruction}\n\n{extra_input}" if extra_input.strip() else instruction
    turns.append({"role": "user", "text": prompt, "original_role": "instruction", "extra": None})
    turns.append({"role": "assistant", "text": output, "original_role": "output", "extra": None})
    return turns, used


def to_row(record: object, fmt: str, names: FieldNames, default_id: str) -> dict:
    """The canonical row for `record` (without source and key columns), or RecordError."""
    if not isinstance(record, dict):
        raise RecordError(f"record must be a JSON object (got {_type_name(record)})")
    if fmt == "alpaca":
        turns, used = _alpaca(record, names)
    else:
        turns, used = _messages(record, fmt, names)
    row_id, id_rule = _row_id(record.get(names.id), default_id)
    used = used | {names.id}
    rest = {k: v for k, v in record.items() if k not in used}
    if id_rule is not None and id_rule != "float" and "original_id" not in rest:
        rest["original_id"] = record[names.id]  # the id the row could not keep
    return {
        "id": row_id,
        "conversations": turns,
        "extra": jsontext.dumps(rest) if rest else None,
        "id_rule": id_rule,
    }


def _row_id(raw: object, default_id: str) -> tuple[str, str | None]:
    """(the row's id, None or why the input's id was not used as written). The id rule:
    a string is kept as is; an integer is written in decimal (one of more than 4,300 digits too);
    a finite float becomes its shortest round-trip form ("1.5"); a missing, null or empty id, and
    one that is a boolean, NaN, infinity, object or list, becomes `<file>:<index>` (the record is
    never quarantined for its id; the input's value stays in the row's `original_id` field).
    Ids that collide after this (1 and "1", or a repeated id) are made unique after the run:
    see curate/ids.py."""
    if raw is None or raw == "":
        return default_id, None
    if isinstance(raw, str):
        return raw, None
    if isinstance(raw, bool):
        return default_id, "bool"
    if isinstance(raw, int):
        return str(raw), None
    if isinstance(raw, jsontext.BigInt):
        return raw.digits, None
    if isinstance(raw, float):
        return (repr(raw), "float") if math.isfinite(raw) else (default_id, "non_finite")
    return default_id, _type_name(raw)
