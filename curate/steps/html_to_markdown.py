"""html_to_markdown: turns written in HTML (ChatGPT-export scrapes, forum posts) become Markdown.

Engine: the compiled `html-to-markdown` converter (Rust), chosen on measurements
(benchmarks/cleaning/render_compare.py and html_speed.py): with Markdown escaping switched on it renders
like the expected output in more cases of markdownify's and turndown's own test suites than either
peer, loses no visible text on them, and converts ~20x faster than beautifulsoup4-based code. Around it
sit curate's rules: the ChatGPT code-block chrome (language label, "Copy code" button) becomes the
fence's language, regenerate counters ("2 / 2") and "Copy N chars / M words" go, a no-break space
stays one, and beautifulsoup4 repairs markup the converter rejects before one more try.

Which turns: one vectorised RE2 test per batch (closing tags of HTML elements, `<br>` outside a Markdown
table row, `<hr>`, `<img src>`, comments, `<!DOCTYPE html>`, `<html>`/`<body>`, two opening tags),
re-checked outside Markdown code for the few turns with backticks. Prose that mentions `<div>` once,
`a < b`, or HTML shown in a code fence is not touched. A turn that mixes Markdown fences with HTML
keeps its fences byte for byte and has only the rest converted, without Markdown escaping (the rest
is already Markdown). Markup nested deeper than `max_depth` or longer than `max_chars`, or that
nothing can parse, rejects the row with a reason instead of crashing or losing text.

Cost: the converter runs turn by turn (about two thirds of the step's time); curate's rules around it are
regexes that run only on the turns where a batch-wide RE2 pass found what they look for (_MAY_PATTERNS on
the HTML, _MD_PATTERNS on the converter's Markdown), so most turns pay for none of them.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

import html_to_markdown as h2m
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.registry import register
from curate.schema import Part, parts_param, turns_of, with_texts
from curate.steps import _literal
from curate.steps.base import MapStep, Params, StepOutput, set_column

_ELEMENTS = (
    r"a|abbr|address|article|aside|audio|b|bdi|bdo|blockquote|body|button|canvas|caption|center|cite|code|dd|del|details"
    r"|dfn|div|dl|dt|em|fieldset|figcaption|figure|font|footer|form|h[1-6]|head|header|html|i|iframe|ins|kbd|label|legend"
    r"|li|main|mark|nav|noscript|ol|p|pre|q|s|samp|script|section|select|small|span|strike|strong|style|sub|summary|sup"
    r"|table|tbody|td|textarea|tfoot|th|thead|time|title|tr|tt|u|ul|var|video"
)
_OPEN = rf"<(?:{_ELEMENTS})(?:\s[^<>]*)?>"
# Markup: a closing tag of an HTML element; a <br> on a line that is not a Markdown table row (tables
# break lines in cells with <br>); <hr>; an image; a comment; a document; or two opening tags (one
# "<div>" in prose is a mention).
_STRUCTURAL = (
    rf"(?i:</(?:{_ELEMENTS})\s*>|(?m:^[^|\n]*<br\s*/?>)|<hr\s*/?>|<img\s[^<>]*src\s*=|(?s:<!--.*?-->)|<!doctype\s+html"
    rf"|<(?:html|body)[\s>]|(?s:{_OPEN}.*{_OPEN}))"
)
_FENCE = re.compile(r"```.*?(```|$)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)([^<>]*?)(/?)>")
_VOID = {
    "br",
    "hr",
    "img",
    "input",
    "meta",
    "link",
    "area",
    "base",
    "col",
    "embed",
    "source",
    "track",
    "wbr",
    "path",
    "rect",
    "circle",
    "line",
    "polyline",
    "polygon",
    "param",
    "keygen",
}
_OPEN_TAG_COUNT = r"<[A-Za-z]"

# ChatGPT's code block: <pre><div><div HEADER>lang + Copy-code button</div><div><code class="language-x">...
# </code></div></div></pre> becomes <pre><code class="language-x">...</code></pre> (two constant substitutions,
# the second only where the first found a header).
_CHATGPT_HEAD = re.compile(
    r"<pre[^>]*>\s*<div[^>]*>\s*<div[^>]*>(?:(?!</div>).)*?</div>\s*<div[^>]*>\s*(?=<code)", re.S | re.I
)
_CHATGPT_TAIL = re.compile(r"</code>\s*</div>\s*</div>\s*</pre>", re.I)
_COPY_CODE_LEFT = re.compile(r"^(```+)[^\n]*\n([\w+#.-]*)Copy code\n", re.M)  # a header the rule above missed
_COPY_CHARS = re.compile(r"Copy\d+ chars / \d+ words")
_REGENERATE = re.compile(r"\A\d+ / \d+\s*\n")  # "2 / 2" above a regenerated reply, on its own line
_NBSP = re.compile(r"\xa0|&(?:nbsp|NBSP|#160|#[xX]0*[aA]0);")
_KEEP_NBSP = "\ue000"  # the converter folds a no-break space into a space; a private-use stand-in survives
_OL_START = re.compile(r"""(<ol\b[^>]*?)\s+start\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*))""", re.I)
# Escapes the converter writes that CommonMark does not need, undone in prose (not in code) so the text a
# model trains on has no stray backslashes: `\&` not starting an entity, `\_` inside a word, and `\-`, `\+`,
# `\=`, `\#`, `\>` after the start of a line's text (only there do they begin a list, heading or quote).
# Prose and code are told apart by splitting at code spans (a backtick run to the next run of the same
# length: inline code and fences alike); in prose the needless backslashes are deleted by one constant
# substitution (no per-match Python: this runs on every converted turn).
# Possessive quantifiers let the scan jump from one backtick run to the next instead of trying every character
# (2.4x faster; the same spans as `(`+).+?(?<!`)\2(?!`)`: a closing run can only start after a non-backtick).
_CODE_SPLIT = re.compile(r"((`+).[^`]*+(?:`++[^`]++)*?(?<!`)\2(?!`))", re.S)
_DROP_ESCAPE = re.compile(r"\\(?:(?=[-+=#>]|&(?![A-Za-z0-9#]+;))|(?<=[^\W_]\\)(?=_[^\W_]))")
# Escapes that start a line's text stay: marked before the pass (in code too: the mark is undone after).
# On "\n" + text; possessive where what follows cannot match what a quantifier gave up (1.7x faster, same matches).
_LINE_START_ESCAPE = re.compile(r"(\n[ \t>]*+(?:(?:[-+*]|\d{1,9}+[.)])[ \t]++)*+)\\([-+=#>])")
_MARK, _BACKSLASH = "\ue001", "\ue002"  # private-use stand-ins: a kept escape, a literal backslash
_CODE_ELEMENT = re.compile(r"<code\b[^>]*>.*?</code\s*>", re.S | re.I)
_BR = re.compile(r"<br\s*/?>", re.I)
_PRE_BLOCK = re.compile(r"<pre\b.*?</pre\s*>", re.S | re.I)
_MD_FENCE_LINE = re.compile(r"(?m)^ {0,3}(```|~~~)")
_MD_FENCE_BLOCK = re.compile(r"(?ms)^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?^ {0,3}\1[`~]*[ \t]*$")

# Which of _convert's passes can change a turn, decided for a whole batch by RE2 passes (no per-turn Python).
# Each pattern finds a superset of what its pass looks for: its literals ("0;" stands for "a0;", "A0;" and
# "#160;"), or the start of the tag its regex opens with (Python's case-insensitive "pre", "ol" and "code" match
# ASCII letters only). A clear bit skips a pass that could not have changed the turn; a set bit runs the pass
# as before; the output is the same. One literal per pass: RE2 scans for a pattern's first byte with memchr,
# which an alternation or a case-insensitive flag turns off (3x slower).
_MAY_FENCE, _MAY_PRE, _MAY_OL, _MAY_BR, _MAY_CODE, _MAY_NBSP, _MAY_SVG = 1, 2, 4, 8, 16, 32, 64
_MAY_ALL = 127
_MAY_PATTERNS = (
    (_MAY_FENCE, "```"),  # Markdown fences: a mixed turn
    (_MAY_FENCE, "~~~"),
    (_MAY_PRE, "<[pP][rR][eE]"),  # _CHATGPT_HEAD (and the tail, which follows a head)
    (_MAY_OL, "<[oO][lL]"),  # _OL_START
    (_MAY_BR, "<br|<BR"),  # a <br> inside <code>
    (_MAY_CODE, "<[cC][oO][dD][eE]"),
    (_MAY_NBSP, "\xa0"),  # a no-break space to keep
    (_MAY_NBSP, "bsp;"),  # (for "nbsp;": RE2 looks for a rarer first byte)
    (_MAY_NBSP, "NBSP;"),
    (_MAY_NBSP, "0;"),
    (_MAY_SVG, "<[sS\u017f][vV][gG]"),  # SVG icons to strip (the converter's strip_tags costs ~3% when set)
)


# The same for the converter's Markdown: which clean-up passes can change it. `^`/`\n` + `\p{N}` spell
# _LINE_START_ESCAPE in RE2 (\p{N} holds every digit Python's \d does); "/ " stands for " chars / ".
_MD_ESCAPE, _MD_LINE_START, _MD_STAND_IN, _MD_CODE, _MD_COPY_CODE, _MD_COPY_CHARS, _MD_REGENERATE = (
    1,
    2,
    4,
    8,
    16,
    32,
    64,
)
_MD_PATTERNS = (
    (_MD_ESCAPE, r"\\[-+=#>&_]"),  # _ANY_ESCAPE: _fewer_escapes has something to undo
    (_MD_LINE_START, r"^[ \t>]*(?:(?:[-+*]|\p{N}{1,9}[.)])[ \t]+)*\\[-+=#>]"),
    (_MD_LINE_START, r"\n[ \t>]*(?:(?:[-+*]|\p{N}{1,9}[.)])[ \t]+)*\\[-+=#>]"),
    (_MD_STAND_IN, "\ue001"),  # _MARK or _BACKSLASH in the text: _fewer_escapes leaves it as it is
    (_MD_STAND_IN, "\ue002"),
    (_MD_CODE, "`"),
    (_MD_COPY_CODE, "Copy code\n"),
    (_MD_COPY_CHARS, "/ "),
    (_MD_REGENERATE, r"^\n*\p{N}"),
)


class HtmlParams(Params):
    max_depth: int = Field(200, ge=10, le=1000, description="deeper markup is rejected (html_too_deep)")
    max_chars: int = Field(
        4_000_000, ge=1000, le=100_000_000, description="a longer HTML turn is rejected (html_too_large)"
    )
    parts: list[Part] = parts_param(["user", "assistant", "system"], "what is converted")


def _max_depth(html: str, limit: int) -> int:
    """Nesting depth of the markup by a tag scan (no parser, no recursion); stops past limit."""
    depth = top = 0
    for m in _TAG.finditer(html):
        closing, name, _, self_closing = m.group(1), m.group(2).lower(), m.group(3), m.group(4)
        if closing:
            depth = max(0, depth - 1)
        elif not self_closing and name not in _VOID:
            depth += 1
            top = max(top, depth)
            if top > limit:
                break
    return top


@lru_cache(maxsize=4)
def _options(escape: bool, strip_svg: bool = True) -> h2m.ConversionOptions:
    """Everything visible stays (no clean-up pass: navigation, forms and button labels are kept); nothing is
    added that the page did not show (no front matter from <title>, no expanded abbreviations, no citation
    URLs, no ==mark==); SVG icons go (strip_tags is ~40% cheaper than the CSS-selector route; without an
    <svg> in the text, the options without it give the same Markdown ~3% faster)."""
    return h2m.ConversionOptions(
        escape_asterisks=escape,
        escape_underscores=escape,
        escape_misc=escape,
        extract_metadata=False,
        expand_abbreviations=False,
        include_blockquote_citations=False,
        highlight_style="none",
        strip_tags=["svg"] if strip_svg else [],
        max_depth=1024,
        compact_tables=True,
        preprocessing=h2m.PreprocessingOptions(enabled=False),
    )


@lru_cache(maxsize=1)
def _native():
    """The package's public `convert` rebuilds its native options object from the Python dataclass on every
    call (~0.6 ms, twice the conversion of a typical reply). Its native module takes the built object, so
    it is built once per process. Where a release lays this out differently, the public call is used
    (same output; tests/steps/test_html_to_markdown.py checks that the two agree on the suites)."""
    try:
        from html_to_markdown import _html_to_markdown as native
        from html_to_markdown.api import _to_rust_conversion_options as build

        built = {key: build(_options(*key)) for key in ((e, s) for e in (True, False) for s in (True, False))}
        convert = native.convert
        return lambda html, escape, strip_svg=True: convert(html, built[escape, strip_svg], None).content or ""
    except (ImportError, AttributeError, TypeError):
        return None


def _h2m(html: str, escape: bool, strip_svg: bool = True) -> str:
    fast = _native()
    return fast(html, escape, strip_svg) if fast else (h2m.convert(html, _options(escape, strip_svg)).content or "")


def _valid_start(m: re.Match) -> str:
    """<ol start="-1"> or "1.5" or "foo": CommonMark lists start at 0-999999999, so such a list starts at 1."""
    value = next(v for v in m.groups()[1:] if v is not None)
    return m.group(0) if re.fullmatch(r"\d{1,9}", value.strip()) else m.group(1)


def _bits(texts: pa.Array, patterns: tuple[tuple[int, str], ...]) -> np.ndarray:
    """Per text, the OR of the bits whose RE2 pattern it matches (one pass over the batch per pattern)."""
    texts = pc.fill_null(texts, "")
    bits = np.zeros(len(texts), np.uint8)
    for bit, pattern in patterns:
        bits[pc.match_substring_regex(texts, pattern).to_numpy(zero_copy_only=False)] |= bit
    return bits


def may_change(texts: pa.Array) -> np.ndarray:
    """Per HTML text, the _MAY_* bits of the passes before the converter that can change it."""
    return _bits(texts, _MAY_PATTERNS)


def _fewer_escapes(md: str, bits: int) -> str:
    if not bits & _MD_ESCAPE or bits & _MD_STAND_IN:
        return md
    literal = "\\\\" in md
    if literal:
        md = md.replace("\\\\", _BACKSLASH)
    marked = 0
    if bits & _MD_LINE_START:
        md, marked = _LINE_START_ESCAPE.subn("\\1" + _MARK + "\\2", "\n" + md)
        md = md[1:]
    if bits & _MD_CODE:
        parts = _CODE_SPLIT.split(md)  # prose, code, its backtick run, prose, ...
        md = "".join(_DROP_ESCAPE.sub("", p) if k % 3 == 0 else p for k, p in enumerate(parts) if k % 3 != 2)
    else:
        md = _DROP_ESCAPE.sub("", md)
    if marked:
        md = md.replace(_MARK, "\\")
    return md.replace(_BACKSLASH, "\\\\") if literal else md


def _markdown(html: str, escape: bool, may: int) -> str:
    """curate's rules on the HTML, then the converter: the Markdown before its clean-up (_clean)."""
    if may & _MAY_PRE:
        html, headers = _CHATGPT_HEAD.subn("<pre>", html)
        if headers:
            html = _CHATGPT_TAIL.sub("</code></pre>", html)
    if may & _MAY_OL:
        html, starts = _OL_START.subn(_valid_start, html)
        if starts:
            may = _MAY_ALL  # a dropped attribute joins the text around it: the bits no longer hold
    if may & _MAY_BR and may & _MAY_CODE and ("<br" in html or "<BR" in html):
        html = _CODE_ELEMENT.sub(lambda m: _BR.sub("\n", m.group(0)), html)  # a <br> in code is a newline of it
    keep_nbsp = (
        may & _MAY_NBSP
        and ("\xa0" in html or "nbsp;" in html or "NBSP;" in html or "#160;" in html or "a0;" in html or "A0;" in html)
        and _KEEP_NBSP not in html
    )
    if keep_nbsp:
        html = _NBSP.sub(_KEEP_NBSP, html)
    try:
        md = _h2m(html, escape, bool(may & _MAY_SVG))
    except Exception:  # noqa: BLE001 (the converter's own error types; beautifulsoup4 repairs the markup, one more try)
        from bs4 import BeautifulSoup

        md = _h2m(str(BeautifulSoup(html, "html.parser")), escape)
    return md.replace(_KEEP_NBSP, "\xa0") if keep_nbsp else md


