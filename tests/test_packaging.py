"""What a wheel carries: every shipped data file is named by package-data (else a wheel would lack
it, as it once lacked rules/), the rules folder copies out for editing, recipes are found by name.
.ci/wheel builds and installs the real wheel; this is the quick check of the same promises."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from curate.errors import UserError
from curate.resources import RECIPES_DIR, RULES_DIR, copy_rules, pipeline_path
from tests.helpers import REPO


def _shipped_files() -> list[str]:
    package = REPO / "curate"
    return [
        str(p.relative_to(package))
        for d in ("rules", "models", "recipes")
        for p in sorted((package / d).rglob("*"))
        if p.is_file() and p.name != "build.py" and "samples" not in p.parts and "__pycache__" not in p.parts
    ]


def test_package_data_names_every_shipped_file():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["curate"]
    # setuptools' globs: `*` does not cross a folder.
    missing = [f for f in _shipped_files() if not any(fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert not missing, f"add these to [tool.setuptools.package-data] or a wheel will lack them: {missing}"
    assert "Apache-2.0" == config["project"]["license"]


def test_rules_copy_starts_a_rules_folder(tmp_path):
    dest = tmp_path / "my_rules"
    p = subprocess.run(
        [sys.executable, "-m", "curate", "rules", "copy", str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert p.returncode == 0 and f"rules: {dest}" in p.stdout, p.stderr
    copied = sorted(str(f.relative_to(dest)) for f in dest.rglob("*") if f.is_file())
    assert copied == sorted(
        str(f.relative_to(RULES_DIR))
        for f in RULES_DIR.rglob("*")
        if f.is_file() and f.name != "build.py" and "__pycache__" not in f.parts
    )
    again = subprocess.run(
        [sys.executable, "-m", "curate", "rules", "copy", str(dest)], capture_output=True, text=True, timeout=60
    )
    assert (
        again.returncode == 1
        and again.stderr == f"{dest} already exists and is not an empty folder; choose a new one\n"
    )


def test_copy_rules_into_an_empty_folder(tmp_path):
    assert (copy_rules(tmp_path) / "eval_sets.yaml").exists()


def test_a_recipe_by_name_or_a_path(tmp_path, monkeypatch):
    assert pipeline_path("sharegpt") == str(RECIPES_DIR / "sharegpt.yaml")
    monkeypatch.chdir(tmp_path)
    Path("sharegpt").write_text("input: {path: x}\n")  # an existing file wins over a recipe's name
    assert pipeline_path("sharegpt") == "sharegpt"
    assert pipeline_path("pipelines/nope.yaml") == "pipelines/nope.yaml"  # a path: the loader's 'not found'
    with pytest.raises(UserError, match="no shipped recipe is named so"):
        pipeline_path("nope")
