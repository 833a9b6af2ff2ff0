"""Map one parsed input record (a dict) to the canonical row, or say why it cannot be.

Formats: ShareGPT (`conversations` of {from, value}), OpenAI (`messages` of {role, content}, content
a string or a list of parts) and Alpaca (`instruction`, `input`, `output`, optional `system` and
`history`). Parquet rows arrive here as dicts too, so every format is mapped by the same code.

Post-training shapes are recognised in any of them, without configuration: OpenAI `tool_calls`
(arguments as JSON strings or objects), `tool` messages with `tool_call_id`, a row's `tools` (a list,
or a JSON string as glaive and LLaMA-Factory give it), traces in `reasoning_content` / `reasoning` /
`thinking` fields, LLaMA-Factory content parts (`{"type": "text" | "reasoning" | "tool_call",
"value": ...}`), ShareGPT `function_call` / `observation` turns, and Hermes `<tool_call>{json}</tool_call>`
tags in assistant text. Whatever differs from the OpenAI shape is noted under the `_curate` key of the
message's (or row's) `extra`, so the writers give each shape back.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass, field

from curate import jsontext
from curate.schema import PROVENANCE_COLUMNS

FORMATS = ("sharegpt", "openai", "alpaca")

# Speaker names seen in the wild -> canonical role. ShareGPT dumps use human/gpt (and bing, bard,
# chatgpt for other assistants); LLaMA-Factory's tool data uses function_call (the assistant
# calling) / observation (the tool's answer).
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
    "function_call": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
    "ipython": "tool",
}
# Speaker names whose text is a call (JSON), not prose: only the record-by-record path maps them.
CALL_ROLES = ("function_call",)

# Message keys that hold a trace, in the order they are looked for; the first one present is read.
REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")
# Content parts that carry no text: kept as they are (in the message's extra) and given back.
MEDIA_PARTS = ("image_url", "image", "input_image", "input_audio", "audio", "video", "file", "input_file")
TEXT_PARTS = ("text", "refusal", "input_text", "output_text")
TRACE_PARTS = ("reasoning", "thinking")
SHAPE = "_curate"  # key of extra that records how the input differed from the OpenAI shape
OWN_COLUMNS = ("extra", *PROVENANCE_COLUMNS)  # null in curate's own output: absent, not carried

_HERMES = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)


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
    tools: str = "tools"
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


def _dumps(value: object) -> str:
    return jsontext.dumps(value)


def _role(raw: object, where: str) -> str:
    if not isinstance(raw, str):
        raise RecordError(f"{where}: role must be a string (got {_type_name(raw)})")
    role = ROLE_MAP.get(raw.strip().lower())
    if role is None:
        raise RecordError(f"{where}: unknown role {raw!r}; known: {', '.join(sorted(ROLE_MAP))}")
    return role


def turn(
    role: str,
    content: str,
    original_role: str,
    extra: dict | None = None,
    shape: dict | None = None,
    reasoning: str | None = None,
    tool_calls: list | None = None,
    tool_call_id: str | None = None,
    name: str | None = None,
) -> dict:
    """One canonical turn (every MESSAGE_TYPE field)."""
    extra = dict(extra or {})
    if shape:
        extra[SHAPE] = shape
    return {
        "role": role,
        "content": content,
        "reasoning_content": reasoning,
        "tool_calls": tool_calls or None,
        "tool_call_id": tool_call_id,
        "name": name,
        "original_role": original_role,
        "extra": _dumps(extra) if extra else None,
    }


# --------------------------------------------------------------------------- tool calls


def _arguments(value: object, shape: dict) -> str:
    """Arguments as a JSON string: a string stays as the input had it (even if it is not JSON: the
    tool_calls step judges it), anything else is serialised and noted for the writers."""
    if isinstance(value, str):
        return value
    shape["args"] = "object"
    return _dumps(value)


def _call(name: object, arguments: object, call_id: str, where: str, shape: dict) -> dict:
    if not isinstance(name, str):
        raise RecordError(f"{where}.name: must be a string (got {_type_name(name)})")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": _arguments(arguments, shape)}}


def _openai_tool_calls(raw: object, where: str, index: int, shape: dict) -> list[dict] | None:
    """OpenAI `tool_calls`; a call without an id gets `call_<turn>_<k>`, one without `function`
    wrapping ({name, arguments} flat) is accepted and noted."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise RecordError(f"{where}.tool_calls: must be a list (got {_type_name(raw)})")
    calls = []
    for k, item in enumerate(raw):
        at = f"{where}.tool_calls[{k}]"
        if not isinstance(item, dict):
            raise RecordError(f"{at}: must be an object (got {_type_name(item)})")
        fn = item.get("function")
        if fn is None and "name" in item:
            fn, shape["flat"] = item, True
        if not isinstance(fn, dict):
            raise RecordError(f"{at}.function: must be an object with name and arguments (got {_type_name(fn)})")
        call_id = item.get("id")
        if call_id is None:
            call_id, shape["ids"] = f"call_{index}_{k}", False
        elif not isinstance(call_id, str):
            raise RecordError(f"{at}.id: must be a string (got {_type_name(call_id)})")
        call = _call(fn.get("name"), fn.get("arguments"), call_id, f"{at}.function", shape)
        rest = {k: v for k, v in item.items() if k not in ("id", "type", "function", "name", "arguments")}
        rest_fn = {k: v for k, v in fn.items() if k not in ("name", "arguments")} if fn is not item else {}
        if rest or rest_fn:  # e.g. a streaming "index": kept for the writers, nothing dropped
            shape.setdefault("call_extra", {})[str(k)] = [rest, rest_fn]
        if "type" in item:
            if not isinstance(item["type"], str):
                raise RecordError(f"{at}.type: must be a string (got {_type_name(item['type'])})")
            call["type"] = item["type"]
        elif not shape.get("flat"):
            shape["type"] = False
        calls.append(call)
    return calls


