"""Every post-training shape issue 17 names, on the real records in ../shared/data/post_training:
read into the `messages` schema, written back in the input's format, round-tripped."""

from __future__ import annotations

import json

import pytest

from curate.readers import plan, read_shard
from curate.records import FieldNames
from tests.helpers import pipeline_yaml, run, write_jsonl
from tests.post_training_records import BFCL_SINGLE, POST_TRAINING, bfcl_records, hermes_records, load


def _read(path) -> tuple[list[dict], list[dict]]:
    rows, bad = [], []
    for shard in plan([str(path)], "auto", 100_000):
        t, q = read_shard(shard, FieldNames())
        rows += t.to_pylist()
        bad += q.to_pylist()
    return rows, bad


def _parsed(value):
    """JSON held in strings compared as what it means (the writers re-serialise it)."""
    if isinstance(value, dict):
        return {k: _parsed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_parsed(v) for v in value]
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return _parsed(json.loads(value))
        except json.JSONDecodeError:
            return value
    return value


def _round_trip(tmp_path, src, fmt: str) -> tuple[list[dict], dict]:
    y = pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", "[]")
    y.write_text(y.read_text().replace("output:\n", f"output:\n  format: {fmt}\n"))
    stats = run(y)
    back = [json.loads(line) for f in sorted((tmp_path / "out" / "kept_jsonl").glob("*.jsonl")) for line in f.open()]
    return back, stats


def _real(name: str, n: int) -> list[tuple[dict, dict]]:
    """(canonical row, input record) of a real file, every record read."""
    rows, bad = _read(POST_TRAINING / name)
    raw = load(name)
    assert len(rows) == len(raw) == n and not bad
    return list(zip(rows, raw))


def test_glaive_function_call_and_observation_turns():
    calls = answered = 0
    for row, rec in _real("glaive_toolcall_en_demo.jsonl.gz", 228):
        assert json.loads(row["tools"]) == [{"type": "function", "function": f} for f in json.loads(rec["tools"])]
        for m, orig in zip(row["messages"], rec["conversations"]):
            if orig["from"] == "function_call":
                want = json.loads(orig["value"])
                (call,) = m["tool_calls"]
                assert m["role"] == "assistant" and m["content"] == ""
                assert (
                    call["function"]["name"] == want["name"]
                    and json.loads(call["function"]["arguments"]) == want["arguments"]
                )
                calls += 1
                last = call
            elif orig["from"] == "observation":
                assert m["role"] == "tool" and m["tool_call_id"] == last["id"] and m["name"] == last["function"]["name"]
                assert m["content"] == orig["value"]
                answered += 1
            else:
                assert m["content"] == orig["value"] and m["tool_calls"] is None
    assert calls == answered == 158


