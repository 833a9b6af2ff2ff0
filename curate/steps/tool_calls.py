"""tool_calls: every call well-formed, declared, valid against its schema, and answered.

Checked per row, first violation wins, one reason each (the detail names the turn and the call,
`_curate_drop_span` holds the call as `name(arguments)` so the report shows it):

  tools_invalid               the row's `tools` is not a JSON list of functions with names, or a
                              function's `parameters` is not a valid JSON schema
  tool_call_no_name           a call without a function name
  tool_arguments_not_json     `arguments` does not parse as JSON
  tool_arguments_not_object   it parses, but not to an object
  tool_call_unknown_function  the row declares tools and this name is not one of them
  tool_argument_missing / tool_argument_type / tool_argument_enum / tool_argument_unexpected /
  tool_arguments_invalid      the arguments fail the function's `parameters` schema (jsonschema):
                              a required key absent, a wrong type, a value outside an enum, a key
                              the schema closes out, anything else
  tool_call_duplicate_id      two calls of the row share an id
  tool_result_orphan          a tool message that answers no open call
  tool_call_unanswered        a call still open when the next user or assistant turn comes
  tool_call_open_at_end       the conversation ends on calls nobody answered (`open_end: keep` for
                              sets whose target is the call itself, e.g. BFCL-style items)

Tool messages with a `tool_call_id` answer the call with that id. Without one (ShareGPT
`observation`, LLaMA-Factory), they answer the open calls in order; with `grouped_results` (the
default) a single result may answer all the calls of the turn before it, since LLaMA-Factory and
glaive put parallel results in one observation.

Schemas: BFCL and APIGen / xLAM write Python type names (`dict`, `float`, `tuple`, `str, optional`,
`List[int]`); they are read as their JSON-schema types, and a name that names none (`any`) constrains
nothing. Schemas are read as JSON Schema draft 7 (what OpenAI's function `parameters` are; checking a
schema against the 2020-12 metaschema costs 4.5x more). Each distinct schema is compiled once per worker; each distinct `tools` string is
parsed once. Rows without calls, tool messages or tools are never looked at in Python.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.registry import register
from curate.steps._messages import excerpt, flatten
from curate.steps.base import MapStep, Params, StepOutput, set_column

JSON_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}
# Python type names (BFCL, APIGen / xLAM) -> JSON-schema types.
TYPE_ALIASES = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "list": "array",
    "set": "array",
    "str": "string",
    "int": "integer",
    "bool": "boolean",
}
# jsonschema's validator keyword -> our reason.
SCHEMA_REASONS = {
    "required": "tool_argument_missing",
    "type": "tool_argument_type",
    "enum": "tool_argument_enum",
    "const": "tool_argument_enum",
    "additionalProperties": "tool_argument_unexpected",
}


class ToolCallsParams(Params):
    validate_arguments: bool = Field(True, description="check arguments against the function's JSON-schema parameters")
    declared_only: bool = Field(
        True, description="reject calls to functions the row's tools do not declare (rows with tools)"
    )
    open_end: Literal["reject", "keep"] = Field("reject", description="a conversation that ends on unanswered calls")
    grouped_results: bool = Field(
        True, description="one id-less tool message may answer all calls of the turn before it"
    )


def _json_type(name: str) -> str | None:
    """'str, optional' -> 'string', 'List[int]' -> 'array', 'dict' -> 'object'; None: unknown ('any')."""
    base = name.split(",")[0].strip().lower()
    base = base.split("[")[0].removeprefix("typing.").strip()
    return base if base in JSON_TYPES else TYPE_ALIASES.get(base)


def _normalise(schema):
    """Python type names to JSON-schema ones, recursively (a copy); a type name we cannot read
    ('any', 'callable') constrains nothing rather than failing a real row's schema."""
    if isinstance(schema, dict):
        out = {k: _normalise(v) for k, v in schema.items()}
        t = out.get("type")
        if isinstance(t, str) and t not in JSON_TYPES:
            mapped = _json_type(t)
            if mapped is None:
                del out["type"]
            else:
                out["type"] = mapped
        return out
    if isinstance(schema, list):
        return [_normalise(v) for v in schema]
    return schema


