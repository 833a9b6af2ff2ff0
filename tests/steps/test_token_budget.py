"""token_budget: counts through the two real chat templates equal transformers' apply_chat_template
with the same tokenizer; prompt / completion / reasoning apart; budgets; the estimate without a
tokenizer; a template that raises; config errors at validate time."""

from __future__ import annotations

import json

import pytest

from curate.steps._chat_template import load_template, template_messages
from curate.steps.base import StepContext, apply_map_step
from curate.steps.token_budget import TokenBudget, TokenBudgetParams
from curate.testing import byte_level_tokenizer
from tests.helpers import REPO, SHARED_DATA, assert_step_config_error
from tests.post_training_rows import function, msg, reasons, table

TEMPLATES = SHARED_DATA / "chat_templates"
DEEPSEEK = TEMPLATES / "deepseek-r1-distill-qwen-32b.tokenizer_config.json"
NEMOTRON = TEMPLATES / "nvidia-nemotron-nano-v2.chat_template.jinja"
TOOLS = [function("get_weather", {"city": {"type": "string"}}, ["city"])]

CONVS = [
    [
        msg("system", "You are terse."),
        msg("user", "What is 2+2?"),
        msg("assistant", "4", reasoning="Two and two make four."),
    ],
    [
        msg("user", "Weather in Paris?"),
        msg("assistant", "", reasoning="I should call the tool.", calls=[("c1", "get_weather", {"city": "Paris"})]),
        msg("tool", '{"temp": 21}', call_id="c1", name="get_weather"),
        msg("assistant", "It is 21 degrees in Paris.", reasoning="The tool says 21."),
    ],
    [
        msg("user", "hi"),
        msg("assistant", "hello"),
        msg("user", "Tell me a story about a fox /no_think"),
        msg("assistant", "Once upon a time a fox found a weather station."),
    ],
]
ROW_TOOLS = [None, TOOLS, None]


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory):
    """A byte-level BPE tokenizer.json built here, with both templates' control tokens as added tokens."""
    corpus = [m["content"] or "" for conv in CONVS for m in conv] * 20 + ["the weather in a story about tools"] * 20
    specials = [
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
        "<｜User｜>",
        "<｜Assistant｜>",
        "<｜tool▁calls▁begin｜>",
        "<｜tool▁call▁begin｜>",
        "<｜tool▁sep｜>",
        "<｜tool▁call▁end｜>",
        "<｜tool▁calls▁end｜>",
        "<｜tool▁outputs▁begin｜>",
        "<｜tool▁output▁begin｜>",
        "<｜tool▁output▁end｜>",
        "<｜tool▁outputs▁end｜>",
        "<SPECIAL_10>",
        "<SPECIAL_11>",
        "<SPECIAL_12>",
        "<think>",
        "</think>",
        "<TOOLCALL>",
        "</TOOLCALL>",
        "<TOOL_RESPONSE>",
        "</TOOL_RESPONSE>",
    ]
    return byte_level_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json", corpus, 400, specials)


def run_step(convs, tools=None, **kw):
    step = TokenBudget(TokenBudgetParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))
    return apply_map_step(step, table(convs, tools))


def hf_tokenizer(tokenizer_json, template):
    from transformers import PreTrainedTokenizerFast

    source, special = load_template(str(template))
    return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json), chat_template=source, **special)


@pytest.mark.parametrize("template", [DEEPSEEK, NEMOTRON], ids=["deepseek-r1", "nemotron-nano-v2"])
def test_counts_equal_transformers_apply_chat_template(tokenizer_json, template):
    from curate.steps._chat_template import compile_template

    hf = hf_tokenizer(tokenizer_json, template)
    out, stats = run_step(CONVS, ROW_TOOLS, chat_template=str(template), tokenizer=str(tokenizer_json))
    assert reasons(out) == [None, None, None] and stats.counters["template_errors"] == 0
    source, special = load_template(str(template))
    for r, conv in enumerate(CONVS):
        msgs = template_messages(conv)
        tools = ROW_TOOLS[r]
        # the text is transformers' own, byte for byte
        assert compile_template(source).render(
            messages=msgs, tools=tools, add_generation_prompt=False, **special
        ) == hf.apply_chat_template(msgs, tools=tools, tokenize=False)
        whole = hf.apply_chat_template(msgs, tools=tools, tokenize=True, return_dict=True)["input_ids"]
        last_user = max(i for i, m in enumerate(msgs) if m["role"] == "user")
        prompt = hf.apply_chat_template(
            msgs[: last_user + 1], tools=tools, tokenize=True, return_dict=True, add_generation_prompt=True
        )["input_ids"]
        assert out.column("tokens_total")[r].as_py() == len(whole)
        assert out.column("tokens_prompt")[r].as_py() == len(prompt)
        assert out.column("tokens_completion")[r].as_py() == len(whole) - len(prompt) > 0
    # reasoning: the completion's traces, tokenized (row 1: both steps of the final answer)
    enc = hf(["Two and two make four.", "I should call the tool.", "The tool says 21."], add_special_tokens=False)[
        "input_ids"
    ]
    assert out.column("tokens_reasoning").to_pylist() == [len(enc[0]), len(enc[1]) + len(enc[2]), 0]


