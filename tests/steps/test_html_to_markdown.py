"""html_to_markdown on real ChatGPT-export and Stack Exchange HTML, prose that mentions tags, and
its bad inputs."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

import pyarrow as pa
import pytest

from benchmarks.cleaning.render_compare import load_suite, lost_text, render, same_rendering, score, signature
from curate.steps import html_to_markdown as module
from curate.steps.base import StepContext
from curate.steps.html_to_markdown import HtmlParams, HtmlToMarkdown, html_to_markdown, looks_like_html
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

POSTS = [
    r.get("Body") for r in ET.parse(SHARED_DATA / "html" / "stackexchange_coffee_Posts.xml").getroot() if r.get("Body")
]
TAG = re.compile(
    r"</?(p|div|span|a|img|ul|ol|li|pre|code|table|tr|td|th|h[1-6]|strong|em|b|i|br|hr|blockquote)\b[^>]*>", re.I
)

CHATGPT = (
    '<div class="markdown prose w-full break-words dark:prose-invert light"><p>Here is the function:</p>'
    '<pre><div class="bg-black rounded-md mb-4"><div class="flex items-center relative text-gray-200 bg-gray-800 px-4 py-2 '
    'text-xs font-sans"><span>python</span><button class="flex ml-auto gap-2"><svg><path d="M1"></path></svg>Copy code'
    '</button></div><div class="p-4 overflow-y-auto"><code class="!whitespace-pre hljs language-python">def f(a, b):\n'
    '    if a &lt; b and b &gt; 0:  \n        return "&amp;"\n</code></div></div></pre>'
    '<ol start="3"><li>Third <strong>step</strong></li><li>Fourth, see <a href="https://x.org/a?b=1&amp;c=2">docs</a>'
    "<ul><li>nested</li></ul></li></ol>"
    "<table><thead><tr><th>Name</th><th>Qty</th></tr></thead><tbody><tr><td>a|b</td><td>2</td></tr></tbody></table>"
    "<p>Done &amp; dusted.</p></div>"
)


def step(**kw) -> HtmlToMarkdown:
    return HtmlToMarkdown(HtmlParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))


def test_chatgpt_export():
    md = html_to_markdown(CHATGPT)
    assert (
        '```python\ndef f(a, b):\n    if a < b and b > 0:  \n        return "&"\n```' in md
    )  # byte for byte, trailing spaces too
    assert "Copy code" not in md and "<" not in md.replace("a < b", "")
    assert "3. Third **step**\n4. Fourth, see [docs](https://x.org/a?b=1&c=2)\n   - nested" in md
    assert "| Name | Qty |\n| --- | --- |\n| a\\|b | 2 |" in md
    assert md.endswith("Done & dusted.")


SUITES = {name: load_suite(name) for name in ("markdownify", "turndown")}


@pytest.mark.parametrize("suite", SUITES)
def test_no_visible_text_is_lost_on_the_public_suites(suite):
    """Every word a browser shows for a case's HTML is shown by the rendered Markdown, in order."""
    lost = {c["name"]: lost_text(c["html"], html_to_markdown(c["html"])) for c in SUITES[suite]}
    assert {k: v for k, v in lost.items() if v is not None} == {}


@pytest.mark.parametrize(("suite", "floor"), [("markdownify", 262), ("turndown", 117)])
def test_renders_like_the_expected_markdown_at_least_as_often_as_the_compiled_peer(suite, floor):
    """The issue's floor (the best peer's count when it was filed), and the engine with its own defaults
    measured now on the same cases: curate's rules around it must only add."""
    ours = score(html_to_markdown, SUITES[suite])[0]
    peer = score(lambda h: module.h2m.convert(h).content or "", SUITES[suite])[0]
    assert ours >= max(floor, peer), (ours, peer)


def test_the_native_call_and_the_public_api_agree():
    """curate builds the engine's options once and calls its native module; the public `convert` must give
    the same Markdown, so a release that changes one and not the other fails here."""
    assert module._native() is not None
    for case in SUITES["markdownify"] + SUITES["turndown"]:
        for escape in (True, False):
            for strip_svg in (True, False):
                assert module._native()(case["html"], escape, strip_svg) == (
                    module.h2m.convert(case["html"], module._options(escape, strip_svg)).content or ""
                )


# Inputs where a pass could act on text an earlier pass made, or on spellings a pre-check must not miss.
PRE_CHECK_CASES = [
    '<p><code>a<ol x=< start="-1"br>b</code></p>',  # a dropped start= joins "<" and "br>" inside <code>
    '<ol x=&nb start="1.5"sp;><li>a</li></ol><p>b&#57344;c</p>',  # ... and "&nb" and "sp;"
    "<PRE><DIV><DIV><span>py</span>Copy code</DIV><DIV><CODE>x\n```\n</CODE></DIV></DIV></PRE>",
    "<p>Copy12 chars / 3 words2 / 2\n</p><p>x</p>",  # removing "Copy.. chars" bares a regenerate counter
    "<p>\u0663. x</p><p>- \\- y</p><svg><path/></svg><SVG>s</SVG><i>e</i>",
    *(f"<p>a{nbsp}b</p><i>e</i>" for nbsp in ("\u00a0", "&nbsp;", "&NBSP;", "&#160;", "&#xa0;", "&#XA0;")),
    "<p>\ue001 a_b \\- \\_ `c_d`</p><b>x</b>",
    "```py\nx\n```\n<p>hi <b>b</b> a&nbsp;b</p>\n~~~\ny\n~~~\n<ol start=x><li>z</li></ol>",
]


