"""Rebuild tests/data/html_suites/*.json from the public test suites of two HTML-to-Markdown converters.

    python benchmarks/cleaning/extract_suites.py MARKDOWNIFY_GIT_DIR TURNDOWN_GIT_DIR

Each case is (name, input HTML, the Markdown the converter's authors expect). The git directories are
clones of github.com/matthewwithanm/python-markdownify and github.com/mixmark-io/turndown (both MIT);
the files read are tests/test_*.py and test/index.html at HEAD. The commit is written beside the cases.

markdownify's assertions are collected by running its test functions with `md` replaced by a recorder
(so cases built in helper loops and f-strings are found too). A case is kept when its options only
change the Markdown's spelling, not what it renders to (heading style, bullets, fences, wrapping,
autolinks); options that drop tags, switch escaping off, add symbols or need a callback are left out.
turndown's cases are the `div.case` blocks of its HTML runner; only `preformattedCode` (which keeps
inline code's whitespace on purpose) is left out.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "html_suites"
# markdownify options that only change how the same rendering is spelled.
STYLE_OPTIONS = {
    "heading_style",
    "bullets",
    "strong_em_symbol",
    "newline_style",
    "code_language",
    "wrap",
    "wrap_width",
    "autolinks",
    "strip_document",
    "default_title",
    "escape_misc",
}


def git_show(repo: Path, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), "show", f"HEAD:{path}"], check=True, capture_output=True, text=True
    ).stdout


def git_head(repo: Path) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


class _Recorder:
    """What `md(...)` returns while collecting: comparing it with a string records that string."""

    def __init__(self, sink: list, test: str, html_in: str, options: dict):
        self.sink, self.test, self.html, self.options = sink, test, html_in, options

    def __eq__(self, other):
        if isinstance(other, str):
            self.sink.append({"test": self.test, "html": self.html, "options": self.options, "expected": other})
        return True

    __hash__ = None


def markdownify_cases(repo: Path) -> list[dict]:
    files = subprocess.run(
        ["git", "--git-dir", str(repo), "ls-tree", "--name-only", "HEAD", "tests/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    found: list[dict] = []
    for path in sorted(files):
        name = Path(path).stem
        if not name.startswith("test_") or name == "test_custom_converter":
            continue  # custom converter classes are an API test, not a conversion case
        source = git_show(repo, path).replace("from .utils import md", "")
        namespace: dict = {}
        current = {"test": ""}

        def md(html_in, _name=name, _current=current, **options):
            return _Recorder(found, f"{_name}::{_current['test']}", html_in, {k: repr(v) for k, v in options.items()})

        namespace["md"] = md
        namespace["markdownify"] = lambda html_in, **options: md(html_in, **{"strip_document": "STRIP", **options})
        exec(compile(source, path, "exec"), namespace)  # noqa: S102 (a pinned public test file, run to list its cases)
        namespace["md"] = md
        for fn_name, fn in list(namespace.items()):
            if fn_name.startswith("test_") and callable(fn):
                current["test"] = fn_name
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 (an assertion using something else than ==; the rest of that test is lost)
                    print(f"  {name}::{fn_name}: stopped at {type(e).__name__}: {e}", file=sys.stderr)
    kept = [
        c for c in found if set(c["options"]) <= STYLE_OPTIONS and c["options"].get("escape_misc", "True") == "True"
    ]
    seen, unique = set(), []
    for c in kept:
        key = (c["html"], c["expected"])
        if key not in seen:
            seen.add(key)
            unique.append({"name": f"{c['test']}#{len(unique)}", "html": c["html"], "expected": c["expected"]})
    print(
        f"markdownify: {len(found)} assertions, {len(kept)} without semantic options, {len(unique)} distinct",
        file=sys.stderr,
    )
    return unique


CASE = re.compile(
    r"""<div class="case" data-name="([^"]*)"(?: data-options='([^']*)')?>\s*<div class="input">(.*?)</div>\s*"""
    r"""<pre class="expected">(.*?)</pre>\s*</div>""",
    re.S,
)


def turndown_cases(repo: Path) -> list[dict]:
    page = git_show(repo, "test/index.html")
    cases = []
    for name, options, html_in, expected in CASE.findall(page):
        if "preformattedCode" in (options or ""):
            continue
        cases.append({"name": html.unescape(name), "html": html_in, "expected": html.unescape(expected)})
    print(f"turndown: {len(CASE.findall(page))} cases, {len(cases)} kept", file=sys.stderr)
    return cases


def main() -> None:
    mdf, td = Path(sys.argv[1]), Path(sys.argv[2])
    OUT.mkdir(parents=True, exist_ok=True)
    for name, repo, cases in (("markdownify", mdf, markdownify_cases(mdf)), ("turndown", td, turndown_cases(td))):
        doc = {
            "source": {
                "markdownify": "https://github.com/matthewwithanm/python-markdownify (tests/)",
                "turndown": "https://github.com/mixmark-io/turndown (test/index.html)",
            }[name],
            "commit": git_head(repo),
            "license": "MIT (see LICENSE." + name + ")",
            "cases": cases,
        }
        (OUT / f"{name}.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        (OUT / f"LICENSE.{name}").write_text(git_show(repo, "LICENSE"), encoding="utf-8")


if __name__ == "__main__":
    main()
