"""Data that ships inside the package (rules, models, recipes), found with importlib.resources so
an installed wheel, an editable install and a checkout on PYTHONPATH all find the same files.

Steps load these by path (fastText, Parquet and gzip readers want a file name), so curate must be
installed as files, not imported from a zip; every pip install is.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from curate.errors import UserError


def shipped(name: str) -> Path:
    """A folder of the installed package: rules, models or recipes."""
    return Path(str(resources.files("curate").joinpath(name)))


RULES_DIR = shipped("rules")
MODELS_DIR = shipped("models")
RECIPES_DIR = shipped("recipes")
# Maintainers' scripts that live beside the data but are not rules.
_NOT_RULES = shutil.ignore_patterns("build.py", "__pycache__", "*.pyc")


def copy_rules(dest: Path) -> Path:
    """Copy the shipped rules folder to `dest` (which must not hold anything yet), to edit there
    and point a pipeline's `rules:` key at."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(f"{dest} already exists and is not an empty folder; choose a new one")
    if dest.exists():
        dest.rmdir()
    shutil.copytree(RULES_DIR, dest, ignore=_NOT_RULES)
    return dest


def recipes() -> dict[str, Path]:
    """Shipped recipe name (file stem) -> its YAML."""
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.yaml"))}


def recipe_purpose(path: Path) -> str:
    """The recipe's first comment line: what it is for."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and line.strip("# "):
            return line.lstrip("# ").strip()
    return ""


def pipeline_path(arg: str) -> str:
    """A pipeline argument as a file: an existing path stays a path; a bare name (`sharegpt`) is a
    shipped recipe. Anything else is left for the YAML loader's 'not found' error."""
    if Path(arg).exists() or "/" in arg or "\\" in arg or arg.endswith((".yaml", ".yml")):
        return arg
    found = recipes().get(arg)
    if found is None:
        raise UserError(
            f"pipeline file not found: {arg} (and no shipped recipe is named so; recipes: {', '.join(recipes())})"
        )
    return str(found)