class ToolsError(ValueError):
    pass


@register
class ToolCalls(MapStep):
    """Validate tool calls: JSON arguments, declared functions, JSON-schema parameters, every call answered."""

    name = "tool_calls"
    Params = ToolCallsParams
    columns = {"tool_call_count": pa.int32()}

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self._tools_cache: dict[str, dict | ToolsError] = {}
        self._validators: dict[str, object] = {}

    def _validator(self, params: dict):
        from jsonschema import Draft7Validator
        from jsonschema.exceptions import SchemaError

        key = json.dumps(params, sort_keys=True)
        v = self._validators.get(key)
        if v is None:
            schema = _normalise(params)
            try:
                Draft7Validator.check_schema(schema)
            except SchemaError as e:
                raise ToolsError(f"parameters are not a valid JSON schema: {e.message}") from None
            v = self._validators[key] = Draft7Validator(schema)
        return v

    def _functions(self, tools: str) -> dict:
        """name -> validator (or None: no parameters schema), parsed once per distinct `tools` string."""
        got = self._tools_cache.get(tools)
        if got is None:
            try:
                got = self._parse_tools(tools)
            except ToolsError as e:
                got = e
            if len(self._tools_cache) > 10_000:
                self._tools_cache.clear()
            self._tools_cache[tools] = got
        if isinstance(got, ToolsError):
            raise got
        return got

    def _parse_tools(self, tools: str) -> dict:
        try:
            items = json.loads(tools)
        except (ValueError, RecursionError) as e:
            raise ToolsError(f"tools is not JSON ({e})") from None
        if not isinstance(items, list):
            raise ToolsError(f"tools is a JSON {type(items).__name__}, not a list")
        out = {}
        for k, item in enumerate(items):
            fn = item.get("function", item) if isinstance(item, dict) else None
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(name, str) or not name:
                raise ToolsError(f"tools[{k}] has no function name")
            params = fn.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise ToolsError(f"tools[{k}] ({name}): parameters is not an object")
            out[name] = self._validator(params) if params and self.params.validate_arguments else None
        return out

    def process(self, table: pa.Table) -> StepOutput:
        f = flatten(table)
        n = table.num_rows
        role = f.role()
        ncalls = (
            pc.fill_null(pc.list_value_length(f.field("tool_calls")), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        )
        calls_per_row = np.bincount(f.row, weights=ncalls, minlength=n).astype(np.int64)
        tool_turns = np.bincount(f.row, weights=role == "tool", minlength=n)
        tools = table.column("tools").combine_chunks() if "tools" in table.column_names else pa.nulls(n, pa.string())
        has_tools = tools.is_valid().to_numpy(zero_copy_only=False)
        todo = np.nonzero((calls_per_row > 0) | (tool_turns > 0) | has_tools)[0]

        reason: list[str | None] = [None] * n
        detail: list[str | None] = [None] * n
        span: list[str | None] = [None] * n
        turn: list[int | None] = [None] * n
        counters: Counter = Counter()
        if len(todo):
            # Python values only for the rows that need them.
            lo, hi = f.offsets[todo], f.offsets[todo + 1]
            idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(todo) else np.zeros(0, np.int64)
            sub = f.values.take(pa.array(idx, pa.int64()))
            s_role = sub.field("role").to_pylist()
            s_calls = sub.field("tool_calls").to_pylist()
            s_id = sub.field("tool_call_id").to_pylist()
            tool_strings = tools.take(pa.array(todo)).to_pylist()
            start = 0
            for k, r in enumerate(todo):
                length = int(hi[k] - lo[k])
                sl = slice(start, start + length)
                start += length
                verdict = self._check_row(tool_strings[k], s_role[sl], s_calls[sl], s_id[sl])
                if verdict is not None:
                    reason[r], turn[r], detail[r], span[r] = verdict
        counters["calls"] = int(calls_per_row.sum())
        counters["rows_with_calls"] = int((calls_per_row > 0).sum())
        out = set_column(table, "tool_call_count", pa.array(np.minimum(calls_per_row, 2**31 - 1), pa.int32()))
        return StepOutput(out, reason=reason, detail=detail, span=span, turn=turn, counters=counters)

    def _check_row(self, tools, roles, calls, call_ids):
        """(reason, turn, detail, span) of the first violation, or None."""
        p = self.params
        functions = None
        if tools is not None:
            try:
                functions = self._functions(tools)
            except ToolsError as e:
                return "tools_invalid", None, excerpt(str(e)), excerpt(tools)
        open_calls: list[tuple[str, str, int]] = []  # (id, shown call, turn) in order
        seen_ids: set[str] = set()
        answered: set[str] = set()
        run_start = None  # first tool message of the current run of id-less results
        for i, role in enumerate(roles):
            if role == "tool":
                cid = call_ids[i]
                if cid is not None:
                    hit = next((j for j, c in enumerate(open_calls) if c[0] == cid), None)
                    if hit is None:
                        why = (
                            "answers a call already answered"
                            if cid in answered
                            else "answers no call of this conversation"
                        )
                        return "tool_result_orphan", i, f"turn {i}: tool result for id {cid!r} {why}", cid
                    answered.add(open_calls.pop(hit)[0])
                    continue
                if not open_calls:
                    return "tool_result_orphan", i, f"turn {i}: a tool result with no open call before it", None
                if run_start is None:
                    run_start = i
                answered.add(open_calls.pop(0)[0])
                nxt = roles[i + 1] if i + 1 < len(roles) else None
                if p.grouped_results and i == run_start and nxt != "tool":
                    answered.update(c[0] for c in open_calls)  # one observation for the turn's parallel calls
                    open_calls.clear()
                continue
            run_start = None
            if role in ("user", "assistant") and open_calls:
                cid, shown, at = open_calls[0]
                return "tool_call_unanswered", at, f"turn {at}: call {shown} has no result before turn {i}", shown
            for k, call in enumerate(calls[i] or ()):
                verdict = self._check_call(call, functions)
                shown = self._shown(call)
                if verdict is not None:
                    code, why = verdict
                    return code, i, f"turn {i}, call {k}: {shown}: {why}", shown
                cid = call.get("id") or f"call_{i}_{k}"
                if cid in seen_ids:
                    return "tool_call_duplicate_id", i, f"turn {i}, call {k}: id {cid!r} used twice", shown
                seen_ids.add(cid)
                open_calls.append((cid, shown, i))
        if open_calls:
            cid, shown, at = open_calls[0]
            if roles and roles[-1] == "assistant" and at == len(roles) - 1:
                if p.open_end == "keep":
                    return None
                return "tool_call_open_at_end", at, f"turn {at}: the conversation ends on call {shown}", shown
            return "tool_call_unanswered", at, f"turn {at}: call {shown} has no result", shown
        return None

    @staticmethod
    def _shown(call) -> str:
        fn = call.get("function") or {}
        return excerpt(f"{fn.get('name')}({fn.get('arguments')})", 300)

    def _check_call(self, call, functions) -> tuple[str, str] | None:
        fn = call.get("function") or {}
        name, args = fn.get("name"), fn.get("arguments")
        if not name:
            return "tool_call_no_name", "the call names no function"
        try:
            value = json.loads(args) if args is not None else {}
        except (ValueError, RecursionError) as e:
            return "tool_arguments_not_json", f"arguments are not JSON ({e})"
        if not isinstance(value, dict):
            return "tool_arguments_not_object", f"arguments are a JSON {type(value).__name__}, not an object"
        if functions is None:
            return None
        if name not in functions:
            if self.params.declared_only:
                return (
                    "tool_call_unknown_function",
                    f"{name!r} is not among the row's tools ({', '.join(sorted(functions)[:10])})",
                )
            return None
        validator = functions[name]
        if validator is None:
            return None
        error = next(iter(validator.iter_errors(value)), None)
        if error is None:
            return None
        where = "/".join(str(x) for x in error.absolute_path)
        return SCHEMA_REASONS.get(error.validator, "tool_arguments_invalid"), excerpt(error.message, 200) + (
            f" (at {where})" if where else ""
        )
