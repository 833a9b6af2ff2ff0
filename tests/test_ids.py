"""Ids unique in the kept set (curate/ids.py): the collision rule, across files and shards, in
every output format, and the input's id kept."""

from __future__ import annotations

import json

import pyarrow as pa

from curate.ids import _new_ids, id_hashes
from tests.helpers import pipeline_yaml, read_dir, run, write_jsonl


def _conv(text):
    return [{"from": "human", "value": text}, {"from": "gpt", "value": "ok"}]


def test_same_file_name_in_two_folders_and_repeated_ids(tmp_path):
    # no ids: both files give x:0, x:1; "x:0#2" is an id of its own in the second file
    write_jsonl(tmp_path / "in" / "a" / "x.jsonl", [{"conversations": _conv("a0")}, {"conversations": _conv("a1")}])
    write_jsonl(
        tmp_path / "in" / "b" / "x.jsonl",
        [{"conversations": _conv("b0")}, {"conversations": _conv("b1")}, {"id": "x:0#2", "conversations": _conv("b2")}],
    )
    stats = run(pipeline_yaml(tmp_path / "p.yaml", tmp_path / "in", tmp_path / "out", "[]", extra="  shard_rows: 1\n"))
    kept = sorted(read_dir(tmp_path / "out" / "kept").to_pylist(), key=lambda r: (r["source_file"], r["source_index"]))
    assert [r["id"] for r in kept] == ["x:0", "x:1", "x:0#3", "x:1#2", "x:0#2"]
    assert json.loads(kept[2]["extra"]) == {"original_id": "x:0"}
    assert stats["read_counters"]["id_renamed:repeated"] == 2


def test_renamed_ids_reach_the_jsonl_output(tmp_path):
    write_jsonl(
        tmp_path / "in.jsonl", [{"id": 5, "conversations": _conv("int")}, {"id": "5", "conversations": _conv("str")}]
    )
    y = tmp_path / "p.yaml"
    y.write_text(
        f"input: {{path: {tmp_path / 'in.jsonl'}}}\noutput: {{path: {tmp_path / 'out'}, format: sharegpt}}\n"
        "runner: {type: local}\nsteps: []\n"
    )
    run(y)
    lines = [
        json.loads(x)
        for f in sorted((tmp_path / "out" / "kept_jsonl").glob("*.jsonl"))
        for x in f.read_text().splitlines()
    ]
    assert [(r["id"], r.get("original_id")) for r in lines] == [("5", None), ("5#2", "5")]


def test_rule_is_first_keeps_then_smallest_free_suffix():
    ids = ["a", "b", "a", "a#2", "a", "b"]
    hashes = id_hashes(pa.array(ids))
    assert _new_ids(ids, set(), hashes[hashes.argsort()]) == {2: "a#3", 4: "a#4", 5: "b#2"}
