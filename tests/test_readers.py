"""Every input format maps to the same canonical row; globs, directories, .gz, overrides."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.readers import plan, read_shard
from curate.records import FieldNames
from tests.helpers import SHARED_DATA, pipeline_yaml, read_dir, run


def _read_all(paths, fmt="auto", names=None, shard_rows=100):
    rows, bad = [], []
    for s in plan([str(p) for p in paths], fmt, shard_rows):
        t, q = read_shard(s, names or FieldNames())
        rows += t.to_pylist()
        bad += q.to_pylist()
    return rows, bad


def test_sharegpt_json_array_real_file():
    src = SHARED_DATA / "instructions" / "sharegpt_llamafactory_glaive_toolcall_en_demo.json"
    rows, bad = _read_all([src], shard_rows=37)
    assert len(rows) == 200 and not bad
    roles = {m["role"] for r in rows for m in r["messages"]}
    assert roles <= {"system", "user", "assistant", "tool"}
    originals = {m["original_role"] for r in rows for m in r["messages"]}
    assert {"function_call", "observation", "human", "gpt"} <= originals
    assert [r["source_index"] for r in rows] == list(range(200))  # order kept across 6 shards
    assert json.loads(rows[0]["tools"])[0]["type"] == "function"  # the row's tools, a column


def test_openai_messages_real_file_and_parts(tmp_path):
    src = SHARED_DATA / "instructions" / "openai_messages_llamafactory_kto_en_demo.json"
    rows, bad = _read_all([src])
    assert len(rows) == 200 and not bad
    assert isinstance(json.loads(rows[0]["extra"])["label"], bool)
    parts = tmp_path / "parts.jsonl"
    parts.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is"},
                            {"type": "image_url", "image_url": {"url": "a.png"}},
                            {"type": "text", "text": "this?"},
                        ],
                    },
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                    },
                ]
            }
        )
        + "\n"
    )
    rows, bad = _read_all([parts])
    conv = rows[0]["messages"]
    assert [m["role"] for m in conv] == ["system", "user", "assistant"]
    assert conv[1]["content"] == "what is\n\nthis?"
    # the image part is kept where it was, for the writers
    assert json.loads(conv[1]["extra"])["_curate"]["parts"][1] == {
        "part": {"type": "image_url", "image_url": {"url": "a.png"}}
    }
    assert conv[2]["content"] == "" and conv[2]["tool_calls"] == [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]


def test_alpaca_real_file():
    src = SHARED_DATA / "instructions" / "alpaca_llamafactory_alpaca_en_demo.json"
    rows, bad = _read_all([src])
    assert len(rows) == 666 and not bad
    first = rows[0]["messages"]
    assert [m["role"] for m in first] == ["user", "assistant"]
    assert first[0]["content"] == "Describe a process of making crepes."
    with_input = next(r for r in rows if "\n\n" in r["messages"][0]["content"])
    assert with_input["messages"][0]["original_role"] == "instruction"


def test_jsonl_gz_glob_and_directory(tmp_path):
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    rec = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
    with gzip.open(d / "a.jsonl.gz", "wt") as f:
        f.write(json.dumps({"id": "a1", **rec}) + "\n")
    (d / "sub" / "b.jsonl").write_text(json.dumps({"id": "b1", **rec}) + "\n")
    (d / "notes.txt").write_text("not data")
    rows, _ = _read_all([d])
    assert [r["id"] for r in rows] == ["a1", "b1"]
    rows, _ = _read_all([str(d / "**" / "*.jsonl*")])
    assert sorted(r["id"] for r in rows) == ["a1", "b1"]
    rows, _ = _read_all([d / "a.jsonl.gz", d / "a.jsonl.gz"])  # the same file twice is read once
    assert len(rows) == 1


def test_parquet_with_column_mapping(tmp_path):
    msg = pa.struct([("speaker", pa.string()), ("content", pa.string())])
    table = pa.table(
        {
            "uid": ["p1", "p2"],
            "conv": pa.array(
                [
                    [{"speaker": "user", "content": "q1"}, {"speaker": "assistant", "content": "a1"}],
                    [{"speaker": "user", "content": "q2"}],
                ],
                pa.list_(msg),
            ),
            "score": [0.5, 0.9],
        }
    )
    pq.write_table(table, tmp_path / "x.parquet")
    names = FieldNames(id="uid", conversations="conv", role="speaker", text="content")
    rows, bad = _read_all([tmp_path / "x.parquet"], names=names)
    assert not bad
    assert [r["id"] for r in rows] == ["p1", "p2"]
    assert rows[0]["messages"][1]["content"] == "a1"
    assert json.loads(rows[1]["extra"]) == {"score": 0.9}


def test_parquet_mapping_through_yaml(tmp_path):
    pq.write_table(pa.table({"q": ["2+2?"], "a": ["4"]}), tmp_path / "alp.parquet")
    y = pipeline_yaml(
        tmp_path / "p.yaml",
        tmp_path / "alp.parquet",
        tmp_path / "out",
        "[]",
        extra="  format: parquet\n  columns: {instruction: q, output: a}\n",
    )
    stats = run(y)
    kept = read_dir(tmp_path / "out" / "kept").to_pylist()
    assert stats["rows_kept"] == 1
    assert [m["content"] for m in kept[0]["messages"]] == ["2+2?", "4"]


def test_format_override_quarantines_other_shapes(tmp_path):
    src = tmp_path / "x.jsonl"
    src.write_text(
        json.dumps({"instruction": "a", "output": "b"})
        + "\n"
        + json.dumps({"conversations": [{"from": "human", "value": "x"}]})
        + "\n"
    )
    rows, bad = _read_all([src], fmt="sharegpt")
    assert len(rows) == 1 and len(bad) == 1
    assert bad[0]["error"] == "missing key 'conversations' (a sharegpt record needs it)"


def test_ids_are_derived_deterministically(tmp_path):
    src = tmp_path / "noid.jsonl"
    src.write_text("\n".join(json.dumps({"conversations": [{"from": "human", "value": str(i)}]}) for i in range(3)))
    rows, _ = _read_all([src])
    assert [r["id"] for r in rows] == ["noid:0", "noid:1", "noid:2"]


@pytest.mark.parametrize("shard_rows", [1, 7, 1000])
def test_sharding_never_changes_what_is_read(shard_rows):
    src = SHARED_DATA / "instructions" / "sharegpt_fastchat_dummy_conversation.json"
    rows, _ = _read_all([src], shard_rows=shard_rows)
    assert len(rows) == 334
    assert [r["source_index"] for r in rows] == list(range(334))


def _jsonl_variants(tmp_path):
    """JSONL files the Arrow fast path reads, and ones it must hand to the record-by-record path."""
    import json as _json

    real = _json.loads((SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())
    clean = [
        {"id": r["id"], "conversations": [{"from": t["from"], "value": t["value"]} for t in r["conversations"]]}
        for r in real
    ]
    variants = {
        "clean": clean,
        "no_ids": [{"conversations": r["conversations"]} for r in clean[:50]]
        + [{"id": "", "conversations": clean[0]["conversations"]}],
        "int_ids": [{"id": i, "conversations": r["conversations"]} for i, r in enumerate(clean[:50])],
        "extra_keys": [dict(r, model="gpt-4") for r in clean[:50]],
        "message_extra": [{"id": "m", "conversations": [{"from": "human", "value": "hi", "markdown": "x"}]}]
        + clean[:5],
        "odd_roles": [
            {"id": "a", "conversations": [{"from": " Human ", "value": "hi"}, {"from": "ChatGPT", "value": "yo"}]}
        ],
        "unknown_role": [{"id": "a", "conversations": [{"from": "narrator", "value": "hi"}]}] + clean[:5],
        "null_value": [{"id": "a", "conversations": [{"from": "human", "value": None}]}] + clean[:5],
        "empty_conv": [{"id": "a", "conversations": []}] + clean[:5],
        "surrogate": [{"id": "a", "conversations": [{"from": "human", "value": "\ud800 lone"}]}] + clean[:5],
        "openai": [{"id": "o", "messages": [{"role": "user", "content": "hi"}]}],
        "function_call": [
            {
                "id": "f",
                "conversations": [
                    {"from": "human", "value": "hi"},
                    {"from": "function_call", "value": '{"name": "f", "arguments": {}}'},
                    {"from": "observation", "value": "1"},
                    {"from": "gpt", "value": "one"},
                ],
            }
        ]
        + clean[:5],
        "hermes": [
            {
                "id": "h",
                "conversations": [
                    {"from": "human", "value": "hi"},
                    {"from": "gpt", "value": '<tool_call>{"name": "f", "arguments": {}}</tool_call>'},
                ],
            }
        ]
        + clean[:5],
        "observation_alone": [
            {"id": "o", "conversations": [{"from": "human", "value": "hi"}, {"from": "observation", "value": "1"}]}
        ]
        + clean[:5],
    }
    for name, recs in variants.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(_json.dumps(r) + "\n" for r in recs) + "\n", encoding="utf-8")
        yield name, path


def test_fast_jsonl_path_equals_record_by_record(tmp_path):
    from curate.readers import _read_sharegpt_jsonl_fast, plan, read_shard, read_shard_by_record
    from curate.records import FieldNames

    used_fast = set()
    for name, path in _jsonl_variants(tmp_path):
        for shard in plan([str(path)], "auto", 40):
            fast = _read_sharegpt_jsonl_fast(shard, FieldNames())
            slow_rows, slow_bad = read_shard_by_record(shard, FieldNames())
            rows, bad = read_shard(shard, FieldNames())
            assert rows.equals(slow_rows) and bad.equals(slow_bad), name
            if fast is not None:
                used_fast.add(name)
                assert fast.equals(slow_rows), name
    assert {"clean", "no_ids", "odd_roles", "observation_alone"} <= used_fast
    assert not used_fast & {
        "int_ids",
        "extra_keys",
        "message_extra",
        "unknown_role",
        "null_value",
        "empty_conv",
        "surrogate",
        "openai",
        "function_call",
        "hermes",
    }


def test_byte_ranges_cut_anywhere_read_every_record_once(tmp_path, monkeypatch):
    """Ranges cut mid-line, on a newline, inside a run of blank lines, past a CRLF, with no final
    newline: every record is read once, with the record index and line number of a whole-file read."""
    import curate.readers as readers

    lines = []
    for i in range(60):
        lines.append(
            json.dumps(
                {
                    "id": f"r{i}",
                    "conversations": [{"from": "human", "value": "x" * (i * 37 % 500)}, {"from": "gpt", "value": "ok"}],
                }
            )
        )
        if i % 7 == 0:
            lines += ["", "   "]
        if i == 30:
            lines.append("{not json")
    src = tmp_path / "in.jsonl"
    src.write_bytes(("\r\n".join(lines[:20]) + "\r\n" + "\n".join(lines[20:])).encode())  # no final newline
    whole_rows, whole_bad = _read_all([src], shard_rows=10_000)
    assert len(whole_rows) == 60 and len(whole_bad) == 1
    for cut in (1, 2, 97, 500, 1024):
        monkeypatch.setattr(readers, "_range_bytes", lambda path, rows, cut=cut: cut)
        shards = plan([str(src)], "auto", 3)
        assert len(shards) > 5
        rows, bad = _read_all([src], shard_rows=3)
        assert [(r["id"], r["source_index"]) for r in rows] == [(r["id"], r["source_index"]) for r in whole_rows], cut
        assert bad == whole_bad, cut
        assert [s.index for s in shards] == list(range(len(shards)))


def test_the_driver_reads_only_the_head_of_a_jsonl_file(tmp_path, monkeypatch):
    """plan_ranges reads a file's first MB to size its ranges, never the rest of it."""
    import builtins

    from curate.readers import HEAD_SAMPLE_BYTES, plan_ranges

    src = tmp_path / "big.jsonl"
    line = json.dumps({"id": "a", "conversations": [{"from": "human", "value": "y" * 1000}]}) + "\n"
    src.write_text(line * 8000)  # 8 MB
    read = []
    real_open = builtins.open

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def read(self, n=-1):
            data = self.fh.read(n)
            read.append(len(data))
            return data

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(builtins, "open", lambda *a, **k: Counting(real_open(*a, **k)))
    ranges = plan_ranges([str(src)], "auto", 500)
    assert sum(read) <= HEAD_SAMPLE_BYTES
    assert len(ranges) == 16 and ranges[-1].end == src.stat().st_size


def test_a_shard_that_starts_with_null_is_quarantined_not_a_crash(tmp_path):
    """Arrow's JSON reader crashes the process on a block whose first line is `null` (pyarrow 26):
    the fast path must hand such a shard to the record-by-record reader."""
    good = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    src = tmp_path / "in.jsonl"
    src.write_text("null\n" + json.dumps(good) + "\n")
    out = tmp_path / "out"
    stats = run(pipeline_yaml(tmp_path / "p.yaml", src, out, "[]", extra="  shard_rows: 1\n"))
    assert stats["rows_kept"] == 1 and stats["rows_quarantined"] == 1
    assert read_dir(out / "quarantine").column("error").to_pylist() == ["record must be a JSON object (got null)"]