def test_batch_pre_checks_skip_only_passes_that_change_nothing(monkeypatch):
    """Which of curate's passes run on a turn is decided by batch-wide RE2 pre-checks; with every bit set
    (every pass on every turn, as before the pre-checks) the Markdown must be the same."""
    cases = [c["html"] for name in SUITES for c in SUITES[name]] + PRE_CHECK_CASES + [CHATGPT]
    checked = module._convert_all(cases, True, module.may_change(pa.array(cases, pa.string())))

    def every_bit(texts: pa.Array, patterns) -> list[int]:
        if patterns is not module._MD_PATTERNS:
            return [module._MAY_ALL] * len(texts)
        # _MD_STAND_IN is the one bit that skips work when set: it is exact (two literals), the rest all set.
        stand_in = [("\ue001" in t or "\ue002" in t) * module._MD_STAND_IN for t in texts.to_pylist()]
        return [255 & ~module._MD_STAND_IN | bit for bit in stand_in]

    monkeypatch.setattr(module, "_bits", every_bit)
    every_pass = module._convert_all(cases, True, [module._MAY_ALL] * len(cases))
    assert [str(x) for x in checked] == [str(x) for x in every_pass]


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<ul><li>a</li><ol><li>b</li></ol></ul>", "- a\n1. b"),  # a list directly in a list: kept
        ("<pre>foo<code>bar</code>baz</pre>", "```\nfoobarbaz\n```"),
        (
            "<table><caption>Prices</caption><tr><th>a</th></tr><tr><td>1</td></tr></table>",
            "*Prices*\n\n| a |\n|---|\n| 1 |",
        ),
        ("<pre><code>a\n```\nb</code></pre>", "````\na\n```\nb\n````"),  # the fence outgrows the backticks inside
        ("foo<b> Hello</b> bar", "foo **Hello** bar"),
        ("foo <b>Hello </b>bar", "foo **Hello** bar"),
        ("<p>a&nbsp;b</p>", "a\xa0b"),
        (
            "<p>* * **</p><p>1. x</p><p>[text]]</p><p># not a heading</p><p>- not a list</p>",
            "\\* \\* \\*\\*\n\n1\\. x\n\n\\[text\\]\\]\n\n\\# not a heading\n\n\\- not a list",
        ),
        (
            '<a href="http://x.org/a b">l</a> and <a href="http://x.org/a(b)[c]">m</a>',
            "[l](<http://x.org/a b>) and [m](<http://x.org/a(b)[c]>)",
        ),
        ('<ol start="-1"><li>a</li><li>b</li></ol>', "1. a\n2. b"),
        ('<ol start="7"><li>a</li></ol>', "7. a"),
        ("<h2>a<br>b</h2>", "## a b"),
        ("<p>x <code>a<br>b</code> y</p>", "x `a b` y"),
        (
            '<table><tr><th colspan="2">A</th><th>B</th></tr><tr><td>1</td><td>2</td><td>3</td></tr></table>',
            "| A | | B |\n|---|---|---|\n| 1 | 2 | 3 |",
        ),
        ("<ul><li><p>one</p><p>two</p></li></ul>", "- one\n\n  two"),
        ("Tom &amp; Jerry, snake_case, a-b, #1", "Tom & Jerry, snake_case, a-b, #1"),  # no needless escapes left
    ],
)
def test_failure_classes_render_as_expected(html, expected):
    md = html_to_markdown(html)
    assert same_rendering(md, expected), (md, render(md), render(expected))
    assert lost_text(html, md) is None


def test_needless_escapes_are_removed_but_needed_ones_stay():
    md = html_to_markdown(
        "<p>Tom &amp; Jerry &amp;amp; a-b snake_case x+y #tag 2*3 _x_</p><p>- item</p><p><code>a\\-b &amp; c_d</code></p>"
    )
    assert md == "Tom & Jerry \\&amp; a-b snake_case x+y #tag 2\\*3 \\_x\\_\n\n\\- item\n\n`a\\-b & c_d`"
    assert (
        signature(md)
        == "<p>Tom & Jerry &amp; a-b snake_case x+y #tag 2*3 _x_</p><p>- item</p><p><code>a\\-b & c_d</code></p>"
    )


@pytest.mark.parametrize(
    "text",
    [
        "a<br>b",
        "a<br/>b",
        "x<hr>y",
        "a <del>b</del>",
        "press <kbd>Ctrl</kbd>",
        "hi<script>alert(1)</script>",
        "<style>p {color: red}</style>hi",
        "a <!-- note --> b",
        "<!DOCTYPE html>hi",
        "<html><body>hi</body></html>",
        '<img src="a.png" alt="x">',
        "<p>one</p>",
        "<b>bold</b> and <i>it</i>",
        "A<sub>2</sub>",
        "<details><summary>s</summary>b</details>",
    ],
)
def test_fast_path_finds_markup(text):
    assert looks_like_html(pa.array([text]))[0]
    md = html_to_markdown(text)
    assert "<" not in md and "alert" not in md and "color" not in md and "note" not in md, md


