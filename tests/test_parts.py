"""Each text step reads the parts docs/parts.md says: a trace is read (or not) apart from its answer,
and a step that rewrites text writes the trace back into the trace."""

from __future__ import annotations

import json

import pytest

from curate.readers import row_key, rows_to_table
from curate.steps.base import StepContext, apply_map_step
from tests.helpers import REPO, SHARED_DATA


def _table(turns: list[tuple[str, str, str | None]]):
    messages = [{"role": r, "content": c, "reasoning_content": t, "original_role": r} for r, c, t in turns]
    return rows_to_table([{"id": "a", "messages": messages, "_curate_key": row_key(0, 0)}])


def _step(name: str, **params):
    from curate.registry import all_steps

    cls = all_steps()[name]
    s = cls(cls.Params(**params), StepContext(rules_dir=REPO / "curate" / "rules"))
    s.setup()
    return s


def _reason(step, table) -> str | None:
    rows, _ = apply_map_step(step, table)
    return rows.column("_curate_drop_reason")[0].as_py()


def test_pii_redacts_the_trace_and_writes_it_back_there():
    table = _table(
        [
            ("user", "who wrote to me?", None),
            ("assistant", "Kathy did.", "The sender was kathy.bates@gmail.com, so Kathy."),
        ]
    )
    rows, _ = apply_map_step(_step("pii"), table)
    reply = rows.column("messages")[0].as_py()[1]
    assert reply["reasoning_content"] == "The sender was [EMAIL], so Kathy." and reply["content"] == "Kathy did."
    rows, _ = apply_map_step(_step("pii", parts=["user", "assistant"]), table)
    assert "kathy.bates@gmail.com" in rows.column("messages")[0].as_py()[1]["reasoning_content"]


def test_toxicity_reads_traces_by_default():
    table = _table(
        [
            ("user", "tell me about my neighbour", None),
            ("assistant", "I can't help with insults.", "you are a fucking idiot and I hate you"),
        ]
    )
    assert _reason(_step("toxicity"), table) == "toxic_toxicity"
    assert _reason(_step("toxicity", parts=["user", "assistant"]), table) is None


def test_decontaminate_reads_traces_by_default():
    item = json.loads((SHARED_DATA / "eval_sets" / "gsm8k" / "test.jsonl").read_text().splitlines()[7])
    table = _table(
        [("user", "Explain this working please", None), ("assistant", "The answer is below.", item["answer"])]
    )
    step = _step("decontaminate")
    assert _reason(step, table) == "contaminated_answer"
    assert _reason(_step("decontaminate", parts=["user", "assistant"]), table) is None


@pytest.mark.parametrize(("parts", "reason"), [(None, None), (["user", "assistant", "reasoning"], "dup_lines")])
def test_quality_heuristics_skip_traces_unless_asked(parts, reason):
    loop = "\n".join(["Wait, let me check that again."] * 12)
    answer = (
        "Paris is the capital of France. It has been the seat of the French government for centuries, "
        "and it is the largest city in the country by population."
    )
    table = _table([("user", "What is the capital of France?", None), ("assistant", answer, loop)])
    step = _step("quality_heuristics") if parts is None else _step("quality_heuristics", parts=parts)
    assert _reason(step, table) == reason


def test_normalize_cleans_traces_too():
    table = _table([("user", "hi\u200b", None), ("assistant", "hello", "greet\u200b back")])
    rows, _ = apply_map_step(_step("normalize"), table)
    msgs = rows.column("messages")[0].as_py()
    assert msgs[0]["content"] == "hi" and msgs[1]["reasoning_content"] == "greet back"


def test_roles_is_still_accepted_as_the_old_name():
    assert _step("toxicity", roles=["assistant"]).params.parts == ["assistant"]
