"""The bad-input corpus: every case with the outcome it must have.

Record cases are lines of one ShareGPT JSONL file (so one run checks them all); each says whether
the line is kept (a valid if odd record) or quarantined, with a fragment of the error it must get.
File cases are whole inputs and the one-line error (or quarantine) they must produce.
"""

from __future__ import annotations

import json

GOOD = {"conversations": [{"from": "human", "value": "hello there"}, {"from": "gpt", "value": "hi!"}]}


def _conv(*turns, **extra):
    return json.dumps({"conversations": [{"from": f, "value": v} for f, v in turns], **extra}).encode()


# (name, line bytes, expected: "kept" or an error fragment for the quarantine)
RECORD_CASES: list[tuple[str, bytes, str]] = [
    ("truncated_json", b'{"conversations": [{"from": "human", "value": "hi"}', "invalid JSON"),
    ("two_objects_one_line", json.dumps(GOOD).encode() * 2, "invalid JSON: Extra data"),
    ("array_not_object", b"[1, 2, 3]", "record must be a JSON object (got list)"),
    ("bare_string", b'"hello"', "record must be a JSON object (got str)"),
    ("bare_number", b"42", "record must be a JSON object (got int)"),
    ("null_record", b"null", "record must be a JSON object (got null)"),
    ("no_known_keys", b'{"id": "x", "text": "hi"}', "cannot tell the format"),
    ("conversations_not_list", b'{"conversations": "hi"}', "conversations: must be a list (got str)"),
    ("conversations_empty", b'{"conversations": []}', "conversations: empty conversation"),
    ("message_not_object", b'{"conversations": ["hi"]}', "conversations[0]: must be an object (got str)"),
    ("message_missing_from", b'{"conversations": [{"value": "hi"}]}', "conversations[0]: missing key 'from'"),
    ("message_missing_value", b'{"conversations": [{"from": "human"}]}', "conversations[0]: missing key 'value'"),
    ("value_int", b'{"conversations": [{"from": "human", "value": 5}]}', "conversations[0].value: must be a string (got int)"),
    ("value_null", b'{"conversations": [{"from": "human", "value": null}]}', "must be a string (got null)"),
    ("value_list", b'{"conversations": [{"from": "human", "value": ["a"]}]}', "must be a string (got list)"),
    ("role_int", b'{"conversations": [{"from": 1, "value": "hi"}]}', "conversations[0]: role must be a string (got int)"),
    ("role_unknown", _conv(("narrator", "once upon a time")), "conversations[0]: unknown role 'narrator'"),
    ("invalid_utf8", b'{"conversations": [{"from": "human", "value": "caf\xe9 \xff"}]}', "invalid UTF-8 at byte"),
    ("raw_nul_byte", b'{"conversations": [{"from": "human", "value": "a\x00b"}]}', "invalid JSON: Invalid control character"),
    ("lone_surrogate_escape", b'{"conversations": [{"from": "human", "value": "x \\ud800 y"}]}', "lone surrogate"),
    ("deeply_nested_json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("id_object", b'{"id": {"a": 1}, "conversations": [{"from": "human", "value": "id is an object"}]}', "kept"),
    ("id_bool", b'{"id": true, "conversations": [{"from": "human", "value": "id is a bool"}]}', "kept"),
    ("openai_content_int", b'{"messages": [{"role": "user", "content": 5}]}', "messages[0].content: must be a string or a list of parts (got int)"),
    ("openai_part_text_int", b'{"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}', "messages[0].content[0].text: must be a string (got int)"),
    ("openai_messages_not_list", b'{"messages": {"role": "user"}}', "messages: must be a list (got dict)"),
    ("alpaca_output_int", b'{"instruction": "do it", "output": 5}', "output: must be a string (got int)"),
    ("alpaca_history_bad", b'{"instruction": "a", "output": "b", "history": [["only one"]]}', "history[0]: must be a [prompt, reply] pair"),
    ("alpaca_missing_output", b'{"instruction": "do it", "input": ""}', "cannot tell the format"),
    ("truncated_mid_string", b'{"conversations": [{"from": "human", "value": "unterminated', "invalid JSON: Unterminated string"),
    # Odd but valid: kept, never lost.
    ("nul_escape_kept", b'{"conversations": [{"from": "human", "value": "a\\u0000b"}]}', "kept"),
    ("extra_fields_kept", _conv(("human", "q"), ("gpt", "a"), model="gpt-4", score=0.5), "kept"),
    ("int_id_kept", b'{"id": 7, "conversations": [{"from": "human", "value": "hi"}]}', "kept"),
    ("duplicate_id_1", b'{"id": "dup", "conversations": [{"from": "human", "value": "first"}]}', "kept"),
    ("duplicate_id_2", b'{"id": "dup", "conversations": [{"from": "human", "value": "second"}]}', "kept"),
    ("ten_mb_turn", _conv(("human", "summarise: " + "lorem ipsum " * 900_000), ("gpt", "ok")), "kept"),
    ("hundred_k_turns", _conv(*[("human" if i % 2 == 0 else "gpt", f"t{i}") for i in range(100_000)]), "kept"),
    ("crlf_line", json.dumps(GOOD).encode() + b"\r", "kept"),
    ("deep_html_text", _conv(("human", "<div>" * 20_000 + "x" + "</div>" * 20_000)), "kept"),
    ("mixed_scripts", _conv(("human", "Привет 你好 مرحبا hello"), ("gpt", "👋")), "kept"),
    ("openai_parts_kept", b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "x.png"}}]}]}', "kept"),
    ("alpaca_kept", b'{"instruction": "add", "input": "1 and 2", "output": "3"}', "kept"),
]


def record_corpus() -> bytes:
    """All record cases as one JSONL file: a BOM first, blank lines between (not records)."""
    lines = [b"\xef\xbb\xbf" + json.dumps(GOOD).encode()]  # BOM before the first record: kept
    for _, line, _ in RECORD_CASES:
        lines.append(line)
        lines.append(b"   ")  # whitespace-only lines are not records
    return b"\n".join(lines) + b"\n"
