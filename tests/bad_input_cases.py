"""The bad-input corpus: every case with the outcome it must have.

Record cases are lines of one ShareGPT JSONL file (so one run checks them all, through normalize,
format_rules and exact_dedup); each says whether the line is "kept" (a valid if odd record: kept or
rejected by a rule, never quarantined), "rejected:<reason>", or quarantined, with a fragment of
the error it must get.
File cases are whole inputs and the one-line error (or quarantine) they must produce.
"""

from __future__ import annotations

import json

GOOD = {"conversations": [{"from": "human", "value": "hello there"}, {"from": "gpt", "value": "hi!"}]}


def _conv(*turns, **extra):
    return json.dumps({"conversations": [{"from": f, "value": v} for f, v in turns], **extra}).encode()


# (name, line bytes, expected: "kept", "rejected:<reason>" or an error fragment for the quarantine)
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
    (
        "value_int",
        b'{"conversations": [{"from": "human", "value": 5}]}',
        "conversations[0].value: must be a string (got int)",
    ),
    ("value_null", b'{"conversations": [{"from": "human", "value": null}]}', "must be a string (got null)"),
    ("value_list", b'{"conversations": [{"from": "human", "value": ["a"]}]}', "must be a string (got list)"),
    (
        "role_int",
        b'{"conversations": [{"from": 1, "value": "hi"}]}',
        "conversations[0]: role must be a string (got int)",
    ),
    ("role_unknown", _conv(("narrator", "once upon a time")), "conversations[0]: unknown role 'narrator'"),
    ("invalid_utf8", b'{"conversations": [{"from": "human", "value": "caf\xe9 \xff"}]}', "invalid UTF-8 at byte"),
    (
        "raw_nul_byte",
        b'{"conversations": [{"from": "human", "value": "a\x00b"}]}',
        "invalid JSON: Invalid control character",
    ),
    ("lone_surrogate_escape", b'{"conversations": [{"from": "human", "value": "x \\ud800 y"}]}', "lone surrogate"),
    ("deeply_nested_json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (
        "id_object",
        b'{"id": {"a": 1}, "conversations": [{"from": "human", "value": "id is an object"}, {"from": "gpt", "value": "a"}]}',
        "kept",
    ),
    (
        "id_bool",
        b'{"id": true, "conversations": [{"from": "human", "value": "id is a bool"}, {"from": "gpt", "value": "a"}]}',
        "kept",
    ),
    (
        "openai_content_int",
        b'{"messages": [{"role": "user", "content": 5}]}',
        "messages[0].content: must be a string or a list of parts (got int)",
    ),
    (
        "openai_part_text_int",
        b'{"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}',
        "messages[0].content[0].text: must be a string (got int)",
    ),
    ("openai_messages_not_list", b'{"messages": {"role": "user"}}', "messages: must be a list (got dict)"),
    ("alpaca_output_int", b'{"instruction": "do it", "output": 5}', "output: must be a string (got int)"),
    (
        "alpaca_history_bad",
        b'{"instruction": "a", "output": "b", "history": [["only one"]]}',
        "history[0]: must be a [prompt, reply] pair",
    ),
    ("alpaca_missing_output", b'{"instruction": "do it", "input": ""}', "cannot tell the format"),
    (
        "truncated_mid_string",
        b'{"conversations": [{"from": "human", "value": "unterminated',
        "invalid JSON: Unterminated string",
    ),
    # Post-training shapes (tool calls, traces) that cannot be read.
    (
        "tools_not_list",
        _conv(("human", "hi"), ("gpt", "yo"), tools={"name": "f"}),
        "tools: must be a list of function schemas (got dict)",
    ),
    (
        "tools_string_not_json",
        _conv(("human", "hi"), ("gpt", "yo"), tools="[{"),
        "tools: a JSON string of tools that is not valid JSON",
    ),
    (
        "unknown_part_type",
        b'{"messages": [{"role": "user", "content": [{"type": "hologram", "value": "x"}]}]}',
        "messages[0].content[0].type: unknown content part type 'hologram'",
    ),
    (
        "function_call_not_json",
        _conv(("human", "hi"), ("function_call", "search(x)")),
        "conversations[1].value: a tool call must be JSON",
    ),
    (
        "tool_calls_not_list",
        b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": null, "tool_calls": "f()"}]}',
        "messages[1].tool_calls: must be a list (got str)",
    ),
    (
        "reasoning_not_string",
        b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning_content": 5}]}',
        "messages[1].reasoning_content: must be a string or null (got int)",
    ),
    # Odd but valid: kept, never lost.
    ("nul_escape_kept", b'{"conversations": [{"from": "human", "value": "a\\u0000b"}]}', "kept"),
    ("extra_fields_kept", _conv(("human", "q"), ("gpt", "a"), model="gpt-4", score=0.5), "kept"),
    (
        "int_id_kept",
        b'{"id": 7, "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "a"}]}',
        "kept",
    ),
    (
        "duplicate_id_1",
        b'{"id": "dup", "conversations": [{"from": "human", "value": "first"}, {"from": "gpt", "value": "a"}]}',
        "kept",
    ),
    (
        "duplicate_id_2",
        b'{"id": "dup", "conversations": [{"from": "human", "value": "second"}, {"from": "gpt", "value": "a"}]}',
        "kept",
    ),
    ("ten_mb_turn", _conv(("human", "summarise: " + "lorem ipsum " * 900_000), ("gpt", "ok")), "kept"),
    ("hundred_k_turns", _conv(*[("human" if i % 2 == 0 else "gpt", f"t{i}") for i in range(100_000)]), "kept"),
    ("crlf_line", json.dumps(GOOD).encode() + b"\r", "kept"),
    ("deep_html_text", _conv(("human", "<div>" * 20_000 + "x" + "</div>" * 20_000)), "kept"),
    ("mixed_scripts", _conv(("human", "Привет 你好 مرحبا hello"), ("gpt", "👋")), "kept"),
    (
        "openai_parts_kept",
        b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "x.png"}}]}]}',
        "kept",
    ),
    ("alpaca_kept", b'{"instruction": "add", "input": "1 and 2", "output": "3"}', "kept"),
    # Faults a step judges (tool_calls, reasoning): read and carried, never lost.
    (
        "arguments_not_json_kept",
        b'{"messages": [{"role": "user", "content": "w?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}',
        "kept",
    ),
    (
        "five_mb_trace_kept",
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "think"},
                    {"role": "assistant", "content": "done", "reasoning_content": "hmm " * 1_300_000},
                ]
            }
        ).encode(),
        "kept",
    ),
]