def _json_calls(text: str, where: str, index: int, first: int, shape: dict) -> list[dict]:
    """Calls written as JSON text ({"name", "arguments"} or a list of them): ShareGPT function_call
    turns, LLaMA-Factory tool_call parts. Text that is not such JSON is a RecordError."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise RecordError(
            f'{where}: a tool call must be JSON {{"name": ..., "arguments": ...}} (got {text[:60]!r})'
        ) from None
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list):
        shape["call"] = "list"
    calls = []
    for k, item in enumerate(items):
        if not isinstance(item, dict) or "name" not in item:
            raise RecordError(f"{where}: a tool call must be a JSON object with a name (got {_type_name(item)})")
        args = item.get("arguments")
        if isinstance(args, str):
            shape["args"] = "string"
        call = _call(item["name"], args, f"call_{index}_{first + k}", where, {})
        rest = {key: v for key, v in item.items() if key not in ("name", "arguments")}
        if rest:  # other keys of the call (an id, a type): kept for the writers
            shape.setdefault("call_extra", {})[str(first + k)] = [rest, {}]
        calls.append(call)
    shape["ids"] = False
    return calls


def _hermes_calls(text: str, index: int, shape: dict) -> tuple[str, list[dict] | None]:
    """Hermes `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks out of an assistant's
    text. A block that is not such JSON stays a call named "" with the block as its arguments, so
    the tool_calls step rejects it with its reason."""
    blocks = _HERMES.findall(text)
    if not blocks:
        return text, None
    calls = []
    for k, block in enumerate(blocks):
        try:
            value = json.loads(block)
        except (json.JSONDecodeError, RecursionError):
            value = None
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            args = value.get("arguments", value.get("parameters", {}))
            calls.append(
                {
                    "id": f"call_{index}_{k}",
                    "type": "function",
                    "function": {"name": value["name"], "arguments": args if isinstance(args, str) else _dumps(args)},
                }
            )
        else:
            calls.append(
                {"id": f"call_{index}_{k}", "type": "function", "function": {"name": "", "arguments": block.strip()}}
            )
    shape["hermes"], shape["ids"] = True, False
    return _HERMES.sub("", text).strip(), calls


# --------------------------------------------------------------------------- content and traces


def _part_text(part: dict, typ: str, where: str) -> tuple[str, str]:
    """(key, text) of a text-like part: OpenAI writes it under "text", LLaMA-Factory under "value"."""
    for key in ("text", "value", typ):
        if key in part:
            value = part[key]
            if not isinstance(value, str):
                raise RecordError(f"{where}.{key}: must be a string (got {_type_name(value)})")
            return key, value
    raise RecordError(f"{where}: a {typ!r} part needs a 'text' or 'value' string")


def _content_parts(content: list, where: str, index: int, shape: dict) -> tuple[str, str | None, list[dict]]:
    """(text, trace, calls) of a list of parts; the layout (types, keys, lengths, media parts) is
    noted so the writers rebuild the list."""
    texts: list[str] = []
    traces: list[str] = []
    calls: list[dict] = []
    layout: list = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if isinstance(part, str):
            texts.append(part)
            layout.append({"str": len(part)})
            continue
        if not isinstance(part, dict):
            raise RecordError(f"{at}: must be an object or string (got {_type_name(part)})")
        typ = part.get("type", "text")
        if typ in TEXT_PARTS or typ in TRACE_PARTS:
            key, value = _part_text(part, typ, at)
            (texts if typ in TEXT_PARTS else traces).append(value)
            rest = {k: v for k, v in part.items() if k not in ("type", key)}
            layout.append({"type": typ, "key": key, "len": len(value), **({"rest": rest} if rest else {})})
        elif typ == "tool_call":
            key, value = _part_text(part, typ, at)
            found = _json_calls(value, at, index, len(calls), shape)
            calls += found
            layout.append({"type": typ, "key": key, "calls": len(found)})
        elif typ in MEDIA_PARTS:
            layout.append({"part": part})
        else:
            known = ", ".join((*TEXT_PARTS, *TRACE_PARTS, "tool_call", *MEDIA_PARTS))
            raise RecordError(f"{at}.type: unknown content part type {typ!r}; known: {known}")
    shape["parts"] = layout
    return "\n\n".join(texts), ("\n\n".join(traces) if traces else None), calls


def _reasoning_field(msg: dict, where: str, shape: dict) -> tuple[str | None, str | None]:
    """(trace, key it was under) from the first REASONING_KEYS field present."""
    for key in REASONING_KEYS:
        if key in msg:
            value = msg[key]
            if value is not None and not isinstance(value, str):
                raise RecordError(f"{where}.{key}: must be a string or null (got {_type_name(value)})")
            if key != REASONING_KEYS[0]:
                shape["reasoning_key"] = key
            return value, key
    return None, None


# --------------------------------------------------------------------------- formats


def _own_schema(msg: dict) -> tuple[dict, dict | None]:
    """A turn of curate's own output (a kept set read back in): its null fields are absent, its
    `extra` JSON is the message's other fields (None: not such a turn)."""
    if not ("original_role" in msg and "extra" in msg and "reasoning_content" in msg):
        return msg, None
    carried = msg["extra"]
    try:
        carried = json.loads(carried) if isinstance(carried, str) else {}
    except json.JSONDecodeError:
        carried = {}
    own = {k: v for k, v in msg.items() if k != "extra" and not (v is None and k != "content")}
    return own, carried if isinstance(carried, dict) else {}


def _plain_turn(msg: dict, role_key: str, text_key: str, calls_open: bool) -> dict | None:
    """The turn of a message that is only a known role and a string (no calls, no trace, nothing
    else), without the general mapping's work; None for anything else."""
    if len(msg) != 2:
        return None
    raw_role, content = msg.get(role_key), msg.get(text_key)
    if not (isinstance(raw_role, str) and isinstance(content, str)) or raw_role in CALL_ROLES:
        return None
    role = ROLE_MAP.get(raw_role) or ROLE_MAP.get(raw_role.strip().lower())
    if role is None or (role == "assistant" and "<tool_call>" in content) or (role == "tool" and calls_open):
        return None
    return {
        "role": role,
        "content": content,
        "reasoning_content": None,
        "tool_calls": None,
        "tool_call_id": None,
        "name": None,
        "original_role": raw_role,
        "extra": None,
    }


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
    open_calls: list[dict] = []  # calls not answered yet, for tool turns that do not name theirs
    for i, msg in enumerate(conv):
        where = f"{conv_key}[{i}]"
        if not isinstance(msg, dict):
            raise RecordError(f"{where}: must be an object (got {_type_name(msg)})")
        plain = _plain_turn(msg, role_key, text_key, bool(open_calls))
        if plain is not None:  # most turns: a role and a string, nothing else to map
            out.append(plain)
            continue
        msg, carried = _own_schema(msg)
        if role_key not in msg:
            raise RecordError(f"{where}: missing key {role_key!r}")
        if text_key not in msg and not (
            fmt == "openai" and ("tool_calls" in msg or any(k in msg for k in REASONING_KEYS))
        ):
            raise RecordError(f"{where}: missing key {text_key!r}")
        raw_role = msg[role_key]
        role = _role(raw_role, where)
        shape: dict = {}
        used = {role_key, text_key, "original_role"}
        content = msg.get(text_key)
        reasoning, reasoning_key = _reasoning_field(msg, where, shape)
        used.add(reasoning_key)
        if reasoning_key and fmt == "sharegpt":
            shape["reasoning_key"] = reasoning_key  # ShareGPT writers put traces in <think> tags otherwise
        calls: list[dict] | None = None
        if raw_role.strip().lower() in CALL_ROLES:
            if not isinstance(content, str):
                raise RecordError(f"{where}.{text_key}: must be a string (got {_type_name(content)})")
            calls, content = _json_calls(content, f"{where}.{text_key}", i, 0, shape), ""
        elif isinstance(content, list) and fmt == "openai":
            content, trace, calls = _content_parts(content, where, i, shape)
            if trace is not None:
                reasoning = trace if reasoning is None else reasoning + "\n\n" + trace
        elif content is None and fmt == "openai":
            content = ""  # assistant messages that only carry tool_calls (OpenAI writes null)
            shape["null"] = True
        elif role == "tool" and isinstance(content, (dict, list)) and fmt == "openai":
            content, shape["json"] = _dumps(content), True  # a tool's result given as an object
        elif not isinstance(content, str):
            what = "a string or a list of parts" if fmt == "openai" else "a string"
            raise RecordError(f"{where}.{text_key}: must be {what} (got {_type_name(content)})")
        if "tool_calls" in msg:
            used.add("tool_calls")
            listed = _openai_tool_calls(msg["tool_calls"], where, i, shape)
            calls = (calls or []) + (listed or []) or None
            if listed is not None and content == "" and not shape.get("null"):
                shape["empty"] = True  # "" rather than null beside the calls
        if role == "assistant" and not calls and "<tool_call>" in content:
            content, calls = _hermes_calls(content, i, shape)
        tool_call_id = name = None
        if role == "tool":
            tool_call_id, name = msg.get("tool_call_id"), msg.get("name")
            for key, value in (("tool_call_id", tool_call_id), ("name", name)):
                if value is not None and not isinstance(value, str):
                    raise RecordError(f"{where}.{key}: must be a string (got {_type_name(value)})")
            used |= {"tool_call_id", "name"}
            if tool_call_id is None and open_calls and fmt == "sharegpt":
                # ShareGPT answers calls in order; the id is ours, so writers leave it out
                answered = open_calls.pop(0)
                tool_call_id = answered["id"]
                name = name or answered["function"]["name"]
            elif tool_call_id is not None:
                open_calls = [c for c in open_calls if c["id"] != tool_call_id]
        if calls:
            open_calls = list(calls)
        extra = {k: v for k, v in msg.items() if k not in used}
        if carried is not None:
            # the published null of a call-only turn is not the input's shape; what was is carried
            shape.pop("null", None)
            shape.update(carried.pop(SHAPE, {}))
            extra.update(carried)
        out.append(
            turn(role, content, msg.get("original_role", raw_role), extra, shape, reasoning, calls, tool_call_id, name)
        )
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
        turns.append(turn("system", system, "system"))
    history = record.get(names.history) or []
    if not isinstance(history, list):
        raise RecordError(f"{names.history}: must be a list of [prompt, reply] pairs (got {_type_name(history)})")
    for i, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise RecordError(f"{names.history}[{i}]: must be a [prompt, reply] pair of strings")
        turns.append(turn("user", pair[0], "instruction"))
        turns.append(turn("assistant", pair[1], "output"))
    prompt = f"{instruction}\n\n{extra_input}" if extra_input.strip() else instruction
    turns.append(turn("user", prompt, "instruction"))
    turns.append(turn("assistant", output, "output"))
    return turns, used


def _tools(value: object, key: str, shape: dict) -> str | None:
    """The row's tool schema as a JSON string of OpenAI-style {"type": "function", "function": {...}}
    entries. A JSON string (glaive, LLaMA-Factory) is parsed; bare {name, description, parameters}
    entries (glaive, BFCL) are wrapped; both noted so the writers give the input's shape back."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            shape["tools"] = value
            return None
        out, wrapped = _tools_string(value, key)
        shape["tools_string"] = True
        if wrapped:
            shape["tools_wrapped"] = list(wrapped)
        return out
    return _tools_list(value, key, shape)


@functools.lru_cache(maxsize=256)
def _tools_string(value: str, key: str) -> tuple[str | None, tuple[int, ...]]:
    """A JSON string of tools, parsed and normalised once: sets repeat the same tools on many rows."""
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, RecursionError) as e:
        raise RecordError(f"{key}: a JSON string of tools that is not valid JSON ({e.msg})") from None
    shape: dict = {}
    out = _tools_list(parsed, key, shape)
    return out, tuple(shape.get("tools_wrapped", ()))


def _tools_list(value: object, key: str, shape: dict) -> str:
    if not isinstance(value, list):
        raise RecordError(f"{key}: must be a list of function schemas (got {_type_name(value)})")
    out, wrapped = [], []
    for k, item in enumerate(value):
        if not isinstance(item, dict):
            raise RecordError(f"{key}[{k}]: must be an object (got {_type_name(item)})")
        if "function" not in item and "name" in item:
            item = {"type": "function", "function": item}
            wrapped.append(k)
        out.append(item)
    if wrapped:
        shape["tools_wrapped"] = wrapped
    return _dumps(out)


def to_row(record: object, fmt: str, names: FieldNames, default_id: str) -> dict:
    """The canonical row for `record` (without source and key columns), or RecordError."""
    if not isinstance(record, dict):
        raise RecordError(f"record must be a JSON object (got {_type_name(record)})")
    if fmt == "alpaca":
        turns, used = _alpaca(record, names)
    else:
        turns, used = _messages(record, fmt, names)
    row_id, id_rule = _row_id(record.get(names.id), default_id)
    shape: dict = {}
    tools = _tools(record.get(names.tools), names.tools, shape)
    used = used | {names.id, names.tools}
    row = {"id": row_id, "messages": turns, "tools": tools, "id_rule": id_rule}
    for column in PROVENANCE_COLUMNS:
        value = record.get(column)
        if isinstance(value, str):
            row[column] = value
            used.add(column)
    rest = {k: v for k, v in record.items() if k not in used and not (k in OWN_COLUMNS and v is None)}
    if isinstance(rest.get("extra"), str) and "source_file" in record:  # curate's own output read back in
        try:
            carried = json.loads(rest.pop("extra"))
        except json.JSONDecodeError:
            carried = {}
        shape.update(carried.pop(SHAPE, {}) if isinstance(carried, dict) else {})
        rest.update(carried if isinstance(carried, dict) else {})
    if id_rule is not None and id_rule != "float" and "original_id" not in rest:
        rest["original_id"] = record[names.id]  # the id the row could not keep
    if shape:
        rest[SHAPE] = shape
    row["extra"] = _dumps(rest) if rest else None
    return row


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
