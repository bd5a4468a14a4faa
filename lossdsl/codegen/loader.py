"""Loading generated source: each module is exec'd as a real module (in sys.modules, so that
torch.compile can re-import a function's module by name) with its source in linecache (so that
tracebacks and inspect show the generated lines), and both are forgotten once nobody holds the
compiled function (a process that compiles thousands of specs would otherwise keep them all).
The one loader of compile() (lossdsl/compiled.py) and the chunked schedules
(lossdsl/schedules/)."""

from __future__ import annotations

import itertools
import linecache
import sys
import types
import weakref

from lossdsl.errors import InputError, ParamError

_MODULE_IDS = itertools.count()  # unique names: sys.modules shrinks as compiled modules go


def load_module(src: str, kind: str, name: str, backend: str, made: list) -> types.ModuleType:
    """Exec `src` (generated from our IR only) as a new module; (module name, linecache
    filename) is appended to `made` for `forget_modules`. kind: "generated" (a spec's module)
    or "chunked" (a sub-program of a chunked schedule)."""
    n = next(_MODULE_IDS)
    shown = f"{name} {backend}" if kind == "generated" else f"{kind} {name} {backend}"
    filename = f"<lossdsl {shown} {n}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    mod = types.ModuleType(f"_lossdsl_{kind}_{name}_{backend}_{n}")
    mod.__file__ = filename
    exec(compile(src, filename, "exec"), mod.__dict__)  # source generated from our IR only
    # the generated error classes are lossdsl's: callers catch lossdsl.InputError / ParamError
    mod.LossInputError, mod.LossParamError = InputError, ParamError
    sys.modules[mod.__name__] = mod
    made.append((mod.__name__, filename))
    return mod


def forget_modules(made) -> None:
    """Drop the modules and sources that `load_module` recorded in `made`."""
    for name, filename in made:
        sys.modules.pop(name, None)
        linecache.cache.pop(filename, None)


def forget_with(owner, made) -> None:
    """Forget `made`'s modules once `owner` (the compiled function) is garbage. (Not on the
    module's own function: its module, in sys.modules, holds it.) `made` may be a list that
    grows later (lazily built variants)."""
    weakref.finalize(owner, forget_modules, made)
