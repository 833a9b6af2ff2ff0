"""Pipeline YAML -> validated config. Every mistake is one line: `file.yaml:LINE: key.path: problem`.

YAML is composed with PyYAML's safe loader so each value keeps its line; pydantic checks types and
limits; the error's location is turned back into the key path and line the user wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from curate.errors import UserError
from curate.registry import find_step, unknown_step_message

# YAML anchors let a small file expand into a huge tree ("billion laughs"); a pipeline never needs
# more than this many nodes.
MAX_YAML_NODES = 20_000
# Plain data only: no !!python/object or other tags that construct something else.
_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputConfig(_Strict):
    path: str | list[str] = Field(description="a file, a directory, a glob, or a list of them")
    format: Literal["auto", "sharegpt", "openai", "alpaca", "parquet"] = "auto"
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="rename input keys: id, conversations, role, text, instruction, input, output, system, history, tools",
    )
    shard_rows: int = Field(10_000, ge=1, le=10_000_000, description="records per unit of work")
    max_record_mb: int = Field(
        64,
        ge=1,
        le=2048,
        description="a JSONL line or JSON array element longer than this is quarantined without being held in memory",
    )

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, v: dict[str, str]) -> dict[str, str]:
        allowed = (
            "id",
            "conversations",
            "role",
            "text",
            "instruction",
            "input",
            "output",
            "system",
            "history",
            "tools",
        )
        for key in v:
            if key not in allowed:
                raise ValueError(f"unknown column role {key!r}; allowed: {', '.join(allowed)}")
        return v

    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)


class OutputConfig(_Strict):
    path: str = "runs/out"
    format: Literal["parquet", "sharegpt", "openai"] = Field(
        "parquet", description="kept/ is always Parquet; sharegpt/openai also write kept.jsonl"
    )
    license: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9.+-]*$",
        description="the dataset card's license: a Hugging Face license id (apache-2.0, cc-by-4.0, mit, other, ...)",
    )
    stats_by: str | None = Field(
        "source",
        description="count kept and rejected rows, and reasons, per value of this column (stats.json, report); null: off",
    )


class RunnerConfig(_Strict):
    type: Literal["auto", "ray", "local"] = Field(
        "auto",
        description="auto: Ray when an address is given (or RAY_ADDRESS is set) or the input is large enough "
        "for Ray's start-up to pay off on these CPUs, else local; ray | local force one",
    )
    address: str | None = Field(None, description="Ray cluster address; default: RAY_ADDRESS, else an embedded Ray")
    num_cpus: int | None = Field(None, ge=1, le=4096, description="CPUs for an embedded Ray (default: all)")
    progress: bool | None = Field(None, description="progress bars (default: on in a terminal, off in CI)")


class PipelineConfig(_Strict):
    input: InputConfig
    output: OutputConfig = Field(default_factory=OutputConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    rules: str | None = Field(None, description="rules directory (default: the rules/ shipped with curate)")
    steps: list[Any] = Field(default_factory=list)  # items checked against the registry below


class StepSpec(BaseModel):
    """One validated item of `steps`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    name: str
    params: Any  # the step's Params instance


