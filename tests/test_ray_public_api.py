"""curate uses Ray's public API only: no module imports or assigns to a private Ray name
(`ray._private`, `ray.*._internal`, an underscored attribute of anything that came from Ray), and
only curate/runners/ray.py imports Ray at all. A patched private internal breaks silently when
Ray changes it; this test breaks loudly instead."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def ray_violations(source: str) -> list[str]:
    """Every use of a private Ray name in `source`, and every assignment into something from Ray."""
    tree = ast.parse(source)
    from_ray: set[str] = set()  # local names bound to Ray modules, classes or functions
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "ray":
                    from_ray.add((a.asname or a.name).split(".")[0])
                    if any(_private(p) for p in a.name.split(".")):
                        found.append(f"line {node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ray":
            parts = node.module.split(".")
            for a in node.names:
                from_ray.add(a.asname or a.name)
                if any(_private(p) for p in parts + [a.name]):
                    found.append(f"line {node.lineno}: from {node.module} import {a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _root(node) in from_ray and _private(node.attr):
            found.append(f"line {node.lineno}: .{node.attr}")
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, (ast.AugAssign, ast.AnnAssign))
            else []
        )
        for t in targets:
            if isinstance(t, (ast.Attribute, ast.Subscript)) and _root(t) in from_ray:
                found.append(f"line {node.lineno}: assigns to {ast.unparse(t)}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and node.args
            and _root(node.args[0]) in from_ray
        ):
            found.append(f"line {node.lineno}: setattr on {ast.unparse(node.args[0])}")
    return found


def test_no_module_of_curate_touches_a_private_ray_name():
    files = sorted((REPO / "curate").rglob("*.py"))
    assert len(files) > 20
    bad = {str(f.relative_to(REPO)): v for f in files if (v := ray_violations(f.read_text(encoding="utf-8")))}
    assert not bad


def test_only_the_ray_runner_imports_ray():
    importers = []
    for f in sorted((REPO / "curate").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.split(".")[0] == "ray" for n in names):
                importers.append(str(Path(f).relative_to(REPO)))
    assert set(importers) == {"curate/runners/ray.py"}


def test_the_check_catches_the_patches_it_exists_for():
    """What this runner did before: a private import, a swapped module attribute, a lowered
    class constant; and reading a private attribute."""
    patched = """
import ray
from ray.data._internal.execution import streaming_executor_state as state
from ray.data._internal.execution.resource_manager import ResourceManager
state.ray = object()
ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S = 0.1
setattr(ray.data.DataContext, "x", 1)
node = ray._private.worker.global_worker
"""
    found = ray_violations(patched)
    assert len(found) == 6, found
    assert not ray_violations(
        "import ray\nray.init(address='local')\nray.wait([], num_returns=1)\nx = ray.get_gpu_ids()\n"
    )