def test_every_stack_exchange_post_converts_without_residue():
    for body in POSTS:
        md = html_to_markdown(body)
        prose = re.sub(r"`[^`]*`", "", re.sub(r"```.*?```", "", md, flags=re.S))
        assert not TAG.search(prose), md[:300]
        for href in re.findall(r'<a [^>]*href="([^"]+)"', body):
            assert html.unescape(href) in md
        for block in re.findall(r"<pre[^>]*>(.*?)</pre>", body, flags=re.S):
            code = html.unescape(re.sub(r"</?code[^>]*>", "", block)).rstrip("\n")
            assert code in md


def test_text_that_mentions_tags_is_left_alone():
    original = [
        "Wrap it in a <div> and use a < b when comparing.",
        'In HTML:\n```html\n<p>Hello</p>\n<div class="x"></div>\n```\nThat\'s it.',
        "Inline code like `</p>` is fine.",
        "x = 3 < 4 > 2",
        "| a | b<br>c |\n|---|---|",  # a Markdown table breaks lines in a cell with <br>
        "Use <b> for bold, like this.",
    ]
    out = step().process(rows_table([[("user", t)] for t in original]))
    assert texts(out.table) == [[t] for t in original]
    assert out.counters["turns_skipped_fast_path"] == len(original)


def test_bad_inputs_are_rejected_with_a_reason_never_a_crash():
    deep = "<div>" * 10000 + "x" + "</div>" * 10000
    convs = [
        [("assistant", deep)],
        [("assistant", "<div><span></span></div><p></p>")],
        [("assistant", "")],
        [("assistant", "<p>" + "word " * 200000 + "</p>")],
        [("assistant", "<p>Привет, 世界 — مرحبا</p>")],
        [("assistant", "<p>unclosed <b>bold <i>and <a href='x'>link")],
        [("assistant", "<p>ok</p><script>alert(1)</script><style>p{}</style>")],
    ]
    out = step().process(rows_table(convs))
    assert out.reason[:4] == ["html_too_deep", "html_markup_only", None, None]
    assert "nested deeper than 200" in out.detail[0]
    got = texts(out.table)
    assert got[4] == ["Привет, 世界 — مرحبا"]
    assert got[5][0].startswith("unclosed **bold *and [link](x)")
    assert got[6] == ["ok"]
    assert len(got[3][0]) > 900000


def test_end_to_end_on_sample_data(tmp_path):
    src = REPO / "sample_data" / "sharegpt_sample.jsonl"
    stats = run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps="\n  - html_to_markdown: {}"))
    kept = read_dir(tmp_path / "out" / "kept")
    converted = [i for i, n in zip(kept.column("id").to_pylist(), kept.column("html_turns").to_pylist()) if n]
    assert {i for i in converted if i.endswith("-html") or i.startswith("coffee.se")} == set(converted)
    assert len(converted) >= 25 and stats["steps"][0]["counters"]["turns_converted"] >= 30


def test_too_large_is_rejected_with_a_reason():
    out = step(max_chars=1000).process(
        rows_table([[("assistant", "<p>" + "x" * 2000 + "</p>")], [("assistant", "<p>ok</p>")]])
    )
    assert out.reason == ["html_too_large", None] and "2,007 characters" in out.detail[0]


def test_chatgpt_regenerate_counter_and_copy_chars_go():
    md = html_to_markdown(
        '<div>2 / 2</div><div class="markdown prose"><p>1 / 2 cup of flour.</p></div><div>Copy42 chars / 7 words</div>'
    )
    assert md == "1 / 2 cup of flour."


def test_mixed_markdown_and_html_keeps_its_fences():
    text = "Use this:\n\n```python\nif a < b and c > d:\n    print('<p>')\n```\n\nThen <b>restart</b> the **server**.<br>Done."
    assert looks_like_html(pa.array([text]))[0]
    md = html_to_markdown(text)
    assert "```python\nif a < b and c > d:\n    print('<p>')\n```" in md and "**restart** the **server**" in md


def test_e2e_identity_with_bad_rows(tmp_path):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "deep", "conversations": [{"from": "gpt", "value": "<b>" * 500 + "x"}]},
            {"id": "ok", "conversations": [{"from": "gpt", "value": "<p>fine</p>"}]},
        ],
    )
    stats = run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps="\n  - html_to_markdown: {}"))
    assert stats["rows_rejected"] == 1 and stats["rows_kept"] == 1


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        ("{max_depth: 5}", "steps[0].max_depth: must be >= 10 (got 5)"),
        ("{roles: []}", "steps[0].roles: must list at least 1 item (got [])"),
        ("{max_chars: 10}", "steps[0].max_chars: must be >= 1000 (got 10)"),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "html_to_markdown", step_yaml, message)
