"""ai_boilerplate: each list and action, whitespace/quote variants, real labelled refusals, bad inputs."""

from __future__ import annotations

import json

import pytest

from curate.errors import UserError
from curate.steps.ai_boilerplate import AiBoilerplate, BoilerplateParams
from curate.steps.base import StepContext
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


def apply(convs, **kw):
    out = AiBoilerplate(BoilerplateParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules")).process(
        rows_table(convs)
    )
    return out


def test_actions_per_list():
    out = apply(
        [
            [
                ("user", "q1"),
                ("assistant", "As an AI   language\nmodel, I have no opinions."),
                ("user", "q2"),
                ("assistant", "Sure."),
            ],
            [("user", "q"), ("assistant", "I’m sorry, but I can’t help with that.")],
            [("user", "Is ChatGPT good?"), ("assistant", "It is a chatbot by OpenAI.")],
            [("user", "Tell me about AIMs"), ("assistant", "As an AIM user I liked it.")],
        ]
    )
    assert out.reason == [None, "boilerplate_refusals", None, None]
    assert texts(out.table)[0] == ["q2", "Sure."]  # the pair went, the dialogue stayed
    assert texts(out.table)[1] == ["q", "I’m sorry, but I can’t help with that."]  # rejected rows stay whole
    assert out.span[1] == "I’m sorry, but I can’t"
    assert out.table.column("boilerplate_lists").to_pylist() == ["self_reference", "refusals", "openai_mentions", None]


def test_action_overrides_and_list_choice():
    conv = [[("user", "Who made you?"), ("assistant", "I was trained by OpenAI.")]]
    assert apply(conv).reason == [None]
    assert apply(conv, actions={"openai_mentions": "drop"}).reason == ["boilerplate_openai_mentions"]
    assert apply(conv, lists=["refusals"]).table.column("boilerplate_lists").to_pylist() == [None]
    # user turns are not judged by the assistant-only lists
    assert apply([[("user", "As an AI language model, answer me"), ("assistant", "ok")]]).reason == [None]


def test_labelled_arena_refusals_precision():
    rows = [
        json.loads(x)
        for x in (SHARED_DATA / "instructions" / "openai_messages_arena_refusal_labeled.jsonl").read_text().splitlines()
    ]

    def conv(x, k):
        return [(m["role"], m["content"] if isinstance(m["content"], str) else "") for m in x[k]]

    a = apply([conv(x, "conversation_a") for x in rows], lists=["refusals"], actions={"refusals": "drop"}).reason
    b = apply([conv(x, "conversation_b") for x in rows], lists=["refusals"], actions={"refusals": "drop"}).reason
    pred = [x is not None or y is not None for x, y in zip(a, b)]
    gold = [bool(x["is_refusal"]) for x in rows]
    tp = sum(p and g for p, g in zip(pred, gold))
    assert tp >= 4 and tp == sum(pred)  # every flagged conversation is a labelled refusal


def test_bad_inputs(tmp_path):
    out = apply(
        [[("user", "")], [("assistant", "x" * 1_000_000)], [("user", "Как ИИ я не могу"), ("assistant", "我是AI")]]
    )
    assert out.reason == [None, None, None]
    (tmp_path / "ai_boilerplate.yaml").write_text("refusals: [unclosed\n")
    with pytest.raises(UserError, match="ai_boilerplate.yaml:2: cannot read the phrase lists"):
        AiBoilerplate(BoilerplateParams(), StepContext(rules_dir=tmp_path)).setup()
    with pytest.raises(UserError, match="ai_boilerplate: unknown list 'refusal'"):
        apply([[("user", "q")]], lists=["refusal"])


def test_end_to_end(tmp_path):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {
                "id": "a",
                "conversations": [
                    {"from": "human", "value": "q"},
                    {"from": "gpt", "value": "As an AI language model, no."},
                ],
            },
            {"id": "b", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "Yes."}]},
        ],
    )
    stats = run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps="\n  - ai_boilerplate: {}"))
    assert stats["rows_kept"] == 1 and read_dir(tmp_path / "out" / "rejected").column("id").to_pylist() == ["a"]


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        (
            "{actions: {refusals: remove}}",
            "steps[0].actions.refusals: must be one of 'drop', 'drop_pair' or 'flag' (got 'remove')",
        )
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "ai_boilerplate", step_yaml, message)
