"""The messages schema's helpers: parts a text step reads, writing texts back, visible text for keys."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate.readers import row_key, rows_to_table
from curate.schema import ROW_SCHEMA, has_tool_calls, turns_of, visible_texts, with_texts

CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}


def _table() -> pa.Table:
    rows = [
        {
            "id": "a",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "weather in Oslo?"},
                {
                    "role": "assistant",
                    "content": "",
                    "reasoning_content": "I should call the tool",
                    "tool_calls": [CALL],
                },
                {"role": "tool", "content": '{"t": 3}', "tool_call_id": "c1", "name": "get_weather"},
                {"role": "assistant", "content": "3 degrees", "reasoning_content": "it said 3"},
            ],
        },
        {"id": "b", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    ]
    for i, r in enumerate(rows):
        r["_curate_key"] = row_key(0, i)
    # a slice: steps see the live rows of a batch, whose list offsets do not start at 0
    return pa.concat_tables(
        [rows_to_table([{"id": "z", "messages": [{"role": "user", "content": "x"}]}]), rows_to_table(rows)]
    ).slice(1)


def test_parts_select_content_by_role_and_traces():
    table = _table()
    t = turns_of(table, ["user", "reasoning"])
    assert t.texts() == ["weather in Oslo?", "I should call the tool", "it said 3", "hi"]
    assert t.role.tolist() == ["user", "reasoning", "reasoning", "user"]
    assert t.row.tolist() == [0, 0, 0, 1] and t.position.tolist() == [1, 2, 4, 0]
    assert t.offsets.tolist() == [0, 3, 4]
    whole = turns_of(table)
    assert whole.texts()[2] == "" and whole.role.tolist()[:3] == ["system", "user", "assistant"]


def test_with_texts_writes_each_part_back_where_it_came_from():
    table = _table()
    t = turns_of(table, ["assistant", "reasoning"])
    out = with_texts(table, [s.upper() for s in t.texts()], t)
    msgs = out.column("messages").to_pylist()[0]
    assert [m["content"] for m in msgs] == ["be brief", "weather in Oslo?", "", '{"t": 3}', "3 DEGREES"]
    assert [m["reasoning_content"] for m in msgs] == [None, None, "I SHOULD CALL THE TOOL", None, "IT SAID 3"]
    assert msgs[2]["tool_calls"] == [CALL] and msgs[3]["tool_call_id"] == "c1"  # other fields untouched
    assert out.schema == ROW_SCHEMA


def test_visible_text_and_calls():
    table = _table()
    assert has_tool_calls(table).tolist() == [False, False, True, False, False, False, False]
    texts = visible_texts(table).to_pylist()
    assert texts[2] == '\nget_weather {"city": "Oslo"}' and texts[4] == "3 degrees"
    assert not np.any(["should call" in s for s in texts])  # no trace in the visible text


def test_the_parts_table_in_the_readme_is_the_code():
    import re

    from curate.registry import all_steps
    from tests.helpers import REPO

    doc = (REPO / "README.md").read_text()
    table = {m[0]: m[1].split(", ") for m in re.findall(r"^\| `(\w+)` \| `parts` \| `\[([^\]]*)\]` \|", doc, re.M)}
    declared = {
        name: cls.Params.model_fields["parts"].default
        for name, cls in all_steps().items()
        if "parts" in cls.Params.model_fields
    }
    assert table == declared