def test_llamafactory_content_parts_reasoning_and_tool_calls():
    traces = ncalls = 0
    for row, rec in _real("reason_tool_use_demo_50.jsonl.gz", 42):
        assert json.loads(row["tools"]) == json.loads(rec["tools"])
        for m, orig in zip(row["messages"], rec["messages"]):
            by_type = {}
            for part in orig["content"]:
                by_type.setdefault(part["type"], []).append(part["value"])
            assert m["content"] == "\n\n".join(by_type.get("text", []))
            assert m["reasoning_content"] == ("\n\n".join(by_type["reasoning"]) if "reasoning" in by_type else None)
            want = [json.loads(v) for v in by_type.get("tool_call", [])]
            got = [
                {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
                for c in m["tool_calls"] or []
            ]
            assert got == want
            traces += "reasoning" in by_type
            ncalls += len(want)
    assert traces == 99 and ncalls == 59


@pytest.mark.parametrize("category", [*BFCL_SINGLE, "multi_turn_base"])
def test_bfcl_items_become_tool_call_conversations(tmp_path, category):
    items = bfcl_records(category)
    src = write_jsonl(tmp_path / f"{category}.jsonl", [r for r, _ in items])
    rows, bad = _read(src)
    assert len(rows) == len(items) and not bad
    for row, (record, expected) in zip(rows, items):
        assert row["id"] == record["id"]
        got = [
            [
                {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
                for c in m["tool_calls"]
            ]
            for m in row["messages"]
            if m["tool_calls"]
        ]
        assert got == expected  # the ground-truth calls, in order
        assert all(m["content"] == "" for m in row["messages"] if m["tool_calls"])
        assert (json.loads(row["tools"]) if row["tools"] else None) == record.get("tools")


def test_hermes_tool_call_tags(tmp_path):
    records = hermes_records()
    rows, bad = _read(write_jsonl(tmp_path / "hermes.jsonl", records))
    assert len(rows) == len(records) == 2 and not bad
    assistant = [m for r in rows for m in r["messages"] if m["role"] == "assistant"]
    assert [c["function"]["name"] for m in assistant for c in m["tool_calls"]] == [
        "calculate_distance",
        "generate_password",
    ]
    assert json.loads(assistant[0]["tool_calls"][0]["function"]["arguments"]) == {
        "origin": "New York",
        "destination": "Los Angeles",
        "mode": "car",
    }
    assert all(m["content"] == "" for m in assistant)


def _records_of(name):
    if name == "hermes":
        return hermes_records(), "sharegpt"
    if name.startswith("bfcl_"):
        return [r for r, _ in bfcl_records(name.removeprefix("bfcl_"))], "openai"
    return load(name), ("sharegpt" if name.startswith("glaive") else "openai")


@pytest.mark.parametrize(
    "name",
    [
        "glaive_toolcall_en_demo.jsonl.gz",
        "reason_tool_use_demo_50.jsonl.gz",
        "bfcl_parallel_multiple",
        "bfcl_multi_turn_base",
        "hermes",
    ],
)
def test_read_and_written_without_steps_round_trips(tmp_path, name):
    records, fmt = _records_of(name)
    src = write_jsonl(tmp_path / "in.jsonl", records)
    back, stats = _round_trip(tmp_path, src, fmt)
    assert stats["rows_kept"] == len(records) == len(back)
    for rec, out in zip(records, back):
        if "id" not in rec:
            out.pop("id")
        if name == "hermes":  # tags come back on lines of their own, JSON re-serialised
            for m in [*rec["conversations"], *out["conversations"]]:
                m["value"] = " ".join(
                    m["value"].replace("<tool_call>", " <tool_call> ").replace("</tool_call>", " </tool_call> ").split()
                )
            assert [m["from"] for m in out["conversations"]] == [m["from"] for m in rec["conversations"]]
            continue
        assert _parsed(out) == _parsed(rec)
        if name.startswith("glaive") or name.startswith("reason"):
            assert out == rec  # byte for byte, once parsed: strings of JSON come back as they were


def test_trace_fields_and_provenance_columns_round_trip(tmp_path):
    records = [
        {
            "id": "a",
            "source": "tulu-3",
            "license": "odc-by",
            "messages": [
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4", "reasoning_content": "add"},
            ],
        },
        {
            "id": "b",
            "generator": "r1",
            "messages": [
                {"role": "user", "content": "1+1?"},
                {"role": "assistant", "content": "2", "reasoning": "sum"},
            ],
        },
        {
            "id": "c",
            "category": "math",
            "messages": [
                {"role": "user", "content": "3+3?"},
                {"role": "assistant", "content": "6", "thinking": "plus"},
            ],
        },
        {
            "id": "d",
            "messages": [
                {"role": "user", "content": "w?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c9",
                            "type": "function",
                            "index": 0,
                            "function": {"name": "f", "arguments": {"x": 1}, "strict": True},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c9", "name": "f", "content": {"t": 20}},
                {"role": "assistant", "content": "20"},
            ],
        },
    ]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    rows, bad = _read(src)
    assert not bad
    assert [r["messages"][1]["reasoning_content"] for r in rows[:3]] == ["add", "sum", "plus"]
    assert [(r["source"], r["license"], r["generator"], r["category"]) for r in rows] == [
        ("tulu-3", "odc-by", None, None),
        (None, None, "r1", None),
        (None, None, None, "math"),
        (None, None, None, None),
    ]
    assert rows[3]["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"x": 1}'
    assert rows[3]["messages"][2]["content"] == '{"t": 20}' and rows[3]["messages"][2]["tool_call_id"] == "c9"
    back, _ = _round_trip(tmp_path, src, "openai")
    assert back == records


def test_a_sharegpt_trace_field_comes_back_as_a_field(tmp_path):
    records = [
        {
            "id": "s",
            "conversations": [
                {"from": "human", "value": "2+2?"},
                {"from": "gpt", "value": "4", "reasoning_content": "add"},
                {"from": "human", "value": "w?"},
                {"from": "function_call", "value": '{"name": "f", "arguments": {}, "id": "x1"}'},
                {"from": "observation", "value": "3"},
                {"from": "gpt", "value": "3"},
            ],
        }
    ]
    back, _ = _round_trip(tmp_path, write_jsonl(tmp_path / "in.jsonl", records), "sharegpt")
    assert back == records
