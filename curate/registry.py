"""Step name (the YAML key) -> step class. Unknown names suggest the nearest registered one.

Three kinds of name, resolved the same way in the driver and in every Ray worker:
  exact_dedup              a step built into curate (curate/steps/exact_dedup.py)
  my_filter                a step an installed package registers in the `curate.steps` entry-point group
  my_pkg.my_module:MyStep  a class in the user's own module (on PYTHONPATH, installed, or in the
                           current directory)
"""

from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
import re
import sys
from importlib import metadata

from curate.errors import UserError
from curate.steps.base import GlobalStep, MapStep, Step

ENTRY_POINT_GROUP = "curate.steps"
_CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

_STEPS: dict[str, type[Step]] = {}
_loaded = False


def register(cls: type[Step]) -> type[Step]:
    """Class decorator: make a step available under its `name`."""
    if cls.name in _STEPS and _STEPS[cls.name] is not cls:
        raise RuntimeError(f"two steps registered as {cls.name!r}")
    _STEPS[cls.name] = cls
    return cls


def _load_all() -> None:
    """Import every module under curate.steps once, so their @register decorators run."""
    global _loaded
    if _loaded:
        return
    import curate.steps as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != "base":
            importlib.import_module(f"curate.steps.{mod.name}")
    _loaded = True


def all_steps() -> dict[str, type[Step]]:
    """The steps built into curate (plugin_steps() names the installed packages' ones)."""
    _load_all()
    return dict(sorted(_STEPS.items()))


def nearest(name: str, choices) -> str | None:
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return match[0] if match else None


def plugin_steps() -> dict[str, str]:
    """Step name -> the distribution that registers it in the `curate.steps` entry-point group.
    A built-in step's name cannot be taken by a plugin: the built-in wins."""
    builtin = all_steps()
    out = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in builtin:
            dist = getattr(ep, "dist", None)
            out[ep.name] = f"{dist.name if dist else '?'}: {ep.value}"
    return dict(sorted(out.items()))


_EXTERNAL: dict[str, type[Step]] = {}


def _import_module(module: str):
    # Like `python -m`, a module in the current directory is importable (appended, so it cannot
    # shadow an installed package); Ray workers get the driver's directory on their path too.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            raise UserError(
                f"cannot import module {module!r} (no module named {e.name!r}): is it installed, on "
                f"PYTHONPATH or in the current directory?"
            ) from None
        raise UserError(f"importing {module!r} failed: {type(e).__name__}: {e}") from None
    except Exception as e:  # noqa: BLE001 -- the user's module raised while importing: one line, exit 1
        raise UserError(
            f"importing {module!r} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None


def _check_step_class(obj, where: str) -> type[Step]:
    """A user's class must be a step like a built-in one: a MapStep or GlobalStep with a name and a
    pydantic Params model."""
    from pydantic import BaseModel

    if not (isinstance(obj, type) and issubclass(obj, (MapStep, GlobalStep))) or obj in (MapStep, GlobalStep):
        got = f"class {obj.__name__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
        raise UserError(
            f"{where} is not a curate step (got {got}): a step is a class deriving from "
            "curate.steps.base.MapStep or GlobalStep"
        )
    if not isinstance(getattr(obj, "name", None), str) or not obj.name:
        raise UserError(
            f'{where} has no `name`: set a class attribute name = "..." (rejected rows and the report show it)'
        )
    if not (isinstance(obj.Params, type) and issubclass(obj.Params, BaseModel)):
        raise UserError(f"{where}.Params must be a pydantic model (derive it from curate.steps.base.Params)")
    return obj


def _load_class_path(path: str) -> type[Step]:
    if not _CLASS_PATH.match(path):
        raise UserError(f"{path!r} is neither a step name nor a package.module:ClassName path")
    module_name, _, attr = path.partition(":")
    obj = _import_module(module_name)
    for part in attr.split("."):
        if not hasattr(obj, part):
            module = sys.modules[module_name]
            candidates = [
                n
                for n, v in vars(module).items()
                if isinstance(v, type) and issubclass(v, Step) and v.__module__ == module_name
            ]
            hint = nearest(part, candidates)
            raise UserError(f"module {module_name!r} has no {part!r}" + (f"; did you mean {hint!r}?" if hint else ""))
        obj = getattr(obj, part)
    return _check_step_class(obj, path)


def _load_entry_point(ep) -> type[Step]:
    where = f"{ep.name} (entry point {ep.value!r} in group {ENTRY_POINT_GROUP})"
    module_name = ep.value.partition(":")[0].strip()
    _import_module(module_name)  # its errors, in one line
    try:
        obj = ep.load()
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{where}: cannot load: {type(e).__name__}: {e}") from None
    return _check_step_class(obj, where)


def _find_external(name: str) -> type[Step] | None:
    if name in _EXTERNAL:
        return _EXTERNAL[name]
    if ":" in name:
        cls = _load_class_path(name)
    else:
        ep = next((e for e in metadata.entry_points(group=ENTRY_POINT_GROUP) if e.name == name), None)
        if ep is None:
            return None
        cls = _load_entry_point(ep)
    _EXTERNAL[name] = cls
    return cls


def find_step(name: str) -> type[Step] | None:
    """The step registered as `name`, importing only its own module (curate/steps/<name>.py) when
    it follows the naming rule: a run then loads only the libraries of the steps it uses (scipy,
    bs4, fasttext, torch are each one step's), which saves ~0.5 s per process and per Ray worker."""
    if ":" in name:
        return _find_external(name)
    if name not in _STEPS and name.isidentifier() and not name.startswith("_") and name != "base":
        try:
            importlib.import_module(f"curate.steps.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"curate.steps.{name}":
                raise
    if name in _STEPS:
        return _STEPS[name]
    # An installed package's step (entry point) before loading every built-in module: a Ray worker
    # running a plugin's step then loads only what it uses.
    return _find_external(name) or (_load_all() or _STEPS.get(name))


def unknown_step_message(name) -> str:
    """'unknown step X; did you mean Y?' (or the list of known steps)."""
    steps = {**all_steps(), **plugin_steps()}
    hint = nearest(str(name), steps)
    suggestion = f"did you mean {hint!r}?" if hint else f"known steps: {', '.join(steps)}"
    return f"unknown step {name!r}; {suggestion}"


def get_step(name: str) -> type[Step]:
    cls = find_step(name)
    if cls is None:
        raise UserError(unknown_step_message(name))
    return cls
