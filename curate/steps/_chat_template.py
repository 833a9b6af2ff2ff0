"""A model's chat template, rendered as transformers' `apply_chat_template` renders it, without
importing transformers (a multi-second import, and a model hub client we do not need).

What transformers does (utils/chat_template_utils.py, tokenization_utils_base.py, 5.x), and this
module repeats: a jinja2 ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the
loopcontrols extension and a `{% generation %}` block; `tojson` as json.dumps(ensure_ascii=False);
globals raise_exception, strftime_now, dict, namespace; messages with their None-valued keys dropped
and the reasoning aliased (`reasoning_content`, `thinking`); the special tokens (bos_token, ...) of
tokenizer_config.json as variables; `tools`, `add_generation_prompt` and the caller's extra variables.
The rendered text is then tokenized without special tokens (`add_special_tokens=False`).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


class TemplateFileError(ValueError):
    """The template file cannot be read or compiled (one line)."""


class _Generation(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` (assistant-mask markers): renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.now().strftime(fmt)


class _Namespace(jinja2.utils.Namespace):
    """transformers' namespace: no underscore-prefixed attributes."""

    def __init__(*args, **kwargs):
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _Namespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"chat templates cannot store {name!r} on a namespace")


def compile_template(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = dict
    env.globals["namespace"] = _Namespace
    return env.from_string(source)


def _token_text(v) -> str | None:
    if isinstance(v, dict):
        return v.get("content")
    return v if isinstance(v, str) else None


def load_template(path: str) -> tuple[str, dict]:
    """(template source, special-token variables) from a tokenizer_config.json, a .jinja file, or a
    model folder holding either. Raises TemplateFileError with one line."""
    p = Path(path)
    if p.is_dir():
        found = [q for q in (p / "chat_template.jinja", p / "tokenizer_config.json") if q.is_file()]
        if not found:
            raise TemplateFileError(f"no chat_template.jinja or tokenizer_config.json in {path}")
        special = load_template(str(p / "tokenizer_config.json"))[1] if (p / "tokenizer_config.json").is_file() else {}
        source = load_template(str(found[0]))[0]
        return source, special
    if not p.is_file():
        raise TemplateFileError(
            f"no chat template at {path} (give a tokenizer_config.json, a .jinja file or a model folder)"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TemplateFileError(f"cannot read {path}: {e}") from None
    if p.suffix != ".json":
        source, special = text, {}
    else:
        try:
            cfg = json.loads(text)
        except ValueError as e:
            raise TemplateFileError(f"{path} is not JSON ({e})") from None
        source = cfg.get("chat_template") if isinstance(cfg, dict) else None
        if isinstance(source, list):  # named templates: the default one
            source = next(
                (t.get("template") for t in source if isinstance(t, dict) and t.get("name") == "default"), None
            )
        if not isinstance(source, str):
            raise TemplateFileError(f"{path} has no chat_template")
        special = {k: _token_text(cfg.get(k)) for k in SPECIAL_KEYS if _token_text(cfg.get(k)) is not None}
        extra = cfg.get("additional_special_tokens")
        if isinstance(extra, list):
            special["additional_special_tokens"] = [t for t in map(_token_text, extra) if t is not None]
    try:
        compile_template(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateFileError(f"{path}: the chat template does not compile: line {e.lineno}: {e.message}") from None
    return source, special


def template_messages(turns: list[dict]) -> list[dict]:
    """Our turns as the dicts apply_chat_template passes to the template. A call-only turn keeps its
    content "" (what the kept set holds): transformers drops a None content, and templates that test
    `content is none` (DeepSeek-R1's) then fail on the missing key rather than render the calls."""
    out = []
    for t in turns:
        m = {"role": t.get("role"), "content": t.get("content")}
        for key in ("reasoning_content", "tool_calls", "tool_call_id", "name"):
            if t.get(key) is not None:
                m[key] = t[key]
        m = {k: v for k, v in m.items() if v is not None}  # transformers drops None-valued keys
        reasoning = next((m[k] for k in REASONING_FIELDS if m.get(k) is not None), None)
        if reasoning is not None:
            m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
        out.append(m)
    return out
