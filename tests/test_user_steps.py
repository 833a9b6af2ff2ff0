"""A step of the user's own, from a module outside curate/ (the one docs/writing_a_step.md shows):
validated like a built-in, run locally and on Ray, listed, and registered through an entry point."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from curate.config import load_pipeline
from curate.errors import UserError
from tests.helpers import REPO, pipeline_yaml, read_dir, run, write_jsonl

DOC = (REPO / "docs" / "writing_a_step.md").read_text()
RECORDS = [
    {
        "id": "ok",
        "messages": [
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "Seven is a prime."},
        ],
    },
    {"id": "short", "messages": [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "7"}]},
    {"id": "two", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]},
]


def _doc_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.+?)\n```", DOC, flags=re.DOTALL)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """The doc's my_filters.py in a folder of its own, importable as a user's module is."""
    folder = tmp_path / "userpkg"
    folder.mkdir()
    (folder / "my_filters.py").write_text(_doc_blocks("python")[0] + "\n")
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [m for m in sys.modules if m == "my_filters"]:
        del sys.modules[name]


def _pipeline(tmp_path, step: str, runner: str = "local") -> Path:
    src = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    return pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps=f"\n  - {step}", runner=runner)


def test_the_docs_test_passes(user_module):
    namespace: dict = {}
    exec(_doc_blocks("python")[1], namespace)  # noqa: S102 -- the doc's own test, run as written
    namespace["test_short_replies_are_rejected"]()


def test_user_step_runs_locally(tmp_path, user_module):
    stats = run(_pipeline(tmp_path, "my_filters:ShortReply: {min_words: 2}"))
    assert stats["steps"][0]["step"] == "short_reply" and stats["steps"][0]["dropped"] == {"short_reply": 1}
    assert read_dir(tmp_path / "out" / "rejected").column("id").to_pylist() == ["short"]
    assert sorted(read_dir(tmp_path / "out" / "kept").column("id").to_pylist()) == ["ok", "two"]


@pytest.mark.parametrize(
    "step, message",
    [
        ("my_filters:ShortReply: {min_words: 0}", "steps[0].min_words: must be >= 1 (got 0)"),
        ("my_filters:ShortReply: {min_word: 2}", "steps[0].min_word: unknown key; allowed: min_words"),
        (
            "my_filters:ShortReplies: {}",
            "steps[0].my_filters:ShortReplies: module 'my_filters' has no 'ShortReplies'; did you mean 'ShortReply'?",
        ),
        (
            "my_filterz:ShortReply: {}",
            "steps[0].my_filterz:ShortReply: cannot import module 'my_filterz' (no module named "
            "'my_filterz'): is it installed, on PYTHONPATH or in the current directory?",
        ),
        (
            "my_filters:ShortReplyParams: {}",
            "steps[0].my_filters:ShortReplyParams: my_filters:ShortReplyParams is not a "
            "curate step (got class ShortReplyParams): a step is a class deriving from "
            "curate.steps.base.MapStep or GlobalStep",
        ),
        (
            "my_filters:np: {}",
            "steps[0].my_filters:np: my_filters:np is not a curate step (got a module): a step is a "
            "class deriving from curate.steps.base.MapStep or GlobalStep",
        ),
        (
            "'my filters:X': {}",
            "steps[0].my filters:X: 'my filters:X' is neither a step name nor a package.module:ClassName path",
        ),
        ("short_reply: {}", "steps[0].short_reply: unknown step 'short_reply'; did you mean "),
    ],
)
def test_config_errors_are_one_line(tmp_path, user_module, step, message):
    path = _pipeline(tmp_path, step)
    with pytest.raises(UserError) as e:
        load_pipeline(str(path))
    assert str(e.value).startswith(f"{path}:8: {message}")
    assert "\n" not in str(e.value)


def test_a_module_that_fails_to_import_is_one_line(tmp_path, user_module):
    (user_module / "broken_steps.py").write_text("import not_installed_anywhere\n")
    path = _pipeline(tmp_path, "broken_steps:Step: {}")
    with pytest.raises(
        UserError,
        match=r"p.yaml:8: steps\[0\].broken_steps:Step: importing 'broken_steps' failed: "
        r"ModuleNotFoundError: No module named 'not_installed_anywhere'$",
    ):
        load_pipeline(str(path))


def _dist_info(folder: Path, entry_points: str) -> None:
    """An installed distribution as importlib.metadata finds one on sys.path (what pip writes)."""
    info = folder / "my_filters_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-filters-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[curate.steps]\n{entry_points}\n")


def test_entry_point_step_runs_and_is_listed(tmp_path, user_module):
    _dist_info(user_module, "short_reply = my_filters:ShortReply\nexact_dedup = my_filters:ShortReply")
    stats = run(_pipeline(tmp_path, "short_reply: {min_words: 2}"))
    assert stats["steps"][0]["dropped"] == {"short_reply": 1}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(user_module), str(REPO)])}
    listing = subprocess.run(
        [sys.executable, "-m", "curate", "list-steps"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    assert "short_reply (map) (from my-filters-pkg: my_filters:ShortReply): Drops conversations" in listing.stdout
    assert "    min_words: int = 3  [Ge(ge=1)]  fewest words an assistant reply may have" in listing.stdout
    # A plugin cannot take a built-in step's name.
    assert "exact_dedup (global): Exact duplicates" in listing.stdout and "my_filters:ShortReply)" in listing.stdout
    one = subprocess.run(
        [sys.executable, "-m", "curate", "list-steps", "my_filters:ShortReply"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert one.returncode == 0 and one.stdout.startswith("my_filters:ShortReply (map): Drops conversations"), one


def test_user_steps_run_on_ray(tmp_path, user_module):
    """`curate run` with an embedded Ray, as a user runs it: the workers import the user's module
    (by path and by entry point) themselves, and the kept set is the local runner's, byte for byte."""
    _dist_info(user_module, "short_reply = my_filters:ShortReply")
    src = write_jsonl(tmp_path / "in.jsonl", RECORDS * 2)
    steps = "\n  - my_filters:ShortReply: {min_words: 2}\n  - short_reply: {min_words: 3}"
    outputs = {}
    for runner in ("ray", "local"):
        path = pipeline_yaml(
            tmp_path / f"{runner}.yaml", src, tmp_path / runner, steps=steps, runner=runner, extra="  shard_rows: 2\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(user_module), str(REPO)])}
        p = subprocess.run(
            [sys.executable, "-m", "curate", "run", str(path), "--no-progress"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
        assert p.returncode == 0, p.stderr[-3000:]
        outputs[runner] = sorted((tmp_path / runner / "kept").glob("*.parquet"))
    assert len(outputs["ray"]) == 3
    assert [f.read_bytes() for f in outputs["ray"]] == [f.read_bytes() for f in outputs["local"]]
    rejected = read_dir(tmp_path / "ray" / "rejected")
    assert sorted(zip(rejected.column("id").to_pylist(), rejected.column("_curate_drop_step").to_pylist())) == [
        ("short", "short_reply"),
        ("short", "short_reply"),
        ("two", "short_reply"),
        ("two", "short_reply"),
    ]
