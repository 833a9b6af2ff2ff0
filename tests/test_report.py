"""The audit report: sections and numbers match stats.json, user text is escaped, and it renders in
a real headless browser without console errors."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess

import pytest

from curate.errors import UserError
from curate.report import write_report
from tests.helpers import REPO, SHARED_DATA, pipeline_yaml, run, write_jsonl

SAMPLE = REPO / "sample_data"
STEPS = "\n  - language: {keep: [en]}\n  - quality_heuristics: {}\n  - exact_dedup: {}\n  - minhash_dedup: {}"


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    stats = run(pipeline_yaml(tmp / "p.yaml", SAMPLE, tmp / "out", steps=STEPS))
    return tmp / "out", stats


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_every_run_writes_a_report_with_the_numbers_of_stats_json(sample_run):
    out, stats = sample_run
    html = (out / "report.html").read_text()
    plain = text_of(html)
    identity = f"rows in {stats['rows_in']:,} = kept {stats['rows_kept']:,} + rejected {stats['rows_rejected']:,} + quarantined {stats['rows_quarantined']:,}"
    assert identity in plain and "(holds)" in plain
    for step in stats["steps"]:
        row = re.search(
            rf"<td><b>{step['step']}</b></td><td class=n>([\d,]+)</td><td class=n>([\d,]+)</td><td class=n>([\d,]+)</td>",
            html,
        )
        assert row, step["step"]
        assert [int(x.replace(",", "")) for x in row.groups()] == [
            step["rows_in"],
            step["rows_kept"],
            step["rows_dropped"],
        ]
        for reason in step["dropped"]:
            assert f"<span class=tag>{reason}</span>" in html
    for section in (
        "Funnel",
        "Distributions before and after",
        "Rejected rows, by step and reason",
        "Duplicate clusters",
        "Quarantined records",
        "Resolved pipeline",
        "Turns per conversation",
        "Tokens per turn",
        "Languages",
    ):
        assert section in plain, section
    # quarantined records with their parse errors and lines
    assert "invalid JSON" in plain and "malformed.jsonl" in plain
    # threshold lines come from the resolved pipeline
    assert "min_similarity 0.7" in html and "non_alpha_words" in html
    # self-contained: nothing is loaded from anywhere (URLs in user text are escaped text)
    for tag in ("<script", "<link", "<img", "<iframe", "<object", "url(", "@import"):
        assert tag not in html, tag
    assert not re.search(r"""\s(src|href)=["']?(https?:)?//""", html)


def test_distributions_in_stats_json_count_the_published_rows(sample_run):
    """The final segment counts turns, tokens and languages per shard; the sums must be what the
    kept/ and rejected/ files hold (the report draws its before/after charts from them)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    out, stats = sample_run
    dist = stats["distributions"]
    for side in ("kept", "rejected"):
        rows = ds.dataset(out / side, format="parquet").to_table(columns=["messages", "lang"])
        assert sum(dist[side]["turns"].values()) == rows.num_rows == stats[f"rows_{side}"]
        turns = pc.list_flatten(rows.column("messages"))
        assert sum(dist[side]["tokens"].values()) == len(turns)
        long_turns = sum(n for label, n in dist[side]["tokens"].items() if label != "<1K")
        assert long_turns == pc.sum(pc.greater_equal(pc.utf8_length(pc.struct_field(turns, "content")), 4096)).as_py()
        langs = {k: v for k, v in zip(*[c.to_pylist() for c in pc.value_counts(rows.column("lang")).flatten()]) if k}
        assert dist[side]["lang"] == langs


def test_report_rerenders_from_the_run_files_alone(sample_run, tmp_path):
    out, _ = sample_run
    copy = tmp_path / out.name
    shutil.copytree(out, copy)
    (copy / "report.html").unlink()
    original = (out / "report.html").read_text().replace(f"<div class=sub>{out}", f"<div class=sub>{copy}", 1)
    assert write_report(copy).read_text() == original


def test_sections_follow_the_pipeline(tmp_path):
    src = write_jsonl(
        tmp_path / "in.jsonl", [{"id": "a", "conversations": [{"from": "human", "value": "hello there"}]}]
    )
    run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps="\n  - exact_dedup: {}"))
    plain = text_of((tmp_path / "out" / "report.html").read_text())
    assert "Duplicate clusters" not in plain and "Contamination hits" not in plain and "Languages" not in plain
    assert "No rows were rejected." in plain and "No record was quarantined." in plain


XSS = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def test_user_text_is_escaped(tmp_path):
    rows = [
        {
            "id": f"x{XSS}",
            "conversations": [{"from": "human", "value": f"hi {XSS}"}, {"from": "gpt", "value": f"ok {XSS}"}],
        },
        {
            "id": f"y{XSS}",
            "conversations": [{"from": "human", "value": f"hi {XSS}"}, {"from": "gpt", "value": f"ok {XSS}"}],
        },
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows) + XSS + "\n")
    run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps="\n  - exact_dedup: {}"))
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<script" not in html and "<img" not in html and 'onerror="' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text: rejected row, id, quarantined raw line


def test_not_a_run_directory_is_one_line(tmp_path):
    with pytest.raises(UserError, match="not a finished curate run"):
        write_report(tmp_path)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (.ci/run installs it)")
def test_renders_in_headless_chromium_without_console_errors(sample_run, tmp_path):
    out, stats = sample_run
    p = subprocess.run(
        [
            "chromium",
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            (out / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout
    assert "curate quality report" in dom and dom.count("<svg") >= 4
    assert f"kept {stats['rows_kept']:,}" in text_of(dom)
    console = [line for line in p.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []


def test_select_pipeline_report_shows_scores_examples_and_semantic_clusters(tmp_path):
    pairs = [
        (
            "How do I bake sourdough bread at home?",
            "Mix flour, water and starter, let it rise overnight, shape it and bake at 230 C.",
        ),
        (
            "How can I bake sourdough bread at home?",
            "Mix flour, water and starter, let it rise overnight, shape it, then bake at 230 C.",
        ),
    ]
    with gzip.open(SHARED_DATA / "quality" / "alpaca_gpt4_subset_raw.jsonl.gz", "rt", encoding="utf-8") as f:
        pairs += [(r["instruction"], r["output"]) for r in map(json.loads, list(f)[:18])]
    recs = [
        {"id": f"s{i}", "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
        for i, (q, a) in enumerate(pairs)
    ]
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    steps = "\n  - semantic_dedup: {}\n  - quality_score: {}\n  - select: {fraction: 0.2}"
    stats = run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps=steps))
    live = next(st for st in stats["steps"] if st["step"].endswith("select"))["rows_in"]
    assert stats["rows_kept"] == int(live * 0.2 + 0.5) >= 3  # 20% of the rows left, rounded half up
    plain = text_of((tmp_path / "out" / "report.html").read_text())
    assert "What the scores prefer" in plain and "quality_score · top" in plain and "quality_score · bottom" in plain
    assert "Duplicate clusters" in plain and "kept: s0" in plain and "semantic score 0.9" in plain
    assert "not_selected" in plain
