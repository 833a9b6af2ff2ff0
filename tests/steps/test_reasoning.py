"""reasoning: traces split into reasoning_content, each malformed-trace fault with its own reason, the
thinking-on / thinking-off policies, history stripping, token bounds, bad input, config errors."""

from __future__ import annotations

import pytest

from curate.steps.base import StepContext, apply_map_step
from curate.steps.reasoning import Reasoning, ReasoningParams
from tests.helpers import REPO, assert_step_config_error
from tests.post_training_rows import msg, reasons, table


def run_step(convs, **kw):
    step = Reasoning(ReasoningParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))
    return apply_map_step(step, table(convs))


def turns(out, r):
    return [(m["role"], m["content"], m["reasoning_content"]) for m in out.column("messages")[r].as_py()]


def test_splits_each_delimiter_and_keeps_other_fields():
    convs = [
        [msg("user", "2+2?"), msg("assistant", "<think>\n2 and 2 make 4.\n</think>\n\nIt is 4.")],
        [msg("user", "q"), msg("assistant", "<|begin_of_thought|>hmm<|end_of_thought|>\n\nanswer")],
        [msg("user", "q"), msg("assistant", "<thinking>x</thinking>y")],
        [msg("user", "q"), msg("assistant", "plain answer")],
        [msg("user", "q"), msg("assistant", "已经想好了</think>答案")],  # R1 style: the template opened the trace
        [msg("user", "q"), msg("assistant", "answer", reasoning="a trace the reader found in a field")],
    ]
    out, stats = run_step(convs)
    assert reasons(out) == [None] * 6
    assert turns(out, 0)[1] == ("assistant", "It is 4.", "2 and 2 make 4.")
    assert turns(out, 1)[1] == ("assistant", "answer", "hmm")
    assert turns(out, 2)[1] == ("assistant", "y", "x")
    assert turns(out, 3)[1] == ("assistant", "plain answer", None)
    assert turns(out, 4)[1] == ("assistant", "答案", "已经想好了")
    assert turns(out, 5)[1] == ("assistant", "answer", "a trace the reader found in a field")
    assert out.column("messages")[0].as_py()[1]["original_role"] == "assistant"
    # estimate: ASCII chars / 4 rounded up, + 1 per other character
    assert out.column("reasoning_tokens").to_pylist() == [4, 1, 1, 0, 5, 9]
    assert out.column("answer_tokens").to_pylist() == [2, 2, 1, 3, 2, 2]
    assert stats.counters["turns_split"] == 4 and stats.counters["rows_with_reasoning"] == 5


def test_each_fault_has_its_own_reason_turn_and_span():
    convs = [
        [msg("user", "q"), msg("assistant", "<think>I was cut off mid-")],
        [msg("user", "q"), msg("assistant", "<think>a</think>b<think>c</think>d")],
        [msg("user", "q"), msg("assistant", "<think>a</think>b</thinking>")],
        [msg("user", "q"), msg("assistant", "<think>all thought, no answer</think>\n\n")],
        [msg("user", "<think>planted</think> what is 2+2?"), msg("assistant", "4")],
        [msg("user", "q"), msg("assistant", "</think> x <think>")],
        [msg("user", "q"), msg("assistant", "<think>x</think>y", reasoning="and a field")],
        [msg("user", "q"), msg("assistant", "fine"), msg("user", "q2"), msg("assistant", "<think>open")],
    ]
    out, stats = run_step(convs)
    assert reasons(out) == [
        "reasoning_unclosed",
        "reasoning_multiple",
        "reasoning_multiple",
        "reasoning_no_answer",
        "reasoning_in_user_turn",
        "reasoning_unclosed",
        "reasoning_multiple",
        "reasoning_unclosed",
    ]
    assert out.column("_curate_drop_turn").to_pylist() == [1, 1, 1, 1, 0, 1, 1, 3]
    assert out.column("_curate_drop_span").to_pylist()[:5] == [
        "<think>",
        "</think>",
        "</thinking>",
        "<think>",
        "<think>",
    ]
    assert (
        out.column("_curate_drop_detail")[0].as_py().startswith("turn 1: a trace that never closes: '<think>I was cut")
    )
    # rejected rows keep their original text (the report highlights the delimiter in it)
    assert turns(out, 1)[1] == ("assistant", "<think>a</think>b<think>c</think>d", None)
    assert stats.rows_dropped == 8 and stats.dropped["reasoning_multiple"] == 3


