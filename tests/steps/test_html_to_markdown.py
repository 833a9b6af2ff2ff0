"""html_to_markdown on real ChatGPT-export and Stack Exchange HTML, prose that mentions tags, and
its bad inputs."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

import pytest

from curate.steps.base import StepContext
from curate.steps.html_to_markdown import HtmlParams, HtmlToMarkdown, html_to_markdown
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

POSTS = [r.get("Body") for r in ET.parse(SHARED_DATA / "html" / "stackexchange_coffee_Posts.xml").getroot() if r.get("Body")]
TAG = re.compile(r"</?(p|div|span|a|img|ul|ol|li|pre|code|table|tr|td|th|h[1-6]|strong|em|b|i|br|hr|blockquote)\b[^>]*>", re.I)

CHATGPT = (
    '<div class="markdown prose w-full break-words dark:prose-invert light"><p>Here is the function:</p>'
    '<pre><div class="bg-black rounded-md mb-4"><div class="flex items-center relative text-gray-200 bg-gray-800 px-4 py-2 '
    'text-xs font-sans"><span>python</span><button class="flex ml-auto gap-2"><svg><path d="M1"></path></svg>Copy code'
    '</button></div><div class="p-4 overflow-y-auto"><code class="!whitespace-pre hljs language-python">def f(a, b):\n'
    '    if a &lt; b and b &gt; 0:  \n        return "&amp;"\n</code></div></div></pre>'
    '<ol start="3"><li>Third <strong>step</strong></li><li>Fourth, see <a href="https://x.org/a?b=1&amp;c=2">docs</a>'
    '<ul><li>nested</li></ul></li></ol>'
    '<table><thead><tr><th>Name</th><th>Qty</th></tr></thead><tbody><tr><td>a|b</td><td>2</td></tr></tbody></table>'
    '<p>Done &amp; dusted.</p></div>'
)


def step(**kw) -> HtmlToMarkdown:
    return HtmlToMarkdown(HtmlParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))


def test_chatgpt_export():
    md = html_to_markdown(CHATGPT)
    assert "```python\ndef f(a, b):\n    if a < b and b > 0:  \n        return \"&\"\n```" in md  # byte for byte, trailing spaces too
    assert "Copy code" not in md and "<" not in md.replace("a < b", "")
    assert "3. Third **step**\n4. Fourth, see [docs](https://x.org/a?b=1&c=2)\n   - nested" in md
    assert "| Name | Qty |\n|---|---|\n| a\\|b | 2 |" in md
    assert md.endswith("Done & dusted.")


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
        "In HTML:\n```html\n<p>Hello</p>\n<div class=\"x\"></div>\n```\nThat's it.",
        "Inline code like `</p>` is fine.",
        "x = 3 < 4 > 2",
    ]
    out = step().process(rows_table([[("user", t)] for t in original]))
    assert texts(out.table) == [[t] for t in original]
    assert out.counters["turns_skipped_fast_path"] == 4


def test_bad_inputs_are_rejected_with_a_reason_never_a_crash():
    deep = "<div>" * 10000 + "x" + "</div>" * 10000
    convs = [[("assistant", deep)], [("assistant", "<div><span></span></div><p></p>")], [("assistant", "")],
             [("assistant", "<p>" + "word " * 200000 + "</p>")], [("assistant", "<p>Привет, 世界 — مرحبا</p>")],
             [("assistant", "<p>unclosed <b>bold <i>and <a href='x'>link")], [("assistant", "<p>ok</p><script>alert(1)</script><style>p{}</style>")]]
    out = step().process(rows_table(convs))
    assert out.reason[:4] == ["html_too_deep", "html_markup_only", None, None]
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


def test_e2e_identity_with_bad_rows(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "deep", "conversations": [{"from": "gpt", "value": "<b>" * 500 + "x"}]},
                                               {"id": "ok", "conversations": [{"from": "gpt", "value": "<p>fine</p>"}]}])
    stats = run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps="\n  - html_to_markdown: {}"))
    assert stats["rows_rejected"] == 1 and stats["rows_kept"] == 1


@pytest.mark.parametrize(("step_yaml", "message"), [("{max_depth: 5}", "steps[0].max_depth: must be >= 10 (got 5)"),
                                                    ("{roles: []}", "steps[0].roles: must list at least 1 item (got [])")])
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "html_to_markdown", step_yaml, message)