class Pipeline(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    source: str  # the file it came from
    config: PipelineConfig
    steps: list[StepSpec]

    def resolved(self) -> dict:
        """The config with every default filled in, as written to the run's pipeline.yaml."""
        data = self.config.model_dump(mode="json")
        data["steps"] = [{s.name: s.params.model_dump(mode="json")} for s in self.steps]
        return data


# --------------------------------------------------------------------------- YAML with lines


def _node_lines(node: yaml.Node, path: tuple, lines: dict, budget: list[int], loader: yaml.SafeLoader) -> Any:
    """Python value of `node`, recording the line of every key path in `lines`."""
    budget[0] -= 1
    if budget[0] < 0:
        raise UserError(
            f"line {node.start_mark.line + 1}: the YAML expands to more than {MAX_YAML_NODES} nodes (anchors/aliases?)"
        )
    lines[path] = node.start_mark.line + 1
    if node.tag not in _PLAIN_TAGS:
        raise UserError(f"line {node.start_mark.line + 1}: YAML tag {node.tag!r} is not allowed in a pipeline")
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise UserError(f"line {key_node.start_mark.line + 1}: keys must be plain names")
            key = key_node.value
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise UserError(f"line {key_node.start_mark.line + 1}: YAML merge keys (<<) are not supported")
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _node_lines(value_node, path + (key,), lines, budget, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_node_lines(v, path + (i,), lines, budget, loader) for i, v in enumerate(node.value)]
    return loader.construct_object(node)


def load_yaml(path: str) -> tuple[dict, dict]:
    """(data, {key path: line}) of a YAML file; UserError on anything wrong with the file."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"pipeline file not found: {path}")
    if p.is_dir():
        raise UserError(f"pipeline path is a directory, not a YAML file: {path}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except PermissionError:
        raise UserError(f"cannot read pipeline file (permission denied): {path}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        raise UserError(f"{path}:{line}: invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML: {e}") from None
    if node is None:
        raise UserError(f"{path}:1: the pipeline is empty; it needs at least 'input' and 'steps'")
    lines: dict = {}
    try:
        data = _node_lines(node, (), lines, [MAX_YAML_NODES], yaml.SafeLoader(""))
    except UserError as e:
        raise UserError(f"{path}:{str(e).removeprefix('line ')}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}:1: the pipeline must be a mapping with 'input', 'output', 'runner' and 'steps'")
    return data, lines


# --------------------------------------------------------------------------- error text


def _loc_str(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_for(lines: dict, loc: tuple) -> int:
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1)


def _describe(err: dict, allowed_keys: list[str] | None = None) -> str:
    """A pydantic error as 'what is wrong (got X)'."""
    kind = err["type"]
    ctx = err.get("ctx", {})
    got = err.get("input")
    got_s = f" (got {got!r})"
    if kind == "extra_forbidden":
        allowed = f"; allowed: {', '.join(allowed_keys)}" if allowed_keys else ""
        return f"unknown key{allowed}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"must be {op} {bound}{got_s}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}{got_s}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"must be an integer{got_s}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number{got_s}"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false{got_s}"
    if kind == "string_type":
        return f"must be a string{got_s}"
    if kind in ("list_type",):
        return f"must be a list{got_s}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must list at least {n} item{'s' if n != 1 else ''}{got_s}"
    if kind == "too_long":
        return f"must list at most {ctx.get('max_length')} items"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping{got_s}"
    if kind == "value_error":
        return f"{ctx.get('error', err['msg'])!s}"
    return f"{err['msg'].lower()}{got_s}"


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """Field names of the model that contains `loc` (for 'unknown key; allowed: ...')."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = field.annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _fail(source: str, lines: dict, loc: tuple, message: str) -> UserError:
    return UserError(f"{source}:{_line_for(lines, loc)}: {_loc_str(loc)}: {message}")


def _first_error(
    source: str, lines: dict, exc: ValidationError, model: type[BaseModel], prefix: tuple = ()
) -> UserError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    # pydantic puts the union member in the location (path.str / path.list[str]); users wrote neither.
    loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("str", "int", "float", "bool"))))
    return _fail(source, lines, prefix + loc, _describe(err, _allowed_keys(model, loc)))


# --------------------------------------------------------------------------- the entry point


def load_pipeline(path: str, overrides: dict | None = None) -> Pipeline:
    """Read, validate and return a pipeline; raise UserError with one line on any mistake."""
    data, lines = load_yaml(path)
    for key, value in (overrides or {}).items():
        section, field = key.split(".")
        data.setdefault(section, {})
        if isinstance(data[section], dict):
            data[section][field] = value
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise _first_error(path, lines, e, PipelineConfig) from None
    steps: list[StepSpec] = []
    for i, item in enumerate(config.steps):
        loc = ("steps", i)
        if not isinstance(item, dict) or len(item) != 1:
            raise _fail(
                path, lines, loc, "each step must be a mapping with one key, the step name, e.g. '- exact_dedup: {}'"
            )
        name, params = next(iter(item.items()))
        try:
            cls = find_step(name) if isinstance(name, str) else None
        except UserError as e:  # a user's step class that cannot be imported or is not a step
            raise _fail(path, lines, loc + (name,), str(e)) from None
        if cls is None:
            raise _fail(path, lines, loc + (name,), unknown_step_message(name))
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise _fail(path, lines, loc + (name,), f"step parameters must be a mapping (got {params!r})")
        try:
            validated = cls.Params.model_validate(params)
        except ValidationError as e:
            err = e.errors()[0]
            ploc = tuple(err["loc"])
            line = _line_for(lines, loc + (name,) + ploc)
            allowed = list(cls.Params.model_fields) if err["type"] == "extra_forbidden" else None
            raise UserError(f"{path}:{line}: {_loc_str(loc + ploc)}: {_describe(err, allowed)}") from None
        steps.append(StepSpec(name=name, params=validated))
    _check_stats_by(path, lines, config, steps)
    return Pipeline(source=path, config=config, steps=steps)


def _check_stats_by(path: str, lines: dict, config: PipelineConfig, steps: list[StepSpec]) -> None:
    """output.stats_by names a column of the canonical row or one a listed step adds."""
    from curate.schema import ROW_SCHEMA, public_columns

    column = config.output.stats_by
    known = [n for n in public_columns(ROW_SCHEMA) if n != "messages"]
    known += [c for s in steps for c in find_step(s.name).columns if c not in known]
    if column is not None and column not in known:
        raise _fail(path, lines, ("output", "stats_by"), f"unknown column {column!r}; known: {', '.join(known)}")
