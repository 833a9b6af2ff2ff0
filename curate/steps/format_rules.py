"""format_rules: the ShareGPT conventions, each rule with its own reason and switch.

In order, per conversation:
  1. artifacts      remove what the ChatGPT page leaves in scraped text: a regenerate counter at the
                    start of a turn ("1 / 2"), "Copy code" lines, "N chars / N words" lines
  2. empty          truncate at the first empty turn (what follows answers something else); empty
                    is curate.blank's definition: nothing but whitespace and invisible characters;
                    an assistant turn that only calls tools, and a tool's result, are not empty
  3. error_replies  remove a rate-limit or error reply (rules/format_rules.yaml) and the prompt it
                    answered; the rest of the dialogue stays
  4. alternation    after an optional system turn, user and assistant must alternate (tool turns
                    belong to the assistant side: user, assistant [tool calls, tool results]...,
                    answer): consecutive turns of one role are merged (non_alternating: merge) or
                    the row is rejected (non_alternating: drop); a turn with tool calls is never
                    merged
  5. edges          a leading assistant turn and a trailing user turn are trimmed
  6. restarted_list an assistant turn whose numbered list restarts at "1." every item (a broken
                    HTML conversion) is renumbered (or rejects the row: restarted_list: drop)
  7. min_turns / min_chars  what is left must have enough turns and characters
Rows that lose every turn to 2-5 are rejected with the reason of the rule that emptied them.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.blank import blank_mask, is_blank
from curate.registry import register
from curate.schema import conversations_from_turns, has_tool_calls, turns_of
from curate.steps.base import MapStep, Params, StepOutput

_COUNTER = re.compile(r"\A\s*\d{1,2}\s*/\s*\d{1,2}\s*\n+")
_ARTIFACT_LINES = re.compile(r"^\s*(Copy code|Copy|\d[\d,]*\s+chars?\s*/\s*\d[\d,]*\s+words?)\s*$\n?", re.M | re.I)
_NUMBERED = re.compile(r"^\s*(\d+)[.)]\s+\S", re.M)
SIDE = {"user": 0, "assistant": 1, "tool": 1}


def _renumber(text: str) -> str:
    """'1. a\n1. b\n\n1. c' -> '1. a\n2. b\n\n3. c' (a list converted from HTML lost its numbers)."""
    count = iter(range(1, 1_000_000))
    return re.sub(
        r"^(\s*)1([.)])(\s)", lambda m: f"{m.group(1)}{next(count)}{m.group(2)}{m.group(3)}", text, flags=re.M
    )


# Python's \s and \d on str, as RE2 classes (RE2's own are ASCII): whitespace is \t-\r, \x1c-\x20, \x85
# and the Unicode separators; digits are Unicode decimal digits.
_PY_SPACE = r"[\t-\r\x{1c}-\x{20}\x{85}\p{Z}]"
_COUNTER_START = rf"\A{_PY_SPACE}*\p{{Nd}}{{1,2}}{_PY_SPACE}*/"
_ARTIFACT_LINE_START = rf"(?im)^{_PY_SPACE}*(?:copy|\p{{Nd}}[\p{{Nd}},]*{_PY_SPACE}+char)"


def _artifact_free(texts: pa.Array) -> np.ndarray:
    """Turns in which neither artifact pattern can match (RE2 passes over the batch): every match of
    _COUNTER starts the text with one or two digits and a "/", every match of _ARTIFACT_LINES starts a
    line with "copy" or a number and "char", in some case. A null turn is not free: the artifact pass turns it into "".
    (The test before 2026-12-05, a "/" or "copy"/"char" anywhere, held for 27% of make_corpus's
    turns: URLs, dates, "characters".)"""
    words = pc.match_substring_regex(texts, _ARTIFACT_LINE_START).fill_null(True)
    counter = pc.match_substring_regex(texts, _COUNTER_START).fill_null(True)
    return ~pc.or_(words, counter).to_numpy(zero_copy_only=False)


class FormatParams(Params):
    artifacts: bool = Field(True, description="remove regenerate counters, 'Copy code' and 'N chars / N words' lines")
    truncate_at_empty: bool = Field(True, description="cut the conversation at its first empty turn")
    error_replies: bool = Field(True, description="remove turn pairs whose reply is an error message")
    non_alternating: Literal["merge", "drop", "keep"] = Field(
        "merge", description="consecutive turns of one role: merge them, drop the row, or keep"
    )
    trim_edges: bool = Field(True, description="trim a leading assistant turn and a trailing user turn")
    restarted_list: Literal["renumber", "drop", "keep"] = Field(
        "renumber", description="a numbered list whose items are all '1.': renumber it, drop the row, or keep"
    )
    min_turns: int = Field(2, ge=0, le=1000, description="minimum user+assistant turns left")
    min_chars: int = Field(1, ge=0, le=10_000_000, description="minimum characters left in all turns")


@register
class FormatRules(MapStep):
    """ShareGPT conventions: artifacts, empty turns, error replies, role alternation, edges, minimums."""

    name = "format_rules"
    Params = FormatParams

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self._errors: re.Pattern | None = None

    def setup(self) -> None:
        if self._errors is None:
            phrases = self.ctx.rules_yaml("format_rules.yaml", "the error-reply phrases").get("error_replies", [])
            self._errors = re.compile(r"\A\s*(" + "|".join(re.escape(p) for p in phrases) + r")", re.I)

    def _untouched_rows(self, t, texts: list, calls: np.ndarray, artifact_free: np.ndarray) -> np.ndarray:
        """Rows none of the rules would change or reject, found with array operations: the loop in
        process() skips them. Most rows of a clean dump are such rows, and the loop costs Python
        per turn (0.6 s per 20k rows). Each condition is the negation of what a rule acts on, read
        off the loop below; tests/steps/test_format_rules.py checks the rows skipped against the
        loop on real and generated conversations."""
        p = self.params
        n, role, row = t.num_rows, t.role.astype(str), t.row
        first = t.position == 0
        is_user, is_assistant, is_system, is_tool = (role == x for x in ("user", "assistant", "system", "tool"))

        def any_in_row(turn_flags: np.ndarray) -> np.ndarray:
            return np.bincount(row[turn_flags], minlength=n) > 0

        bad = np.zeros(len(role), bool)  # turns that make their row go through the loop
        if p.artifacts:
            bad |= ~artifact_free
        if p.truncate_at_empty:
            bad |= blank_mask(t.text) & ~calls & ~is_tool
        if p.error_replies:
            assistant = np.nonzero(is_assistant)[0]
            bad[assistant] |= np.array([self._errors.match(texts[i] or "") is not None for i in assistant], bool)
        if p.restarted_list != "keep":
            # a list numbered 1, 1, 1 holds "1." or "1)", or a non-ASCII digit one (Python's \d: "١.")
            one = pc.match_substring_regex(t.text, r"(?:1|[^\x00-\x7f])[.)]")
            maybe = np.nonzero(is_assistant & pc.fill_null(one, False).to_numpy(zero_copy_only=False))[0]
            for i in maybe:
                nums = [int(m) for m in _NUMBERED.findall(texts[i] or "")]
                bad[i] |= len(nums) >= 3 and all(x == 1 for x in nums)
        bad |= is_system & ~first  # a system turn after the first is dropped
        out = ~any_in_row(bad)
        body = ~(is_system & first)
        body_idx = np.nonzero(body)[0]
        if p.non_alternating != "keep" and len(body_idx) > 1:
            a, b = body_idx[:-1], body_idx[1:]
            side = np.zeros(len(role), np.int8)  # SIDE.get(role, 0), per turn
            for name, value in SIDE.items():
                side[role == name] = value
            same = (row[a] == row[b]) & (side[a] == side[b]) & ~is_tool[a] & ~is_tool[b] & ~calls[a] & ~calls[b]
            merged = np.zeros(len(role), bool)
            merged[b[same]] = True  # the later of two turns of one side in a row: merged or rejected
            out &= ~any_in_row(merged)
        body_counts = np.bincount(row[body_idx], minlength=n)
        first_body = np.full(n, -1, np.int64)
        last_body = np.full(n, -1, np.int64)
        if len(body_idx):
            first_body[row[body_idx[::-1]]] = body_idx[::-1]
            last_body[row[body_idx]] = body_idx
        has_body = body_counts > 0
        if p.trim_edges:
            out &= has_body
            out[has_body] &= is_user[first_body[has_body]] & ~is_user[last_body[has_body]]
        dialogue = np.bincount(row[body & (is_user | is_assistant)], minlength=n)
        out &= dialogue >= max(p.min_turns, 0)
        lengths = pc.utf8_length(pc.fill_null(t.text, "")).to_numpy().astype(np.int64)
        out &= np.bincount(row[body_idx], weights=lengths[body_idx], minlength=n) >= p.min_chars
        return out

    def process(self, table: pa.Table) -> StepOutput:
        self.setup()
        p = self.params
        t = turns_of(table)
        original = t.text.to_pylist()
        texts = list(original)
        roles = t.role
        calls = has_tool_calls(table)
        keep = np.ones(len(texts), bool)
        n = table.num_rows
        reason, detail = [None] * n, [None] * n
        counters: Counter = Counter()
        artifact_free = _artifact_free(t.text) if p.artifacts else keep
        untouched = self._untouched_rows(t, texts, calls, artifact_free)
        for r in range(n):
            if untouched[r]:
                continue
            lo, hi = int(t.offsets[r]), int(t.offsets[r + 1])
            idx = list(range(lo, hi))
            why = None
            if p.artifacts:
                for i in idx:
                    if artifact_free[i]:
                        continue
                    new = _ARTIFACT_LINES.sub("", _COUNTER.sub("", texts[i] or ""))
                    if new != texts[i]:
                        texts[i] = new.strip()
                        counters["artifacts_removed"] += 1
            if p.truncate_at_empty:
                for k, i in enumerate(idx):
                    if is_blank(texts[i]) and not calls[i] and roles[i] != "tool":
                        counters["truncated_at_empty"] += 1
                        idx, why = idx[:k], why or "empty_turn"
                        break
            if p.error_replies:
                failed = {
                    k for k, i in enumerate(idx) if roles[i] == "assistant" and self._errors.match(texts[i] or "")
                }
                if failed:
                    # the failed reply and the prompt it answered go; the rest of the dialogue stays
                    drop = failed | {k - 1 for k in failed if k and roles[idx[k - 1]] == "user"}
                    counters["error_replies_removed"] += len(failed)
                    idx, why = [i for k, i in enumerate(idx) if k not in drop], why or "error_reply"
            body = [i for i in idx if roles[i] != "system"]
            system = [i for i in idx if roles[i] == "system"][:1] if idx and roles[idx[0]] == "system" else []
            if p.non_alternating != "keep":
                merged: list[int] = []
                for i in body:
                    if (
                        merged
                        and SIDE.get(roles[i], 0) == SIDE.get(roles[merged[-1]], 0)
                        and "tool" not in (roles[i], roles[merged[-1]])
                        and not (calls[i] or calls[merged[-1]])
                    ):
                        if p.non_alternating == "drop":
                            reason[r], detail[r] = (
                                "roles_not_alternating",
                                f"turns {merged[-1] - lo} and {i - lo} are both {roles[i]}",
                            )
                            break
                        texts[merged[-1]] = (texts[merged[-1]] or "").rstrip() + "\n\n" + (texts[i] or "").lstrip()
                        counters["turns_merged"] += 1
                    else:
                        merged.append(i)
                body = merged
            if reason[r] is None and p.trim_edges:
                while body and roles[body[0]] != "user":
                    body = body[1:]
                    counters["leading_turn_trimmed"] += 1
                while body and roles[body[-1]] == "user":
                    body = body[:-1]
                    counters["trailing_user_trimmed"] += 1
            kept = set(system + body) if reason[r] is None else set(range(lo, hi))
            for i in range(lo, hi):
                keep[i] = i in kept
            if reason[r] is not None:
                continue
            if p.restarted_list != "keep":
                for i in body:
                    if roles[i] != "assistant":
                        continue
                    nums = [int(m) for m in _NUMBERED.findall(texts[i] or "")]
                    if len(nums) >= 3 and all(x == 1 for x in nums):
                        if p.restarted_list == "drop":
                            reason[r], detail[r] = (
                                "restarted_numbered_list",
                                f"turn {i - lo}: every item of a {len(nums)}-item list is numbered 1",
                            )
                            break
                        texts[i] = _renumber(texts[i])
                        counters["lists_renumbered"] += 1
                if reason[r]:
                    continue
            dialogue = [i for i in body if roles[i] in ("user", "assistant")]
            if len(dialogue) < max(p.min_turns, 1 if why else 0):
                reason[r] = why if why and len(dialogue) == 0 else "too_few_turns"
                detail[r] = f"{len(dialogue)} user/assistant turns left (min {p.min_turns})" + (
                    f" after {why}" if why else ""
                )
            elif sum(len(texts[i] or "") for i in body) < p.min_chars:
                reason[r], detail[r] = "too_short", f"fewer than {p.min_chars} characters"
        # a rejected row keeps its turns as they were (the rejected set shows the input)
        for r in range(n):
            if reason[r] is not None:
                lo, hi = int(t.offsets[r]), int(t.offsets[r + 1])
                keep[lo:hi] = True
                texts[lo:hi] = original[lo:hi]
        out = conversations_from_turns(table, keep, pa.array(texts, pa.string()))
        return StepOutput(out, reason=reason, detail=detail, counters=counters)
