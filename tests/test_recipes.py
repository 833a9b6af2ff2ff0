"""Every shipped recipe runs end to end on its sample (by name, as an installed curate finds it) and
does what its comment says; recipes are commented; the wheel's recipes are pipelines/."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from curate.config import load_pipeline
from curate.resources import RECIPES_DIR, pipeline_path, recipe_purpose, recipes
from curate.run import execute
from tests.helpers import REPO, assert_identity, read_dir

EXPECTED = {"sharegpt", "openai_sft", "alpaca", "decontam_only", "dedup_only"}


def _run(name: str, out, **overrides) -> tuple[dict, dict]:
    """Run a shipped recipe from the repository root (where its sample is), local runner."""
    pipe = load_pipeline(pipeline_path(name), {"output.path": str(out), **overrides})
    execute(pipe, runner_kind="local", log=lambda m: None)
    stats = json.loads((out / "stats.json").read_text())
    assert_identity(stats)
    rejected = read_dir(out / "rejected")
    reasons = (
        dict(zip(rejected.column("id").to_pylist(), rejected.column("_curate_drop_reason").to_pylist()))
        if rejected
        else {}
    )
    return stats, reasons


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)


def test_recipes_are_shipped_and_commented():
    assert RECIPES_DIR.resolve() == (REPO / "pipelines").resolve()
    assert set(recipes()) >= EXPECTED
    for name, path in recipes().items():
        assert len(recipe_purpose(path)) > 30, name
        text = path.read_text()
        assert f"curate run {name} " in text or f"curate run pipelines/{name}.yaml" in text, (
            f"{name}: no example command"
        )
    listing = subprocess.run([sys.executable, "-m", "curate", "recipes"], capture_output=True, text=True, timeout=60)
    assert all(f"{name}: " in listing.stdout for name in EXPECTED), listing


def test_a_name_that_is_not_a_recipe_is_one_line():
    with pytest.raises(
        Exception, match=r"^pipeline file not found: sharegtp \(and no shipped recipe is named so; recipes: "
    ):
        pipeline_path("sharegtp")


def test_sharegpt(tmp_path):
    stats, reasons = _run("sharegpt", tmp_path / "out")
    assert stats["rows_in"] == 375 and stats["rows_quarantined"] > 0 and stats["rows_added"] > 0
    copies = [i for i in reasons if i.endswith(("-copy", "-case"))]
    assert len(copies) == 18 and "exact_duplicate" in {reasons[i] for i in copies}  # (or an earlier step's reason)
    assert all(reasons.get(f"eval-gsm8k-{i}", "").startswith("contaminated") for i in range(4))
    assert (tmp_path / "out" / "README.md").exists()


def test_openai_sft_mix(tmp_path):
    stats, reasons = _run("openai_sft", tmp_path / "out")
    assert stats["rows_quarantined"] == 1  # the malformed line of code.jsonl
    planted = {i: r for i, r in reasons.items() if i.endswith(("-copy", "-xsrc")) or i.startswith("eval-")}
    assert planted == {
        "ioewlC1_0-copy": "exact_duplicate",
        "bbUOuh5_0-copy": "exact_duplicate",
        "XjMgEWd_0-xsrc": "exact_duplicate",  # the same conversation in the other source
        "eval-gsm8k-0": "contaminated_question",
        "eval-truthfulqa-0": "contaminated_question",
    }
    lines = [json.loads(line) for f in sorted((tmp_path / "out" / "kept_jsonl").glob("*.jsonl")) for line in f.open()]
    assert len(lines) == stats["rows_kept"] and all(m["role"] and m["content"] for r in lines for m in r["messages"])


def test_alpaca(tmp_path):
    stats, reasons = _run("alpaca", tmp_path / "out")
    assert reasons["X8wV9x0_0-copy"] == "exact_duplicate" and reasons["eval-gsm8k-1"] == "contaminated_question"
    assert reasons["refusal-0"].startswith("boilerplate")
    kept = read_dir(tmp_path / "out" / "kept")
    assert kept.num_rows == stats["rows_kept"] > 20


def test_dedup_only_removes_only_duplicates(tmp_path):
    stats, reasons = _run("dedup_only", tmp_path / "out")
    assert [s["step"] for s in stats["steps"]] == ["exact_dedup", "minhash_dedup"]
    exact = {i for i, r in reasons.items() if r == "exact_duplicate"}
    near = {i for i, r in reasons.items() if r == "near_duplicate"}
    assert exact | near == set(reasons) and len(exact) == 18 and all(i.endswith(("-copy", "-case")) for i in exact)
    assert all(i.endswith(("-edit", "-html")) for i in near) and len(near) >= 10


def test_decontam_only_checks_a_finished_set(tmp_path):
    stats, reasons = _run("decontam_only", tmp_path / "out")
    assert reasons == {
        "eval-gsm8k-2": "contaminated_question",
        "eval-vicuna-1": "contaminated_question",
        "eval-truthfulqa-1": "contaminated_question",
    }
    assert stats["rows_kept"] == stats["rows_in"] - 3


def test_decontam_only_reads_a_runs_kept_set(tmp_path):
    """The recipe's first use: a curate run's kept/ (Parquet with its step columns) checked again."""
    _run("dedup_only", tmp_path / "first")
    stats, reasons = _run("decontam_only", tmp_path / "checked", **{"input.path": str(tmp_path / "first" / "kept")})
    first = sum(pq.read_metadata(f).num_rows for f in (tmp_path / "first" / "kept").glob("*.parquet"))
    assert stats["rows_in"] == first and stats["rows_quarantined"] == 0
    assert all(i.startswith("eval-") and r.startswith("contaminated") for i, r in reasons.items())
    assert {f"eval-gsm8k-{k}" for k in range(4)} <= set(reasons)


def test_samples_are_rebuilt_byte_for_byte(tmp_path):
    samples = REPO / "pipelines" / "samples"
    subprocess.run([sys.executable, str(samples / "build.py"), "--out", str(tmp_path)], check=True, timeout=60)
    built = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert built == sorted(p.relative_to(samples) for p in samples.rglob("*") if p.is_file() and p.name != "build.py")
    assert all((tmp_path / p).read_bytes() == (samples / p).read_bytes() for p in built)
