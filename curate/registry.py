"""Step name (the YAML key) -> step class. Unknown names suggest the nearest registered one."""

from __future__ import annotations

import difflib
import importlib
import pkgutil

from curate.errors import UserError
from curate.steps.base import Step

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
    _load_all()
    return dict(sorted(_STEPS.items()))


def nearest(name: str, choices) -> str | None:
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return match[0] if match else None


def find_step(name: str) -> type[Step] | None:
    """The step registered as `name`, importing only its own module (curate/steps/<name>.py) when
    it follows the naming rule: a run then loads only the libraries of the steps it uses (scipy,
    bs4, fasttext, torch are each one step's), which saves ~0.5 s per process and per Ray worker."""
    if name not in _STEPS and name.isidentifier() and not name.startswith("_") and name != "base":
        try:
            importlib.import_module(f"curate.steps.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"curate.steps.{name}":
                raise
    if name not in _STEPS:
        _load_all()
    return _STEPS.get(name)


def unknown_step_message(name) -> str:
    """'unknown step X; did you mean Y?' (or the list of known steps)."""
    steps = all_steps()
    hint = nearest(str(name), steps)
    suggestion = f"did you mean {hint!r}?" if hint else f"known steps: {', '.join(steps)}"
    return f"unknown step {name!r}; {suggestion}"


def get_step(name: str) -> type[Step]:
    cls = find_step(name)
    if cls is None:
        raise UserError(unknown_step_message(name))
    return cls
