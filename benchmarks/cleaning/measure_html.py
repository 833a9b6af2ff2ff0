"""html_to_markdown on every Stack Exchange post in ../shared/data/html: accuracy and speed.

  python benchmarks/cleaning/measure_html.py

Prints the share of posts with tag residue after conversion, the share of <pre> blocks whose text is
kept verbatim inside a Markdown fence, the share of links whose href survives, and turns/s.
"""

from __future__ import annotations

import html
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from curate.steps.html_to_markdown import html_to_markdown, looks_like_html  # noqa: E402

POSTS = REPO.parent / "shared" / "data" / "html" / "stackexchange_coffee_Posts.xml"
RESIDUE = re.compile(
    r"</?(p|div|span|a|img|ul|ol|li|pre|code|table|tr|td|th|h[1-6]|strong|em|b|i|br|hr|blockquote)\b[^>]*>", re.I
)


def main() -> None:
    bodies = [r.get("Body") for r in ET.parse(POSTS).getroot() if r.get("Body")]
    looks_like_html(pa.array(["`<p>warm-up</p>`"]))  # compiles the patterns, builds the converter's
    html_to_markdown("<p>warm-up</p>")  # options: once per process
    start = time.process_time()  # CPU seconds: the machine is shared
    detected = looks_like_html(pa.array(bodies))
    converted = [html_to_markdown(b) if d else b for b, d in zip(bodies, detected)]
    seconds = time.process_time() - start
    residue = pre_total = pre_kept = links_total = links_kept = 0
    for src, md in zip(bodies, converted):
        outside_code = re.sub(r"```.*?```", "", md, flags=re.S)
        outside_code = re.sub(r"`[^`]*`", "", outside_code)
        residue += bool(RESIDUE.search(outside_code))
        for block in re.findall(r"<pre[^>]*>(.*?)</pre>", src, flags=re.S):
            code = html.unescape(re.sub(r"</?code[^>]*>", "", block)).rstrip("\n")
            pre_total += 1
            fences = re.findall(r"```[\w+-]*\n(.*?)\n```", md, flags=re.S)
            pre_kept += any(code == f for f in fences)
        for href in re.findall(r'<a [^>]*href="([^"]+)"', src):
            links_total += 1
            links_kept += html.unescape(href) in md
    n = len(bodies)
    print(f"Stack Exchange posts (coffee.stackexchange.com dump): {n}, detected as HTML: {int(detected.sum())}\n")
    print("| measure | value |\n|---|---|")
    print(f"| posts with tag residue after conversion | {residue}/{n} ({residue / n:.1%}) |")
    print(f"| <pre> blocks kept verbatim in a fence | {pre_kept}/{pre_total} ({pre_kept / max(pre_total, 1):.1%}) |")
    print(f"| links whose href is kept | {links_kept}/{links_total} ({links_kept / max(links_total, 1):.1%}) |")
    print(
        f"| speed | {n / seconds:,.0f} posts/s ({sum(map(len, bodies)) / seconds / 1e6:.2f} MB/s) on one core (CPU time) |"
    )


if __name__ == "__main__":
    main()