def _clean(md: str, escape: bool, bits: int) -> str:
    """The converter's Markdown, cleaned: needless escapes and ChatGPT's page chrome go (`bits`: its _MD_* bits)."""
    if escape:
        md = _fewer_escapes(md, bits)
    if bits & _MD_COPY_CODE:
        md = _COPY_CODE_LEFT.sub(r"\1\2\n", md)
    if bits & _MD_COPY_CHARS and " chars / " in md:
        md = _COPY_CHARS.sub("", md)
    md = md.strip("\n")
    if bits & (_MD_REGENERATE | _MD_COPY_CHARS):  # removing "Copy.. chars / .. words" can bare a counter
        md = _REGENERATE.sub("", md)
    return md.strip("\n")


def _convert_all(htmls: list[str], escape: bool, mays) -> list[str | Exception]:
    """Each HTML text to Markdown, or the exception that the converter and the repairing parser both raised.
    The converter runs text by text; which clean-up passes its Markdown needs is decided for all at once."""
    out: list = [None] * len(htmls)
    raw: list[str] = []
    for k, (html, may) in enumerate(zip(htmls, mays)):
        try:
            if escape and may & _MAY_FENCE and _MD_FENCE_LINE.search(_PRE_BLOCK.sub("", html)):
                out[k] = _mixed(html)
            else:
                raw.append(_markdown(html, escape, int(may)))
                continue
        except Exception as e:  # noqa: BLE001 (the converter's and the repairing parser's errors alike)
            out[k] = e
        raw.append("")
    bits = _bits(pa.array(raw, pa.string()), _MD_PATTERNS)
    for k, md in enumerate(raw):
        if out[k] is None:
            try:
                out[k] = _clean(md, escape, int(bits[k]))
            except Exception as e:  # noqa: BLE001
                out[k] = e
    return out


