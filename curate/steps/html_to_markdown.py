"""html_to_markdown: turns written in HTML (ChatGPT-export scrapes, forum posts) become Markdown.

Only turns that look like real markup are parsed (a vectorised test per batch: a closing tag of a
structural element outside code); the rest skip the parser. Code blocks keep their text byte for
byte inside fences with their language; tables become Markdown tables; links, images, lists
(nested, numbered from their start), headings, emphasis and quotes keep their meaning; the
"Copy code" chrome, scripts, styles and SVG icons go. Text that only mentions `<div>` or `a < b`
is not touched. Markup nested deeper than `max_depth`, or that the parser rejects, rejects the row
with a reason instead of crashing.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bs4 import BeautifulSoup, NavigableString, Tag
from pydantic import Field

from curate.registry import register
from curate.schema import Part, parts_param, turns_of, with_texts
from curate.steps.base import MapStep, Params, StepOutput, set_column

_ELEMENTS = r"(p|div|li|ul|ol|pre|code|table|tr|td|th|h[1-6]|blockquote|strong|em|b|i|a|span)"
# Markup: a closing tag of a common element, or two opening tags (one "<div>" in prose is a mention;
# a lone <br> is how Markdown tables break lines inside a cell).
_STRUCTURAL = (rf"</{_ELEMENTS}\s*>|(?s:<{_ELEMENTS}(\s[^<>]*)?>.*<{_ELEMENTS}(\s[^<>]*)?>)")
_FENCE = re.compile(r"```.*?(```|$)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)([^<>]*?)(/?)>")
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr", "path", "rect"}
_DROP = {"script", "style", "button", "svg", "head", "title", "noscript", "template"}
_BLOCK_SPACES = re.compile(r"\n{3,}")
_WS = re.compile(r"[ \t\r\n\f]+")


class HtmlParams(Params):
    max_depth: int = Field(200, ge=10, le=10000, description="deeper markup is rejected (html_too_deep)")
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


class _Converter:
    def __init__(self):
        self.out: list[str] = []

    def block(self, text: str) -> None:
        self.out.append("\n\n" + text.strip("\n") + "\n\n")

    def convert(self, node, list_depth: int = 0) -> str:
        parts = []
        for child in node.children:
            parts.append(self.node(child, list_depth))
        return "".join(parts)

    def node(self, n, list_depth: int) -> str:
        if isinstance(n, NavigableString):
            if type(n).__name__ in ("Comment", "Doctype", "Declaration", "ProcessingInstruction", "CData"):
                return ""
            return _WS.sub(" ", str(n))
        if not isinstance(n, Tag):
            return ""
        name = n.name.lower()
        if name in _DROP:
            return ""
        if name == "pre":
            return self.pre(n)
        if name == "code":
            text = n.get_text()
            return f"`{text}`" if "`" not in text else f"`` {text} ``"
        if name == "br":
            return "  \n"
        if name == "hr":
            return "\n\n---\n\n"
        if name in ("p", "div", "section", "article", "main", "header", "footer", "figure"):
            inner = self.convert(n, list_depth).strip()
            return f"\n\n{inner}\n\n" if inner else ""
        if re.fullmatch(r"h[1-6]", name):
            return f"\n\n{'#' * int(name[1])} {self.convert(n, list_depth).strip()}\n\n"
        if name in ("strong", "b"):
            inner = self.convert(n, list_depth).strip()
            return f"**{inner}**" if inner else ""
        if name in ("em", "i"):
            inner = self.convert(n, list_depth).strip()
            return f"*{inner}*" if inner else ""
        if name == "a":
            text = self.convert(n, list_depth).strip()
            href = n.get("href")
            if not href:
                return text
            return f"<{href}>" if text in ("", href) else f"[{text}]({href})"
        if name == "img":
            src = n.get("src")
            return f"![{n.get('alt', '')}]({src})" if src else ""
        if name in ("ul", "ol"):
            return self.list(n, name == "ol", list_depth)
        if name == "blockquote":
            inner = self.convert(n, list_depth).strip()
            return "\n\n" + "\n".join("> " + line if line else ">" for line in inner.split("\n")) + "\n\n"
        if name == "table":
            return self.table(n)
        return self.convert(n, list_depth)

    def pre(self, n: Tag) -> str:
        code = n.find("code")
        lang = ""
        if code is not None:
            for c in code.get("class") or []:
                if c.startswith("language-"):
                    lang = c.removeprefix("language-")
            text = code.get_text()
        else:
            text = n.get_text()
        return f"\n\n```{lang}\n{text.rstrip(chr(10))}\n```\n\n"

    def list(self, n: Tag, ordered: bool, depth: int) -> str:
        try:
            number = int(n.get("start", 1))
        except ValueError:
            number = 1
        lines = []
        for li in n.find_all("li", recursive=False):
            body = self.convert(li, depth + 1).strip()
            body = re.sub(r"\n{2,}", "\n", body)
            marker = f"{number}. " if ordered else "- "
            first, *rest = body.split("\n") if body else [""]
            lines.append(marker + first)
            # continuation lines and nested lists line up with the item's text
            lines += [" " * len(marker) + line for line in rest if line.strip()]
            number += 1
        return ("\n" if depth else "\n\n") + "\n".join(lines) + ("\n" if depth else "\n\n")

    def table(self, n: Tag) -> str:
        rows = []
        for tr in n.find_all("tr"):
            cells = [self.convert(c).strip().replace("|", "\\|").replace("\n", " ") for c in tr.find_all(["th", "td"], recursive=False)]
            if cells:
                rows.append(cells)
        if not rows:
            return ""
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n\n" + "\n".join(lines) + "\n\n"


def html_to_markdown(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")
    md = _Converter().convert(soup)
    # Tidy the prose (trailing spaces, blank-line runs) but never the code blocks.
    parts = re.split(r"(\n```[^\n]*\n.*?\n```\n)", md, flags=re.S)
    pieces = []
    for k, part in enumerate(parts):
        if k % 2:
            pieces.append(part.strip("\n"))
        else:
            lines = [ln if ln.endswith("  ") and ln.strip() else ln.rstrip() for ln in part.split("\n")]
            pieces.append(_BLOCK_SPACES.sub("\n\n", "\n".join(lines)).strip("\n"))
    return "\n\n".join(p for p in pieces if p).strip()


def looks_like_html(texts: pa.Array) -> np.ndarray:
    """Per text: holds a closing structural tag (or <br>) outside Markdown code. Vectorised, with
    Python only for the few texts that also contain code fences or inline code."""
    candidate = pc.match_substring_regex(texts, _STRUCTURAL, ignore_case=True).to_numpy(zero_copy_only=False)
    has_code = pc.match_substring(texts, "`").to_numpy(zero_copy_only=False)
    out = candidate.copy()
    for i in np.nonzero(candidate & has_code)[0]:
        text = texts[int(i)].as_py()
        outside = _INLINE_CODE.sub("", _FENCE.sub("", text))
        out[i] = re.search(_STRUCTURAL, outside, re.I) is not None
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
            new = t.text.to_pylist()
            for i in np.nonzero(is_html)[0]:
                row = int(t.row[i])
                if reason[row] is not None:
                    continue
                src = new[i]
                depth = _max_depth(src, self.params.max_depth)
                if depth > self.params.max_depth:
                    reason[row], detail[row] = "html_too_deep", f"turn {t.position[i]}: markup nested deeper than {self.params.max_depth}"
                    counters["html_too_deep"] += 1
                    continue
                try:
                    md = html_to_markdown(src)
                except (RecursionError, ValueError, AssertionError) as e:
                    reason[row], detail[row] = "html_unparseable", f"turn {t.position[i]}: {type(e).__name__}: {str(e)[:200]}"
                    counters["html_unparseable"] += 1
                    continue
                if not md.strip():
                    reason[row], detail[row] = "html_markup_only", f"turn {t.position[i]}: no text left after removing the markup"
                    counters["html_markup_only"] += 1
                    continue
                new[i] = md
                html_turns[row] += 1
                counters["turns_converted"] += 1
            texts = pa.array(new, pa.string())
        out = with_texts(table, texts, t) if is_html.any() else table
        out = set_column(out, "html_turns", pa.array(html_turns, pa.int16()))
        return StepOutput(out, reason=reason, detail=detail, counters=counters)
