"""format_rules: each ShareGPT convention with its reason, its switch, real rows and bad inputs."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest

from curate.steps.base import StepContext
from curate.steps.format_rules import _ARTIFACT_LINES, _COUNTER, FormatParams, FormatRules, _artifact_free
from tests.helpers import (
    REPO,
    SHARED_DATA,
    assert_step_config_error,
    pipeline_yaml,
    read_dir,
    rows_table,
    run,
    texts,
    write_jsonl,
)

ERROR = "Too many requests in 1 hour. Try again later."


def apply(convs, **kw):
    out = FormatRules(FormatParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules")).process(rows_table(convs))
    return out.reason, texts(out.table), out.counters


def test_each_rule():
    reasons, got, counters = apply(
        [
            [
                ("system", "be brief"),
                ("assistant", "Hi!"),
                ("user", "hello"),
                ("assistant", "1 / 2\nHello there!\nCopy code\n312 chars / 51 words"),
                ("user", "bye"),
            ],
            [("user", "q1"), ("assistant", ERROR), ("user", "q2"), ("assistant", "a2")],
            [("user", "q1"), ("assistant", ERROR)],
            [("user", "a"), ("user", "b"), ("assistant", "c")],
            [("user", "q"), ("assistant", "1. a\n1. b\n1. c")],
            [("user", "q"), ("assistant", "   "), ("user", "more"), ("assistant", "x")],
            [("user", "only")],
            [("user", "q"), ("assistant", "1. a\n2. b\n3. c")],
        ]
    )
    assert reasons == [None, None, "error_reply", None, None, "empty_turn", "too_few_turns", None]
    assert got[4] == ["q", "1. a\n2. b\n3. c"] and got[7] == ["q", "1. a\n2. b\n3. c"]
    assert got[0] == ["be brief", "hello", "Hello there!"]
    assert got[1] == ["q2", "a2"] and got[3] == ["a\n\nb", "c"]
    assert got[2] == ["q1", ERROR]  # a rejected row is shown as it came in
    assert counters["turns_merged"] == 1 and counters["error_replies_removed"] == 2


def test_switches():
    conv = [[("user", "a"), ("user", "b"), ("assistant", "1. x\n1. y\n1. z"), ("user", "trailing")]]
    assert apply(conv, non_alternating="drop")[0] == ["roles_not_alternating"]
    assert apply(conv, restarted_list="drop")[0] == ["restarted_numbered_list"]
    reasons, got, _ = apply(conv, non_alternating="keep", restarted_list="keep", trim_edges=False)
    assert reasons == [None] and got == [["a", "b", "1. x\n1. y\n1. z", "trailing"]]
    assert apply([[("user", "hi"), ("assistant", "yo")]], min_chars=100)[0] == ["too_short"]
    assert apply([[("user", "hi")]], min_turns=0, trim_edges=False)[0] == [None]


def test_tool_turns_belong_to_the_assistant_side():
    reasons, got, _ = apply(
        [[("user", "weather?"), ("assistant", "calling"), ("tool", '{"t": 20}'), ("assistant", "20 degrees")]]
    )
    assert reasons == [None] and len(got[0]) == 4


def _post_training_table(tmp_path):
    from curate.readers import plan, read_shard
    from curate.records import FieldNames
    from tests.post_training_records import BFCL_SINGLE, POST_TRAINING, bfcl_records, hermes_records

    records = [r for c in (*BFCL_SINGLE, "multi_turn_base") for r, _ in bfcl_records(c)]
    files = [
        POST_TRAINING / "glaive_toolcall_en_demo.jsonl.gz",
        POST_TRAINING / "reason_tool_use_demo_50.jsonl.gz",
        write_jsonl(tmp_path / "bfcl.jsonl", records),
        write_jsonl(tmp_path / "hermes.jsonl", hermes_records()),
    ]
    import pyarrow as pa

    tables = [read_shard(s, FieldNames())[0] for s in plan([str(f) for f in files], "auto", 100_000)]
    return pa.concat_tables(tables)


def test_real_tool_call_rows_have_no_empty_turns(tmp_path):
    """Issue 17: format_rules: {} rejected 524 of 547 real tool-call records as empty_turn (a call-only
    assistant turn has no text). Calls and tool results are turns; call turns are never merged."""
    table = _post_training_table(tmp_path)
    out = FormatRules(FormatParams(), StepContext(rules_dir=REPO / "curate" / "rules")).process(table)
    assert table.num_rows > 1300
    assert "empty_turn" not in out.reason and "roles_not_alternating" not in out.reason
    before = [[(m["role"], m["content"], m["tool_calls"]) for m in c] for c in table.column("messages").to_pylist()]
    after = [[(m["role"], m["content"], m["tool_calls"]) for m in c] for c in out.table.column("messages").to_pylist()]
    # every call survives, with its turn
    assert [[x for x in c if x[2]] for c in before] == [[x for x in c if x[2]] for c in after]


def test_call_turns_are_not_merged_or_empty():
    from curate.readers import row_key, rows_to_table

    call = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    table = rows_to_table(
        [
            {
                "id": "a",
                "_curate_key": row_key(0, 0),
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "let me look"},
                    {"role": "assistant", "content": "", "tool_calls": call},
                    {"role": "tool", "content": "", "tool_call_id": "c1"},
                    {"role": "assistant", "content": "done"},
                ],
            }
        ]
    )
    out = FormatRules(FormatParams(non_alternating="drop"), StepContext(rules_dir=REPO / "curate" / "rules")).process(
        table
    )
    assert out.reason == [None]  # text, then a call: the same turn of the assistant side
    out = FormatRules(FormatParams(), StepContext(rules_dir=REPO / "curate" / "rules")).process(table)
    assert [m["tool_calls"] is not None for m in out.table.column("messages")[0].as_py()] == [
        False,
        False,
        True,
        False,
        False,
    ]


def test_real_sharegpt_rows():
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt_fastchat_dummy_conversation.json").read_text())
    role = {"human": "user", "gpt": "assistant"}
    reasons, got, _ = apply([[(role[t["from"]], t["value"]) for t in r["conversations"]] for r in rows])
    assert reasons.count(None) == len(rows)  # FastChat's own sample is well-formed
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())
    reasons, got, counters = apply(
        [[(role.get(t["from"], "user"), t["value"]) for t in r["conversations"]] for r in rows]
    )
    assert reasons.count(None) > 0.9 * len(rows)
    assert all(g[-1] != "" for g, r in zip(got, reasons) if r is None)


def test_turns_skipped_by_the_artifact_check_are_those_the_artifact_pass_leaves_alone():
    """_artifact_free may only skip turns that both artifact patterns leave unchanged: every turn of
    the ShareGPT sample and the artifact shapes (counters, Copy code, char/word counts, any case)."""
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())
    turns = [t["value"] for r in rows for t in r["conversations"]]
    turns += ["1 / 2\nhello", " 2/3\n\nhi", "COPY CODE\nx = 1", "ok\ncopy\n", "12 chars / 3 words\nhi", "plain", ""]
    free = _artifact_free(pa.array(turns + [None], pa.string()))
    changed = [_ARTIFACT_LINES.sub("", _COUNTER.sub("", t)) != t for t in turns]
    assert not any(f and c for f, c in zip(free, changed))
    assert sum(changed) >= 5 and free[:-1].sum() > 0.3 * len(turns)
    assert not free[-1]  # a null turn goes through the pass (it becomes "")


def test_artifact_prefilter_covers_pythons_unicode_classes():
    """The RE2 prefilter spells Python's \\s and \\d on str (Unicode spaces, \\x1c-\\x1f, \\x85;
    Unicode digits) and its case folding (ſ, K): random strings of those pieces, none that the
    Python patterns change may be called free."""
    rng = random.Random(3)
    pieces = ["1", "12", "1,2", "٣", "७", "/", " ", "\u00a0", "\u2003", "\u3000", "\u2028", "\x1c", "\x85", "\n",
              "\r", "\t", "a", "Copy", "COPY code", "cOpY", "chars", "Char", "words", "ſ", "K", "wordſ", "x"]  # fmt: skip
    turns = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 9))) for _ in range(100_000)]
    free = _artifact_free(pa.array(turns))
    changed = np.array([_ARTIFACT_LINES.sub("", _COUNTER.sub("", t)) != t for t in turns])
    assert not (free & changed).any()
    assert changed.sum() > 1000 and free.sum() > 50_000


def test_bad_inputs():
    reasons, got, _ = apply(
        [
            [("system", "only a system prompt")],
            [("user", "")],
            [("assistant", "x" * 1_000_000)],
            [("user", "q"), ("assistant", "a")] * 1 + [("user", "q"), ("assistant", "a")] * 20000,
        ]
    )
    assert reasons[:3] == ["too_few_turns", "empty_turn", "too_few_turns"] and reasons[3] is None
    assert len(got[3]) == 40002


def test_end_to_end(tmp_path):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": ERROR}]},
            {"id": "b", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "ok"}]},
        ],
    )
    stats = run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps="\n  - format_rules: {}"))
    assert stats["rows_kept"] == 1 and read_dir(tmp_path / "out" / "rejected").column(
        "_curate_drop_reason"
    ).to_pylist() == ["error_reply"]


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        ("{non_alternating: fix}", "steps[0].non_alternating: must be one of 'merge', 'drop' or 'keep' (got 'fix')"),
        ("{min_turns: -1}", "steps[0].min_turns: must be >= 0 (got -1)"),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "format_rules", step_yaml, message)


@pytest.mark.parametrize(
    "blank", ["\u200b", "\u200d", "\u200e\u2067\u2069", "\u00ad", "\u034f", "\u3164", "\u2800", "\ufe0f \t"]
)
def test_invisible_turn_is_empty_without_normalize(blank):
    reason, got, counters = apply([[("user", "q"), ("assistant", blank), ("user", "q2"), ("assistant", "a2")]])
    assert reason == ["empty_turn"]
    assert counters["truncated_at_empty"] == 1


# ------------------------------------------------------------- rows the loop may skip


def _both_ways(table: pa.Table, params: dict, monkeypatch) -> tuple:
    """process() as it is, and with no row skipped (every row through the per-row loop); and how
    many rows the first skipped."""
    step = FormatRules(FormatParams(**params), StepContext(rules_dir=REPO / "curate" / "rules"))
    skipped = []
    real = FormatRules._untouched_rows
    with monkeypatch.context() as m:
        m.setattr(FormatRules, "_untouched_rows", lambda self, *a: skipped.append(real(self, *a)) or skipped[-1])
        fast = step.process(table)
    with monkeypatch.context() as m:
        m.setattr(FormatRules, "_untouched_rows", lambda self, t, *a: np.zeros(t.num_rows, bool))
        slow = step.process(table)
    return fast, slow, int(skipped[0].sum())


def _assert_same(fast, slow):
    assert fast.reason == slow.reason
    assert fast.detail == slow.detail
    assert fast.counters == slow.counters
    assert fast.table.equals(slow.table)


PARAMS = [
    {},
    {"non_alternating": "drop", "restarted_list": "drop"},
    {"non_alternating": "keep", "restarted_list": "keep", "trim_edges": False},
    {"truncate_at_empty": False, "error_replies": False, "artifacts": False},
    {"min_turns": 0, "min_chars": 0},
    {"min_turns": 3, "min_chars": 400},
]


@pytest.mark.parametrize("params", PARAMS)
def test_skipped_rows_are_those_the_loop_leaves_alone_generated(params, monkeypatch):
    """Every rule's trigger in random places: blank and invisible turns, error replies, lists numbered
    1, 1, 1, artifacts, system turns first and later, tool turns, runs of one role, short rows."""
    rng = random.Random(7)
    pool = [
        "hello there, how are you?", "Sure! Here is an answer with several words in it.", "", "   ", "\u200b",
        ERROR, "network error", "1. a\n1. b\n1. c", "1. a\n2. b\n3. c", "1) x\n1) y\n1) z", "1 / 2\nHi",
        "text\nCopy code\nmore", "ok", "x" * 300, "12 chars / 3 words", "list: 1. one", "١. a\n١. b\n١. c",
        "01. a\n1) b\n１. c",
    ]  # fmt: skip
    roles = ["user", "assistant", "user", "assistant", "system", "tool"]
    convs = [
        [(rng.choice(roles), rng.choice(pool)) for _ in range(rng.randint(1, 7))]
        + ([] if rng.random() < 0.3 else [("user", "q"), ("assistant", "a fine answer")])
        for _ in range(1500)
    ]
    convs += [[("user", "q"), ("assistant", "a fine answer")]] * 50  # rows to skip
    fast, slow, skipped = _both_ways(rows_table(convs), params, monkeypatch)
    _assert_same(fast, slow)
    assert 0 < skipped < len(convs) - 500, skipped  # both kinds of rows were there


@pytest.mark.parametrize("params", PARAMS[:3])
def test_skipped_rows_are_those_the_loop_leaves_alone_real(params, monkeypatch):
    """Real rows: the ShareGPT sample (HTML-era chat) and Glaive tool-calling conversations (turns
    with tool calls are never merged, tool results are never empty)."""
    from curate.readers import plan, read_shard
    from curate.records import FieldNames

    counts = []
    for path in (
        SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json",
        SHARED_DATA / "instructions" / "sharegpt_llamafactory_glaive_toolcall_en_demo.json",
        REPO / "sample_data" / "sharegpt_sample.jsonl",
    ):
        table = read_shard(plan([str(path)], "auto", 100_000)[0], FieldNames())[0]
        fast, slow, skipped = _both_ways(table, params, monkeypatch)
        _assert_same(fast, slow)
        counts.append((skipped, table.num_rows))
    assert all(skipped for skipped, _ in counts) and sum(s for s, _ in counts) < sum(n for _, n in counts), counts