def test_the_tools_reach_the_template(tokenizer_json):
    with_tools, _ = run_step(CONVS[1:2], [TOOLS], chat_template=str(NEMOTRON), tokenizer=str(tokenizer_json))
    without, _ = run_step(CONVS[1:2], [None], chat_template=str(NEMOTRON), tokenizer=str(tokenizer_json))
    assert with_tools.column("tokens_prompt")[0].as_py() > without.column("tokens_prompt")[0].as_py() + 50


def test_budgets_each_with_its_reason(tokenizer_json):
    long = [msg("user", "q " * 1000), msg("assistant", "a " * 50)]
    longer_answer = [msg("user", "q"), msg("assistant", "a " * 500)]
    deep = [msg("user", "q"), msg("assistant", "a", reasoning="r " * 300)]
    kw = dict(max_total_tokens=400, max_completion_tokens=200, max_prompt_tokens=100, max_reasoning_tokens=100)
    out, stats = run_step([long, longer_answer, deep, CONVS[0]], **kw)
    assert reasons(out) == ["over_total_tokens", "over_completion_tokens", "over_reasoning_tokens", None]
    assert out.column("tokens_reasoning").to_pylist() == [0, 0, 150, 6]  # CONVS[0]: "Two and two make four."
    out, _ = run_step([deep], **{**kw, "max_reasoning_tokens": None})
    assert reasons(out) == [None]
    out, _ = run_step([[msg("user", "q " * 300), msg("assistant", "a")]], **kw)
    assert reasons(out) == ["over_prompt_tokens"]
    assert out.column("_curate_drop_detail")[0].as_py().startswith("156 prompt tokens > 100 (156 prompt + 7 completion")


def test_estimate_without_template_or_tokenizer():
    out, _ = run_step(CONVS[1:2], [TOOLS], max_total_tokens=None, max_completion_tokens=None)
    # per turn: content + reasoning + call name and arguments (ASCII chars / 4, rounded up) + 6
    conv = CONVS[1]
    est = lambda s: -(-len(s) // 4)
    turns = [est(m["content"]) + est(m["reasoning_content"] or "") + 6 for m in conv]
    turns[1] += est("get_weather") + est(json.dumps({"city": "Paris"}))
    tools = est(json.dumps(TOOLS))
    assert out.column("tokens_prompt")[0].as_py() == turns[0] + tools
    assert out.column("tokens_total")[0].as_py() == sum(turns) + tools
    assert out.column("tokens_reasoning")[0].as_py() == est("I should call the tool.") + est("The tool says 21.")


def test_a_template_that_raises_rejects_the_row(tmp_path, tokenizer_json):
    tpl = tmp_path / "strict.jinja"
    tpl.write_text(
        "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('tool turns are not supported') }}"
        "{% endif %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    )
    out, stats = run_step(
        [CONVS[0], CONVS[1]], [None, "not json"], chat_template=str(tpl), tokenizer=str(tokenizer_json)
    )
    assert reasons(out) == [None, "chat_template_error"]
    assert out.column("_curate_drop_detail")[1].as_py().startswith("JSONDecodeError")  # tools not JSON
    out, _ = run_step([CONVS[1]], chat_template=str(tpl))
    assert out.column("_curate_drop_detail")[0].as_py() == "TemplateError: tool turns are not supported"
    assert out.column("tokens_total").to_pylist() == [None] and stats.counters["template_errors"] == 1


def test_config_errors_are_one_line_at_validate_time(tmp_path):
    assert_step_config_error(
        tmp_path,
        "token_budget",
        "{tokenizer: /nope}",
        "steps[0].tokenizer: no tokenizer.json at /nope (give the file, or a model folder that holds it)",
    )
    assert_step_config_error(
        tmp_path,
        "token_budget",
        "{chat_template: /nope.jinja}",
        "steps[0].chat_template: no chat template at /nope.jinja (give a tokenizer_config.json, a .jinja file or a model folder)",
    )
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for m in messages %}{{ m.content }")
    assert_step_config_error(
        tmp_path,
        "token_budget",
        f"{{chat_template: {bad}}}",
        f"steps[0].chat_template: {bad}: the chat template does not compile: line 1: unexpected '}}'",
    )
    cfg = tmp_path / "tokenizer_config.json"
    cfg.write_text('{"bos_token": "<s>"}')
    assert_step_config_error(
        tmp_path, "token_budget", f"{{chat_template: {cfg}}}", f"steps[0].chat_template: {cfg} has no chat_template"
    )