def _mixed(html: str) -> str:
    """Markdown fences outside <pre> mark a mixed turn: they stay as they are, and the text between them is
    converted without escaping (it is already Markdown)."""
    spans, at = [], 0
    for m in _MD_FENCE_BLOCK.finditer(html):
        spans += [html[at : m.start()], m.group(0)]
        at = m.end()
    spans.append(html[at:])
    between = spans[0::2]
    converted = iter(_convert_all(between, False, may_change(pa.array(between, pa.string()))))
    pieces = [next(converted) if k % 2 == 0 else p for k, p in enumerate(spans)]
    failed = next((p for p in pieces if isinstance(p, Exception)), None)
    if failed is not None:
        raise failed
    return "\n\n".join(p for p in pieces if p.strip())


def html_to_markdown(html: str, may: int | None = None) -> str:
    """One HTML text to Markdown (`may`: its may_change bits, when the caller has them)."""
    out = _convert_all([html], True, [may_change(pa.array([html], pa.string()))[0] if may is None else may])[0]
    if isinstance(out, Exception):
        raise out
    return out


@lru_cache(maxsize=1)
def _structural() -> re.Pattern:
    return re.compile(_STRUCTURAL)  # ~0.3 s to compile in Python's re: only when a batch needs it


def looks_like_html(texts: pa.Array) -> np.ndarray:
    """Per text: holds markup (see _STRUCTURAL) outside Markdown code. Vectorised, with Python only for
    the few texts that also contain code fences or inline code."""
    texts = pc.fill_null(texts, "")
    # every match of _STRUCTURAL holds a '<': only the texts with one (5% of make_corpus's turns) are
    # searched for it (0.08 s per 20k rows)
    candidate = _literal.contains(texts, "<").to_numpy(zero_copy_only=False)
    if candidate.any():
        lt = np.nonzero(candidate)[0]
        candidate[lt] = pc.match_substring_regex(texts.take(pa.array(lt)), _STRUCTURAL).to_numpy(zero_copy_only=False)
    has_code = _literal.contains(texts, "`").to_numpy(zero_copy_only=False)
    out = candidate.copy()
    for i in np.nonzero(candidate & has_code)[0]:
        text = texts[int(i)].as_py()
        structural = _structural()
        if structural.search(text, 0, text.index("`")):
            continue  # markup before the first backtick is outside code
        outside = _INLINE_CODE.sub("", _FENCE.sub("", _PRE_BLOCK.sub("<pre></pre>", text)))
        out[i] = structural.search(outside) is not None
    return out


