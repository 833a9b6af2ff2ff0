"""Does converted Markdown show the same page as the Markdown a converter's authors expect?

Both are rendered with a CommonMark renderer (markdown-it-py, CommonMark plus GFM tables and
strikethrough, raw HTML shown as text) and compared on what a reader sees: the visible text (whitespace
collapsed the way a browser collapses it, kept verbatim inside <pre>) and the tag structure (element
names, plus a link's href, an image's src and alt, and a list's start). Class names, titles, table
alignment and the spelling of the Markdown (`*` or `-`, ATX or Setext, fences or indents) do not count.

    python benchmarks/cleaning/render_compare.py [--show N]

prints, for curate's html_to_markdown, markdownify and html-to-markdown, how many cases of each suite
in tests/data/html_suites render like the expected Markdown, and how many lose visible text of the HTML.
tests/steps/test_html_to_markdown.py uses the same functions.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "tests" / "data" / "html_suites"

_BLOCK = {
    "p",
    "div",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "br",
    "html",
    "body",
    "section",
    "article",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
}
_KEEP_ATTRS = {"a": ("href",), "img": ("src", "alt"), "ol": ("start",)}
_SPACE = re.compile(r"[ \t\n\r\f]+")  # HTML's whitespace: a no-break space is text
# What a browser does not show as text.
_HIDDEN = {"script", "style", "template", "head", "title", "noscript", "video", "audio"}  # media: fallback text


@lru_cache(maxsize=1)
def _renderer():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def render(markdown: str) -> str:
    return _renderer().render(markdown)


class _Signature(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        shown = " ".join(f'{k}="{attrs[k]}"' for k in _KEEP_ATTRS.get(tag, ()) if attrs.get(k) not in (None, "", "1"))
        self.parts.append(
            f"\x00<{tag}{' ' + shown if shown else ''}>\x00"
            if tag in _BLOCK
            else f"<{tag}{' ' + shown if shown else ''}>"
        )
        self.pre += tag == "pre"

    def handle_endtag(self, tag):
        self.parts.append(f"\x00</{tag}>\x00" if tag in _BLOCK else f"</{tag}>")
        self.pre -= tag == "pre"

    def handle_data(self, data):
        self.parts.append(data.rstrip("\n") if self.pre else _SPACE.sub(" ", data))


def signature(markdown: str) -> str:
    """The rendered page as one string: tags with the attributes that matter, text as a browser shows it."""
    p = _Signature()
    p.feed(render(markdown))
    p.close()
    text = re.sub(r" ?\x00 ?", "\x00", "".join(p.parts))  # a space beside a block edge is not shown
    return re.sub("\x00+", "", text).strip()


def same_rendering(markdown: str, expected: str) -> bool:
    return signature(markdown) == signature(expected)


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.words: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in _HIDDEN

    def handle_endtag(self, tag):
        self.hidden -= tag in _HIDDEN and self.hidden > 0

    def handle_data(self, data):
        if not self.hidden:
            self.words += data.replace("\xa0", " ").split()


def visible_words(html: str) -> list[str]:
    """The words a browser shows for this HTML (scripts, styles, templates, comments and the head hidden)."""
    p = _Text()
    p.feed(html)
    p.close()
    return p.words


def rendered_words(markdown: str) -> list[str]:
    p = _Text()
    p.feed(render(markdown))
    p.close()
    return p.words


def lost_text(html: str, markdown: str) -> str | None:
    """The first visible word of the HTML that the rendered Markdown does not show, in order; None if none is lost.
    Spaces do not count (`foo<b>bar</b>` may show as foobar or foo bar)."""
    shown = "".join(rendered_words(markdown))
    at = 0
    for word in visible_words(html):
        found = shown.find(word, at)
        if found < 0:
            return word
        at = found + len(word)
    return None


def load_suite(name: str) -> list[dict]:
    return json.loads((SUITES / f"{name}.json").read_text(encoding="utf-8"))["cases"]


def converters() -> dict:
    sys.path.insert(0, str(REPO))
    from curate.steps.html_to_markdown import html_to_markdown

    out = {"curate": html_to_markdown}
    try:
        import markdownify

        out["markdownify"] = markdownify.markdownify
    except ImportError:
        pass
    try:
        import html_to_markdown as h2m

        out["html-to-markdown"] = lambda h: h2m.convert(h).content or ""
    except ImportError:
        pass
    return out


def score(convert, cases: list[dict]) -> tuple[int, int, list[str], list[str]]:
    same = lost = 0
    differ, losing = [], []
    for c in cases:
        try:
            md = convert(c["html"])
        except Exception as e:  # noqa: BLE001 (a converter that raises fails the case)
            md = f"<{type(e).__name__}>"
        if same_rendering(md, c["expected"]):
            same += 1
        else:
            differ.append(c["name"])
        if lost_text(c["html"], md) is not None:
            lost += 1
            losing.append(c["name"])
    return same, lost, differ, losing


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--show", type=int, default=0, help="list up to N failing cases of curate per suite")
    args = ap.parse_args()
    suites = {name: load_suite(name) for name in ("markdownify", "turndown")}
    conv = converters()
    print(
        "| converter | "
        + " | ".join(f"{n} suite: render-identical / {len(c)} | loses text" for n, c in suites.items())
        + " |"
    )
    print("|---|" + "---:|---:|" * len(suites))
    failing = {}
    for name, fn in conv.items():
        cells = []
        for sname, cases in suites.items():
            same, lost, differ, losing = score(fn, cases)
            cells += [str(same), str(lost)]
            if name == "curate":
                failing[sname] = (differ, losing)
        print(f"| {name} | " + " | ".join(cells) + " |")
    for sname, (differ, losing) in failing.items():
        if args.show:
            print(f"\ncurate, {sname}: differs {differ[: args.show]}\n  loses text {losing[: args.show]}")


if __name__ == "__main__":
    main()
