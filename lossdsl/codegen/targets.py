"""The registry of code targets: every place that means "each backend" (compile's check, the
CLI, the tests) takes the list from here.

A target is one Python file that defines `TARGET` (a lossdsl.codegen.Target: imports, dtype
tests and one template per op of lossdsl/ops.py). The shipped ones live in the top-level
backends/ folder (beside the package in a checkout, inside it in a wheel) and are loaded by
path. Another target is one file plus `register(name, path)`.

"numpy" is special in one way: `compile("numpy")` runs the float64 interpreter of the IR
(backends/numpy_ref.py, `reference()`), the meaning every target is tested against; its code
target (backends/numpy_backend.py) is what `source("numpy")` prints. `load_backend("numpy")`
serves both: the target module re-exports the interpreter's functions.
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

from lossdsl.resources import resource_dir

# The shipped targets, in the order messages list them.
TARGETS = ("torch", "jax", "numpy")
REFERENCE = "numpy"  # compile() of this one runs the interpreter, `reference()`

_FILES: dict[str, str | Path] = {
    "torch": "torch_backend",
    "jax": "jax_backend",
    "numpy": "numpy_backend",
}
_LOADED: dict[str | Path, types.ModuleType] = {}
# Caches keyed by a target's name (compiled functions, sources, chunked schedules) register
# their clear() here: a name unregistered and registered again may name another file.
_CACHES: list = []


def cache_by_target(fn):
    """Mark an lru_cache keyed by target name: cleared when a target is unregistered."""
    _CACHES.append(fn.cache_clear)
    return fn


def registered() -> tuple[str, ...]:
    """Every target compile() and source() accept now: the shipped ones and those registered."""
    return tuple(_FILES)


def register(name: str, path: str | Path) -> None:
    """Add the target defined by the Python file at `path` (it defines TARGET) as `name`."""
    if not name.isidentifier() or name in _FILES:
        raise ValueError(f"cannot register a target named {name!r}")
    _FILES[name] = Path(path)


def unregister(name: str) -> None:
    """Remove a registered target (not a shipped one)."""
    if name in TARGETS:
        raise ValueError(f"the shipped target {name!r} cannot be unregistered")
    _LOADED.pop(_FILES.pop(name), None)
    for clear in _CACHES:
        clear()


def load_backend(name: str) -> types.ModuleType:
    """The module of target `name` (its TARGET and templates), loaded once."""
    return _load(_FILES[name])


def shipped_module(stem: str) -> types.ModuleType:
    """A module of the shipped backends/ folder by its file's stem ("numpy_ref")."""
    return _load(stem)


def reference() -> types.ModuleType:
    """The float64 numpy interpreter of the IR (backends/numpy_ref.py): `evaluate(prog, ...)`."""
    return _load("numpy_ref")


def _load(where: str | Path) -> types.ModuleType:
    if where not in _LOADED:
        if isinstance(where, Path):
            path, stem = where, where.stem
        else:
            path, stem = resource_dir("backends") / f"{where}.py", where
        spec = importlib.util.spec_from_file_location(f"lossdsl_backends.{stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _LOADED[where] = mod
    return _LOADED[where]