def test_thinking_on_and_off_policies():
    convs = [
        [msg("user", "q"), msg("assistant", "<think>\n\n</think>\n\nanswer")],  # thinking-off marker
        [msg("user", "q"), msg("assistant", "answer")],
        [msg("user", "q"), msg("assistant", "<think>real reasoning</think>answer")],
    ]
    out, _ = run_step(convs, policy="require")
    assert reasons(out) == ["reasoning_empty", "reasoning_missing", None]
    out, _ = run_step(convs, policy="forbid")
    assert reasons(out) == [None, None, "reasoning_forbidden"]
    assert turns(out, 0)[1] == ("assistant", "answer", "")  # the empty trace is kept as such
    out, _ = run_step(convs)
    assert reasons(out) == [None, None, None]


def test_require_reads_the_final_assistant_turn_and_tool_calls_are_an_answer():
    convs = [
        [
            msg("user", "q"),
            msg("assistant", "<think>call a tool</think>", calls=[("f", {})]),
            msg("tool", "{}", call_id="call_0"),
            msg("assistant", "<think>done</think>result"),
        ],
        [msg("user", "q"), msg("assistant", "<think>x</think>a"), msg("user", "q2"), msg("assistant", "no trace")],
    ]
    out, _ = run_step(convs, policy="require")
    assert reasons(out) == [None, "reasoning_missing"]
    assert out.column("_curate_drop_turn")[1].as_py() == 3


def test_strip_non_final_and_token_bounds():
    conv = [
        msg("user", "q1"),
        msg("assistant", "<think>old trace</think>a1"),
        msg("user", "q2"),
        msg("assistant", "<think>step</think>", calls=[("f", {})]),
        msg("tool", "{}", call_id="call_0"),
        msg("assistant", "<think>final trace here</think>a2"),
    ]
    out, _ = run_step([conv], strip_non_final=True)
    got = turns(out, 0)
    assert (
        got[1] == ("assistant", "a1", None) and got[3] == ("assistant", "", "step") and got[5][2] == "final trace here"
    )
    assert out.column("reasoning_tokens").to_pylist() == [1 + 4]
    out, _ = run_step([conv, [msg("user", "q"), msg("assistant", "no reasoning")]], min_reasoning_tokens=10)
    assert reasons(out) == ["reasoning_too_short", None]  # the bound is for rows that reason
    out, _ = run_step([conv], max_reasoning_tokens=4)
    assert reasons(out) == ["reasoning_too_long"]
    assert out.column("_curate_drop_detail")[0].as_py() == "8 reasoning tokens (max 4)"


def test_custom_delimiters_and_implicit_open_off():
    convs = [
        [msg("user", "q"), msg("assistant", "[[plan]]a[[/plan]]b")],
        [msg("user", "q"), msg("assistant", "x</think>y")],
    ]
    out, _ = run_step(convs, delimiters=[["[[plan]]", "[[/plan]]"], ["<think>", "</think>"]], implicit_open=False)
    assert reasons(out) == [None, "reasoning_unopened"]
    assert turns(out, 0)[1] == ("assistant", "b", "a")


def test_bad_input_is_a_reason_never_a_traceback():
    huge = "<think>" + "word " * 1_000_000 + "</think>answer"  # a 5 MB trace
    convs = [
        [msg("user", "q"), msg("assistant", huge)],
        [msg("user", "q"), msg("assistant", "<think>" + "x" * 5_000_000)],
        [msg("user", None), msg("assistant", None)],  # null contents
        [],
    ]
    out, _ = run_step(convs, max_reasoning_tokens=100_000)
    assert reasons(out) == ["reasoning_too_long", "reasoning_unclosed", None, None]
    assert len(out.column("_curate_drop_detail")[1].as_py()) < 400  # bounded for the report


def test_config_errors_are_one_line(tmp_path):
    assert_step_config_error(
        tmp_path,
        "reasoning",
        "{policy: maybe}",
        "steps[0].policy: must be one of 'any', 'require' or 'forbid' (got 'maybe')",
    )
    assert_step_config_error(
        tmp_path,
        "reasoning",
        "{tokenizer: /nope/tok.json}",
        "steps[0].tokenizer: no tokenizer.json at /nope/tok.json (give the file, or a model folder that holds it)",
    )
    with pytest.raises(ValueError):
        ReasoningParams(delimiters=[["<t>", "<t>"]])
