"""token_budget: prompt, completion and reasoning tokens as the trainer will see them, and budgets
for each.

With `chat_template` (a tokenizer_config.json, a .jinja file, or a model folder) each row is rendered
as transformers' `apply_chat_template(messages, tools=...)` renders it (see _chat_template.py) and
the text is tokenized with `tokenizer` (a local tokenizer.json; without one, the character estimate
of the rendered text). The *prompt* is everything up to the last user turn, rendered with
`add_generation_prompt=True`; the *completion* is the rest (total - prompt: the final answer with its
tool calls, their results and its reasoning, as the template renders them); *reasoning* is the
tokens of the completion's `reasoning_content` (run `reasoning` first to split `<think>` tags out).
Some templates drop reasoning from what they render (DeepSeek-R1's keeps only what follows
`</think>`): the total is what the template renders, the reasoning column counts the trace anyway.

Without a template: per turn, content + reasoning + tool-call names and arguments, counted with the
tokenizer or estimated (ASCII characters / `chars_per_token` + one per other character), plus
`turn_overhead` per turn for the role markers, and the row's `tools` JSON in the prompt. Vectorised.

Defaults are NVIDIA's published Llama-Nemotron post-training recipe: rows over 16k total or 8k
completion tokens are dropped. A template that raises (`raise_exception`, a missing field) rejects
that row as `chat_template_error` with the template's message.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.registry import register
from curate.steps._chat_template import TemplateFileError, compile_template, load_template, template_messages
from curate.steps._messages import excerpt, flatten, per_row_sum
from curate.steps._tokens import TokenCounter, tokenizer_file
from curate.steps.base import MapStep, Params, StepOutput, set_column

BUDGETS = (
    ("total", "over_total_tokens"),
    ("completion", "over_completion_tokens"),
    ("prompt", "over_prompt_tokens"),
    ("reasoning", "over_reasoning_tokens"),
)


class TokenBudgetParams(Params):
    chat_template: str | None = Field(
        None, description="tokenizer_config.json, .jinja file or model folder; none: per-turn counts"
    )
    tokenizer: str | None = Field(
        None, description="tokenizer.json (or a folder holding one); none: the character estimate"
    )
    template_vars: dict[str, str | int | float | bool] = Field(
        {}, description="extra variables for the template (e.g. enable_thinking: false)"
    )
    max_total_tokens: int | None = Field(16384, ge=1, description="reject rows with more tokens in all (Nemotron: 16k)")
    max_completion_tokens: int | None = Field(
        8192, ge=1, description="reject rows whose completion is longer (Nemotron: 8k)"
    )
    max_prompt_tokens: int | None = Field(None, ge=1, description="reject rows whose prompt is longer")
    max_reasoning_tokens: int | None = Field(
        None, ge=1, description="reject rows whose completion's reasoning is longer"
    )
    chars_per_token: float = Field(
        4.0, gt=0, le=20, description="the estimate without a tokenizer: ASCII characters per token"
    )
    turn_overhead: int = Field(6, ge=0, le=1000, description="without a template: tokens per turn for role markers")

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer(cls, v):
        return tokenizer_file(v)

    @field_validator("chat_template")
    @classmethod
    def _template(cls, v):
        if v is not None:
            try:
                load_template(v)
            except TemplateFileError as e:
                raise ValueError(str(e)) from None
        return v


@register
class TokenBudget(MapStep):
    """Prompt / completion / reasoning tokens through the model's chat template; budgets for each."""

    name = "token_budget"
    Params = TokenBudgetParams
    columns = {
        "tokens_prompt": pa.int32(),
        "tokens_completion": pa.int32(),
        "tokens_reasoning": pa.int32(),
        "tokens_total": pa.int32(),
    }

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self._counter = TokenCounter(params.tokenizer, params.chars_per_token, self.name)
        self._template = None
        self._special: dict = {}

    def setup(self) -> None:
        self._counter.load()
        if self._template is None and self.params.chat_template is not None:
            source, self._special = load_template(self.params.chat_template)
            self._template = compile_template(source)

    def process(self, table: pa.Table) -> StepOutput:
        self.setup()
        f = flatten(table)
        role = f.role()
        # The completion starts after the last user turn (or at the first assistant turn without one).
        cut = self._cut(role, f)
        in_completion = f.position >= cut[f.row]
        reasoning = per_row_sum(
            np.where(in_completion & (role == "assistant"), self._counter.count(f.field("reasoning_content")), 0), f
        )
        if self._template is not None:
            prompt, total, errors = self._rendered(table, cut)
        else:
            prompt, total = self._per_turn(table, f, in_completion)
            errors = {}
        completion = np.maximum(total - prompt, 0)
        got = {"total": total, "completion": completion, "prompt": prompt, "reasoning": reasoning}
        n = table.num_rows
        reason: list[str | None] = [None] * n
        detail: list[str | None] = [None] * n
        for r, message in errors.items():
            reason[r], detail[r] = "chat_template_error", excerpt(message, 300)
        for what, code in BUDGETS:
            limit = getattr(self.params, f"max_{what}_tokens")
            if limit is None:
                continue
            for r in np.nonzero(got[what] > limit)[0]:
                if reason[r] is None:
                    reason[r] = code
                    detail[r] = (
                        f"{int(got[what][r]):,} {what} tokens > {limit:,} ({int(prompt[r]):,} prompt + {int(completion[r]):,} completion, {int(reasoning[r]):,} reasoning)"
                    )
        out = table
        for what in ("prompt", "completion", "reasoning", "total"):
            vals = np.minimum(got[what], 2**31 - 1)
            mask = np.zeros(n, bool)
            if errors:
                mask[list(errors)] = what != "reasoning"
            out = set_column(out, f"tokens_{what}", pa.array(vals, pa.int32(), mask=mask))
        counters = Counter({"template_errors": len(errors), "tokens_total": int(total.sum())})
        return StepOutput(out, reason=reason, detail=detail, counters=counters)

    @staticmethod
    def _cut(role: np.ndarray, f) -> np.ndarray:
        n = f.num_rows
        cut = np.zeros(n, np.int64)
        users = np.nonzero(role == "user")[0]
        has_user = np.zeros(n, bool)
        if len(users):
            cut[f.row[users]] = f.position[users] + 1  # later users overwrite: the last one
            has_user[f.row[users]] = True
        assistants = np.nonzero(role == "assistant")[0][::-1]
        first_assistant = np.full(n, -1, np.int64)
        first_assistant[f.row[assistants]] = f.position[assistants]  # reversed: the first one wins
        no_user = ~has_user
        cut[no_user] = np.where(first_assistant[no_user] >= 0, first_assistant[no_user], np.diff(f.offsets)[no_user])
        return cut

    def _rendered(self, table: pa.Table, cut: np.ndarray):
        """Render every row twice (whole; prompt + generation prompt), then tokenize in one batch."""
        rows = table.column("messages").to_pylist()
        tools_col = table.column("tools").to_pylist() if "tools" in table.column_names else [None] * len(rows)
        texts: list[str] = []
        errors: dict[int, str] = {}
        for r, turns in enumerate(rows):
            msgs = template_messages(turns or [])
            try:
                tools = json.loads(tools_col[r]) if tools_col[r] is not None else None
                whole = self._render(msgs, tools, False)
                c = int(cut[r])
                prompt = self._render(msgs[:c], tools, True) if c > 0 else ""
            except Exception as e:  # a template is code: raise_exception, a missing key, a bad type
                errors[r] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                whole = prompt = ""
            texts += [prompt, whole]
        counts = self._counter.count(texts)
        return counts[0::2], counts[1::2], errors

    def _render(self, msgs, tools, generation_prompt: bool) -> str:
        return self._template.render(
            messages=msgs,
            tools=tools,
            add_generation_prompt=generation_prompt,
            **{**self._special, **self.params.template_vars},
        )

    def _per_turn(self, table: pa.Table, f, in_completion: np.ndarray):
        count = self._counter.count
        calls = f.field("tool_calls")
        if len(calls) and calls.null_count < len(calls):
            flat_calls = pc.list_flatten(calls)
            fn = flat_calls.field("function")
            per_call = count(fn.field("name")) + count(fn.field("arguments"))
            parents = pc.list_parent_indices(calls).to_numpy()
            call_tokens = np.bincount(parents, weights=per_call, minlength=len(calls)).astype(np.int64)
        else:
            call_tokens = np.zeros(len(calls), np.int64)
        per_turn = (
            count(f.field("content")) + count(f.field("reasoning_content")) + call_tokens + self.params.turn_overhead
        )
        tools = (
            table.column("tools").combine_chunks()
            if "tools" in table.column_names
            else pa.nulls(table.num_rows, pa.string())
        )
        tools_tokens = self._counter.count_distinct(tools)
        prompt = per_row_sum(np.where(in_completion, 0, per_turn), f) + tools_tokens
        total = per_row_sum(per_turn, f) + tools_tokens
        return prompt, total