# Issue 21: bytes that are not UTF-8, JSON numbers at the edges, ids, turns that show nothing.
RECORD_CASES += [
    (
        "utf8_latin1",
        b'{"conversations": [{"from": "human", "value": "caf\xe9 au lait"}]}',
        "invalid UTF-8 at byte offset",
    ),
    (
        "utf8_ff_fe",
        b'{"conversations": [{"from": "human", "value": "\xff\xfe"}]}',
        "(byte 47 of the line: ff; invalid start byte)",
    ),
    (
        "utf8_encoded_surrogate",
        b'{"conversations": [{"from": "human", "value": "\xed\xa0\x80"}]}',
        "byte 47 of the line: ed",
    ),
    ("utf8_overlong", b'{"conversations": [{"from": "human", "value": "\xc0\xaf"}]}', "byte 47 of the line: c0"),
    ("utf8_truncated", b'{"conversations": [{"from": "human", "value": "\xe2\x82"}]}', "byte 47 of the line: e2 82"),
    ("utf8_five_byte", b'{"conversations": [{"from": "human", "value": "\xf8\x88\x80\x80\x80"}]}', "invalid UTF-8"),
    ("utf8_above_10ffff", b'{"conversations": [{"from": "human", "value": "\xf4\x90\x80\x80"}]}', "invalid UTF-8"),
    ("utf8_in_key", b'{"conversations": [{"fr\x80om": "human", "value": "x"}]}', "invalid UTF-8"),
    ("id_5000_digits", b'{"id": ' + b"7" * 5000 + b", " + _conv(("human", "long id"), ("gpt", "ok"))[1:], "kept"),
    (
        "id_negative_5000_digits",
        b'{"id": -' + b"8" * 5000 + b", " + _conv(("human", "long negative id"), ("gpt", "ok"))[1:],
        "kept",
    ),
    ("id_nan", b'{"id": NaN, ' + _conv(("human", "nan id"), ("gpt", "ok"))[1:], "kept"),
    ("id_minus_infinity", b'{"id": -Infinity, ' + _conv(("human", "-inf id"), ("gpt", "ok"))[1:], "kept"),
    ("id_1e400", b'{"id": 1e400, ' + _conv(("human", "overflowing id"), ("gpt", "ok"))[1:], "kept"),
    ("id_float", b'{"id": 1.5, ' + _conv(("human", "float id"), ("gpt", "ok"))[1:], "kept"),
    ("id_negative_zero", b'{"id": -0.0, ' + _conv(("human", "negative zero id"), ("gpt", "ok"))[1:], "kept"),
    ("id_list", b'{"id": [1, 2], ' + _conv(("human", "list id"), ("gpt", "ok"))[1:], "kept"),
    ("id_empty_string", b'{"id": "", ' + _conv(("human", "empty id"), ("gpt", "ok"))[1:], "kept"),
    ("id_int_one", b'{"id": 1, ' + _conv(("human", "int one"), ("gpt", "ok"))[1:], "kept"),
    ("id_str_one", b'{"id": "1", ' + _conv(("human", "string one"), ("gpt", "ok"))[1:], "kept"),
    ("id_suffix_taken", b'{"id": "1#2", ' + _conv(("human", "id that a rename would take"), ("gpt", "ok"))[1:], "kept"),
    (
        "nan_in_extra",
        b'{"score": NaN, "w": [Infinity, -Infinity, 1e999], ' + _conv(("human", "nan score"), ("gpt", "ok"))[1:],
        "kept",
    ),
    ("bigint_in_extra", b'{"n": ' + b"9" * 4400 + b", " + _conv(("human", "big extra"), ("gpt", "ok"))[1:], "kept"),
    (
        "nan_in_message_extra",
        b'{"conversations": [{"from": "human", "value": "q with a NaN weight", "weight": NaN}, {"from": "gpt", "value": "a"}]}',
        "kept",
    ),
    (
        "infinity_as_text",
        b'{"conversations": [{"from": "human", "value": Infinity}]}',
        "conversations[0].value: must be a string (got float)",
    ),
    (
        "bigint_as_text",
        b'{"conversations": [{"from": "human", "value": ' + b"1" * 5000 + b"}]}",
        "conversations[0].value: must be a string (got int)",
    ),
    (
        "repeated_key_top",
        b'{"conversations": [], "conversations": [{"from": "human", "value": "x"}]}',
        "invalid JSON: key 'conversations' repeated in one object",
    ),
    (
        "repeated_key_message",
        b'{"conversations": [{"from": "human", "value": "x", "value": "y"}]}',
        "invalid JSON: key 'value' repeated in one object",
    ),
    ("bom_mid_file", b"\xef\xbb\xbf" + _conv(("human", "after a cat of two files"), ("gpt", "ok")), "kept"),
    ("bom_twice", b"\xef\xbb\xbf\xef\xbb\xbf" + _conv(("human", "two boms"), ("gpt", "ok")), "kept"),
    ("bom_only", b"\xef\xbb\xbf", "invalid JSON: Expecting value"),
    ("crlf_escaped_in_string", _conv(("human", "line one\r\nline two"), ("gpt", "ok")), "kept"),
    (
        "raw_cr_in_string",
        b'{"conversations": [{"from": "human", "value": "a\rb"}]}',
        "invalid JSON: Invalid control character",
    ),
    (
        "raw_tab_vt_in_string",
        b'{"conversations": [{"from": "human", "value": "a\x0bb"}]}',
        "invalid JSON: Invalid control character",
    ),
    (
        "line_separator_in_string",
        _conv(("human", "para\u2028graph\u2029end"), ("gpt", "ok")).replace(b"\\u2028", "\u2028".encode()),
        "kept",
    ),
    ("lone_low_surrogate_escape", b'{"conversations": [{"from": "human", "value": "x \\udc00"}]}', "lone surrogate"),
    (
        "surrogate_pair_escape",
        b'{"conversations": [{"from": "human", "value": "smile \\ud83d\\ude00"}, {"from": "gpt", "value": "ok"}]}',
        "kept",
    ),
    ("utf16_line", '{"conversations": []}'.encode("utf-16-le"), "invalid JSON"),
    (
        "nested_extra_200",
        b'{"deep": ' + b"[" * 200 + b"]" * 200 + b", " + _conv(("human", "deep extra"), ("gpt", "ok"))[1:],
        "kept",
    ),
    ("nested_object_100k", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    ("invisible_key", b'{"conversations\xe2\x80\x8b": [{"from": "human", "value": "x"}]}', "cannot tell the format"),
    (
        "role_padded_and_upper",
        b'{"conversations": [{"from": " HUMAN ", "value": "shout"}, {"from": "GPT", "value": "ok"}]}',
        "kept",
    ),
    ("turn_zero_width_space", _conv(("human", "q zwsp"), ("gpt", "\u200b\u200b")), "rejected:empty_turn"),
    ("turn_zero_width_joiner", _conv(("human", "q zwj"), ("gpt", "\u200d\u200c")), "rejected:empty_turn"),
    (
        "turn_bidi_marks_isolates",
        _conv(("human", "q bidi"), ("gpt", "\u200e\u200f\u202a\u202e\u2066\u2067\u2068\u2069")),
        "rejected:empty_turn",
    ),
    ("turn_soft_hyphen", _conv(("human", "q shy"), ("gpt", "\u00ad")), "rejected:empty_turn"),
    ("turn_combining_grapheme_joiner", _conv(("human", "q cgj"), ("gpt", "\u034f \u034f")), "rejected:empty_turn"),
    ("turn_hangul_filler", _conv(("human", "q hangul"), ("gpt", "\u3164\u115f\u1160\uffa0")), "rejected:empty_turn"),
    ("turn_braille_blank", _conv(("human", "q braille"), ("gpt", "\u2800")), "rejected:empty_turn"),
    ("turn_zwj_inside_emoji_kept", _conv(("human", "q emoji"), ("gpt", "\U0001f469\u200d\U0001f4bb")), "kept"),
]


def record_corpus() -> bytes:
    """All record cases as one JSONL file: a BOM first, blank lines between (not records)."""
    lines = [b"\xef\xbb\xbf" + json.dumps(GOOD).encode()]  # BOM before the first record: kept
    for _, line, _ in RECORD_CASES:
        lines.append(line)
        lines.append(b"   ")  # whitespace-only lines are not records
    return b"\n".join(lines) + b"\n"
