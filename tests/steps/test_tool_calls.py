"""tool_calls: each violation with its own reason and the offending call, id and in-order matching,
BFCL's Python type names, bad input (arguments not JSON, tools not a list), config errors."""

from __future__ import annotations

from curate.steps.base import StepContext, apply_map_step
from curate.steps.tool_calls import ToolCalls, ToolCallsParams
from tests.helpers import REPO, assert_step_config_error
from tests.post_training_rows import function, msg, reasons, table

WEATHER = function(
    "get_weather", {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, ["city"]
)
TIME = function("get_time", {"tz": {"type": "string"}}, ["tz"], openai=False)  # glaive/BFCL shape: no wrapper
TOOLS = [WEATHER, TIME]


def run_step(convs, tools=None, **kw):
    step = ToolCalls(ToolCallsParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))
    return apply_map_step(step, table(convs, tools))


def call_conv(args, name="get_weather", answer=True):
    conv = [msg("user", "weather?"), msg("assistant", "", calls=[("c1", name, args)])]
    if answer:
        conv += [msg("tool", '{"temp": 20}', call_id="c1"), msg("assistant", "It is 20.")]
    return conv


def test_valid_calls_are_kept():
    convs = [
        call_conv({"city": "Paris", "unit": "c"}),
        [
            msg("user", "time and weather"),
            msg("assistant", "", calls=[("a", "get_time", {"tz": "UTC"}), ("b", "get_weather", {"city": "Oslo"})]),
            msg("tool", "{}", call_id="b"),
            msg("tool", "{}", call_id="a"),
            msg("assistant", "done"),
        ],  # by id, any order
        [msg("user", "hi"), msg("assistant", "hello")],
    ]
    out, stats = run_step(convs, [TOOLS, TOOLS, TOOLS])
    assert reasons(out) == [None, None, None]
    assert out.column("tool_call_count").to_pylist() == [1, 2, 0]
    assert stats.counters["calls"] == 3 and stats.counters["rows_with_calls"] == 2


def test_each_violation_has_its_own_reason_and_shows_the_call():
    convs = [
        call_conv('{"city": "Paris"'),
        call_conv('["Paris"]'),
        call_conv({"city": "Paris"}, name="get_stock_price"),
        call_conv({"unit": "c"}),
        call_conv({"city": 42}),
        call_conv({"city": "Paris", "unit": "kelvin"}),
        call_conv({"city": "Paris"}, answer=False),
        call_conv({"city": "Paris"}, answer=False) + [msg("user", "and?"), msg("assistant", "no idea")],
        [msg("user", "q"), msg("tool", "{}", call_id="zz"), msg("assistant", "a")],
        call_conv({"city": "Paris"}, name=""),
        [
            msg("user", "q"),
            msg("assistant", "", calls=[("x", "get_time", {"tz": "a"}), ("x", "get_time", {"tz": "b"})]),
            msg("tool", "{}", call_id="x"),
            msg("assistant", "a"),
        ],
    ]
    out, stats = run_step(convs, [TOOLS] * len(convs))
    assert reasons(out) == [
        "tool_arguments_not_json",
        "tool_arguments_not_object",
        "tool_call_unknown_function",
        "tool_argument_missing",
        "tool_argument_type",
        "tool_argument_enum",
        "tool_call_open_at_end",
        "tool_call_unanswered",
        "tool_result_orphan",
        "tool_call_no_name",
        "tool_call_duplicate_id",
    ]
    spans = out.column("_curate_drop_span").to_pylist()
    assert spans[0] == 'get_weather({"city": "Paris")' and spans[2] == 'get_stock_price({"city": "Paris"})'
    details = out.column("_curate_drop_detail").to_pylist()
    assert details[3] == 'turn 1, call 0: get_weather({"unit": "c"}): \'city\' is a required property'
    assert details[4].endswith("42 is not of type 'string' (at city)")
    assert "get_stock_price' is not among the row's tools (get_time, get_weather)" in details[2]
    assert out.column("_curate_drop_turn").to_pylist()[:8] == [1, 1, 1, 1, 1, 1, 1, 1]
    assert stats.rows_dropped == len(convs)


def test_sharegpt_results_answer_in_order_and_grouped():
    two = [msg("user", "q"), msg("assistant", "", calls=[("get_time", {"tz": "a"}), ("get_time", {"tz": "b"})])]
    convs = [
        two + [msg("tool", "r1"), msg("tool", "r2"), msg("assistant", "a")],  # one per call, in order
        two + [msg("tool", "[r1, r2]"), msg("assistant", "a")],  # LLaMA-Factory: one observation for both
        two + [msg("tool", "r1"), msg("tool", "r2"), msg("tool", "r3"), msg("assistant", "a")],
        [msg("user", "q"), msg("tool", "r"), msg("assistant", "a")],
    ]
    out, _ = run_step(convs, [TOOLS] * 4)
    assert reasons(out) == [None, None, "tool_result_orphan", "tool_result_orphan"]
    out, _ = run_step(convs[:2], [TOOLS] * 2, grouped_results=False)
    assert reasons(out) == [None, "tool_call_unanswered"]


def test_rows_without_tools_check_form_and_answers_only():
    out, _ = run_step([call_conv({"anything": 1}, name="undeclared"), call_conv("not json")])
    assert reasons(out) == [None, "tool_arguments_not_json"]


def test_python_type_names_and_open_end_keep():
    bfcl = {
        "name": "calc",
        "parameters": {
            "type": "dict",
            "properties": {
                "x": {"type": "float"},
                "xs": {"type": "tuple", "items": {"type": "integer"}},
                "o": {"type": "any"},
                "s": {"type": "str, optional"},
                "ls": {"type": "List[str]"},
            },
            "required": ["x"],
        },
    }
    ok = [
        msg("user", "q"),
        msg("assistant", "", calls=[("calc", {"x": 1, "xs": [1, 2], "o": None, "s": "a", "ls": ["b"]})]),
    ]
    bad = [msg("user", "q"), msg("assistant", "", calls=[("calc", {"x": "one"})])]
    bad_s = [msg("user", "q"), msg("assistant", "", calls=[("calc", {"x": 1, "s": 2})])]
    out, _ = run_step([ok, bad, bad_s], [[bfcl]] * 3, open_end="keep")
    assert reasons(out) == [None, "tool_argument_type", "tool_argument_type"]
    out, _ = run_step([ok], [[bfcl]])
    assert reasons(out) == ["tool_call_open_at_end"]


def test_bad_input_is_a_reason_never_a_traceback():
    convs = [call_conv({"city": "x"})] * 5 + [call_conv("{" * 100_000)]
    tools = [
        '{"not": "a list"}',
        "not json",
        '[{"description": "no name"}]',
        '[{"name": "get_weather", "parameters": {"type": "object", "required": "city"}}]',
        "[1, 2]",
        [WEATHER],
    ]
    out, _ = run_step(convs, tools)
    assert reasons(out) == ["tools_invalid"] * 5 + ["tool_arguments_not_json"]
    details = out.column("_curate_drop_detail").to_pylist()
    assert details[0] == "tools is a JSON dict, not a list" and details[2] == "tools[0] has no function name"
    assert details[3].startswith("parameters are not a valid JSON schema")
    assert all(len(d) < 600 for d in details)  # bounded for the report


def test_config_errors_are_one_line(tmp_path):
    assert_step_config_error(
        tmp_path,
        "tool_calls",
        "{open_end: maybe}",
        "steps[0].open_end: must be one of 'reject' or 'keep' (got 'maybe')",
    )