@register
class HtmlToMarkdown(MapStep):
    """HTML turns (ChatGPT exports, forum posts) to clean Markdown; code kept verbatim in fences."""

    name = "html_to_markdown"
    Params = HtmlParams
    columns = {"html_turns": pa.int16()}

    def process(self, table: pa.Table) -> StepOutput:
        t = turns_of(table, self.params.parts)
        n = table.num_rows
        selected = np.isin(t.role, self.params.parts)
        is_html = looks_like_html(t.text) & selected
        counters: Counter = Counter(turns_skipped_fast_path=int((~is_html).sum()))
        reason, detail = [None] * n, [None] * n
        html_turns = np.zeros(n, np.int16)
        texts = t.text
        if is_html.any():
            at = np.nonzero(is_html)[0]
            html = t.text.filter(pa.array(is_html))
            # Per HTML turn, vectorised: its length, whether it can be nested deeper than max_depth (only a turn
            # with more opening tags can: the tag scan runs on those) and which conversion passes can change it.
            lengths = pc.utf8_length(html).to_numpy(zero_copy_only=False)
            may_be_deep = pc.greater(pc.count_substring_regex(html, _OPEN_TAG_COUNT), self.params.max_depth)
            may_be_deep = may_be_deep.to_numpy(zero_copy_only=False)
            srcs, rows = html.to_pylist(), t.row[at].tolist()
            too_large = (lengths > self.params.max_chars).tolist()
            too_deep = [
                bool(deep) and not large and _max_depth(src, self.params.max_depth) > self.params.max_depth
                for src, deep, large in zip(srcs, may_be_deep, too_large)
            ]
            todo = [k for k, (large, deep) in enumerate(zip(too_large, too_deep)) if not (large or deep)]
            result = dict(zip(todo, _convert_all([srcs[k] for k in todo], True, may_change(html)[todo])))
            # A row's first failing turn names its reason; the turns after it are not counted.
            converted, done = [], np.zeros(len(is_html), bool)
            for k, (i, row) in enumerate(zip(at.tolist(), rows)):
                if reason[row] is not None:
                    continue
                if too_large[k]:
                    reason[row], detail[row] = (
                        "html_too_large",
                        f"turn {t.position[i]}: {lengths[k]:,} characters of HTML (max_chars {self.params.max_chars:,})",
                    )
                    counters["html_too_large"] += 1
                    continue
                if too_deep[k]:
                    reason[row], detail[row] = (
                        "html_too_deep",
                        f"turn {t.position[i]}: markup nested deeper than {self.params.max_depth}",
                    )
                    counters["html_too_deep"] += 1
                    continue
                md = result[k]
                if isinstance(md, Exception):
                    reason[row], detail[row] = (
                        "html_unparseable",
                        f"turn {t.position[i]}: {type(md).__name__}: {str(md)[:200]}",
                    )
                    counters["html_unparseable"] += 1
                    continue
                if not md.strip():
                    reason[row], detail[row] = (
                        "html_markup_only",
                        f"turn {t.position[i]}: no text left after removing the markup",
                    )
                    counters["html_markup_only"] += 1
                    continue
                converted.append(md)
                done[i] = True
                html_turns[row] += 1
            if converted:  # only the converted texts go back through Python objects; the rest stay in Arrow
                counters["turns_converted"] += len(converted)
                texts = pc.replace_with_mask(t.text, pa.array(done), pa.array(converted, pa.string()))
        out = with_texts(table, texts, t) if is_html.any() else table
        out = set_column(out, "html_turns", pa.array(html_turns, pa.int16()))
        return StepOutput(out, reason=reason, detail=detail, counters=counters)
