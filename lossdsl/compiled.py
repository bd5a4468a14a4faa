"""The plain schedule's callable (`Spec.compile`): `CompiledLoss` (the signature, argument
errors with hints, pickling as its recipe), the generated module of a spec's variants (built
lazily per combination of absent inputs when there are many), the float64 numpy reference as a
callable, the call-time checks of params, and the Python names of inputs and params.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lossdsl import constraints
from lossdsl.codegen import (
    NOT_ARRAY_TYPES,
    REFERENCE,
    cache_by_target,
    forget_with,
    function_name,
    load_module,
    public_names,
    reference,
)
from lossdsl.errors import ArityError, InputError, ParamError, did_you_mean
from lossdsl.ir import Program
from lossdsl.lower import REDUCTIONS, check_param_value
from lossdsl.programs import _SPECS, _key, _optimized, _source_cached, bake
from lossdsl.reductions import apply_recipe, parse_recipe

if TYPE_CHECKING:
    from lossdsl.compiler import Spec


# A module enumerates every combination of absent optional inputs (2^k functions) for up to
# this many optional inputs; compile() of a spec with more builds one module per combination
# actually called, on its first call (12 optional inputs made 4096 functions, 16 MB of source).
MAX_SPECIALIZED_OPTIONAL = 3


@cache_by_target
@functools.lru_cache(maxsize=512)
def _compiled_cached(spec_key, backend, baked, dim=None):
    spec = _SPECS[spec_key]
    recipe = ("plain", backend, baked, dim)
    if backend == REFERENCE:
        bake(spec._lowered(frozenset()), dict(baked))  # a violated constraint: now, as torch's
        return CompiledLoss(_reference_fn(spec, baked), spec, recipe, guard=False)
    declared = _public_names(spec, baked)
    made: list[tuple[str, str]] = []  # the generated modules (lazy variants add theirs later)
    if sum(i.optional for i in spec.inputs) > MAX_SPECIALIZED_OPTIONAL:
        fn = _lazy_variants(spec_key, backend, baked, dim, made)
    else:
        fn = _module_fn(spec, backend, _source_cached(spec_key, backend, baked, dim), made)
    out = CompiledLoss(fn, spec, recipe, declared)
    # Once neither this cache nor the caller holds the function, its modules and sources go
    # too: a process that compiles thousands of specs (a sweep, a fuzzer) would otherwise
    # keep every one, and its garbage-collection pauses grow with them.
    forget_with(out, made)
    return out


def _lazy_variants(spec_key, backend, baked, dim, made: list):
    """The compiled loss of a spec with many optional inputs: the module for one combination
    of absent inputs is built on the first call that leaves out exactly those. Each is the
    module the full enumeration would contain for them (the same programs), so the values
    are the same."""
    spec = _SPECS[spec_key]
    py = _public_names(spec, baked)  # CompiledLoss passes inputs under their Python names
    names = [py[i.name] for i in spec.inputs]
    optional = {py[i.name] for i in spec.inputs if i.optional}
    built: dict[frozenset[str], object] = {}

    def loss_fn(*args, **kwargs):
        if len(args) > len(names):
            raise ArityError(
                f"{spec.name}() takes {len(names)} inputs, got {len(args)}",
                None,
                f"inputs: {', '.join(names)}",
            )
        inputs = dict(zip(names, args))
        for k in [k for k in kwargs if k in names]:
            if k in inputs:
                raise ArityError(f"{spec.name}() got input '{k}' twice", None, "pass it once")
            inputs[k] = kwargs.pop(k)
        missing = [k for k in names if k not in optional and k not in inputs]
        if missing:
            raise ArityError(
                f"{spec.name}() is missing input '{missing[0]}'",
                None,
                f"inputs: {', '.join(names)}",
            )
        absent = frozenset(k for k in optional if inputs.get(k) is None)
        fn = built.get(absent)
        if fn is None:
            src = _source_cached(spec_key, backend, baked, dim, absent)
            fn = built[absent] = _module_fn(spec, backend, src, made)
        known = inspect.signature(fn).parameters  # every param and keyword, these inputs
        extra = [k for k in kwargs if k not in known]
        if extra:
            raise ArityError(
                f"{spec.name}() got an unexpected keyword argument '{extra[0]}'",
                None,
                did_you_mean(extra[0], [*names, *known]) or f"inputs: {', '.join(names)}",
            )
        return fn(*(inputs[k] for k in names if k not in absent), **kwargs)

    loss_fn.__name__ = function_name(spec.name)
    loss_fn.__doc__ = spec.doc
    return loss_fn


def _module_fn(spec: Spec, backend: str, src: str, made: list):
    """Exec a generated module (lossdsl/codegen/loader.py); its loss function (CompiledLoss
    guards it)."""
    mod = load_module(src, "generated", spec.name, backend, made)
    return getattr(mod, function_name(spec.name))


def _compiled(spec: Spec, backend: str, baked, dim=None):
    return _compiled_cached(_key(spec), backend, baked, dim)


def _public_names(spec: Spec, baked) -> dict[str, str]:
    """Declared input and param names -> the generated function's Python names."""
    done = dict(baked)
    params = [p.name for p in spec.params if p.name not in done]
    return public_names([i.name for i in spec.inputs], params)


def _aliases(spec: Spec, baked) -> dict[str, str]:
    """The Python names of renamed inputs and params -> their declared names: every backend
    and schedule accepts both, as the generated functions do."""
    return {py: d for d, py in _public_names(spec, baked).items() if py != d}


def _from_python(kwargs: dict, back: dict[str, str]) -> dict:
    if not back or not any(k in back for k in kwargs):
        return kwargs
    out = {}
    for k, v in kwargs.items():
        d = back.get(k, k)
        if d in out:
            raise ArityError(f"got '{d}' twice (as '{d}' and '{k}')", None, f"pass '{d}' once")
        out[d] = v
    return out


class CompiledLoss:
    """What `Spec.compile` and `Spec.compile_linear` return: the loss function, with its
    signature and docstring. Call it with the spec's inputs (positional or by name), its
    unbaked params as keywords and `reduction=` ("mean", "sum", "none" or a recipe such as
    "mean(C) sum(B)"); it returns the backend's tensor (a numpy array for "numpy").

    A bad call (unknown keyword, missing input) is an ArityError with a hint, a param that is
    no number (None, a str, a list) a ParamError; everything else passes straight through.

    It pickles as what made it, not as code: the text of every spec file it was compiled from
    (the imported ones too), the backend, the baked params and the schedule; unpickling
    compiles it again (a spawn worker, a DataLoader worker, torch.load of a model that holds
    it). The generated module exists only in the process that compiled it."""

    signature: inspect.Signature
    declared: dict[str, str]

    def __init__(
        self,
        fn: Callable[..., Any],
        spec: Spec,
        recipe: tuple[Any, ...],
        declared: dict[str, str] | None = None,
        guard: bool = True,
    ) -> None:
        functools.update_wrapper(self, fn)  # __name__, __doc__, __module__, __wrapped__
        if spec.doc:  # as written: Python 3.13 cleans a def's docstring (tabs become spaces)
            self.__doc__ = spec.doc
        self._fn, self._guarded = fn, guard
        self._label = spec.name
        # for reduction recipes: the per-element loss's dims, and each recipe's steps
        self._spec, self._dims, self._steps = spec, None, {}
        self._recipe = (_spec_files(spec),) + recipe
        baked = dict(recipe[2])
        self._params = {p.name: p.dtype for p in spec.params if p.name not in baked}
        self._choices = {p.name: p.choices[0] for p in spec.params if p.choices}
        self.signature = self.__signature__ = sig = inspect.signature(fn)
        # declared input and param names -> Python names (a param `lambda` is `lambda_`): both
        # are accepted, and messages show the declared ones
        self.declared = dict(declared or {})
        self._renamed = {d: py for d, py in self.declared.items() if d != py}
        self._back = {py: d for d, py in self._renamed.items()}
        self._shown = _declared_signature(fn.__name__, sig, self._back)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The loss of `args` (the inputs, in declared order) with `kwargs` (inputs by name,
        params, `reduction`, `check_indices`, ...): see the class docstring."""
        r = kwargs.get("reduction")
        if isinstance(r, str) and r not in REDUCTIONS:
            return self._by_recipe(r, args, kwargs)
        if kwargs:
            if self._renamed and any(k in self._renamed for k in kwargs):
                kwargs = _to_python(kwargs, self._renamed, self._shown)
            for k, v in kwargs.items():
                k = self._back.get(k, k)
                if k in self._params and (v is None or type(v) in _NOT_PARAM_TYPES):
                    raise ParamError(
                        f"{self._label}: param '{k}' must be {self._params[k]}, got {v!r:.60}",
                        None,
                        f"pass a Python {self._params[k]} or a 0-d tensor",
                    )
        if not self._guarded:
            return self._fn(*args, **kwargs)
        try:
            return self._fn(*args, **kwargs)
        except TypeError:
            sig = self.signature
            try:
                sig.bind(*args, **kwargs)
            except TypeError as bad:
                back = self._back
                names = [back.get(k, k) for k in sig.parameters]
                extra = [back.get(k, k) for k in kwargs if k not in sig.parameters]
                hint = did_you_mean(extra[0], names) if extra else None
                if extra and extra[0] in self._choices:
                    hint = (
                        f"{extra[0]} is a choice param, fixed when the spec compiles: "
                        f"compile(backend, {extra[0]}={self._choices[extra[0]]!r})"
                    )
                msg = str(bad)
                for py, d in back.items():
                    msg = msg.replace(f"'{py}'", f"'{d}'")
                shown = self._shown
                raise ArityError(f"{shown}: {msg}", None, hint or f"signature: {shown}") from None
            raise

    def _by_recipe(self, text: str, args, kwargs):
        """reduction="mean(S) sum(B, C)" (lossdsl/reductions.py): the per-element loss, reduced
        step by step."""
        if self._recipe[1] == "plain" and self._recipe[4] is not None:
            raise ParamError(
                f"{self._label}: reduction {text!r}: a recipe reduces on one device, this loss is"
                f" sharded over {self._recipe[4]}",
                None,
                'pass reduction="none" and reduce the gathered result, or "sum"/"mean"',
            )
        if self._recipe[1] == "chunked":
            raise ParamError(
                f"{self._label}: reduction {text!r}: a recipe reduces the per-element loss, which"
                " the chunked schedule never holds (it reduces over the batch as it goes)",
                None,
                'use the plain schedule for a recipe, or "sum"/"mean"',
            )
        dims = self._dims
        if dims is None:
            none = dict(self._spec._lowered(frozenset()).outputs)["none"]
            dims = self._dims = tuple(str(d) for d in none.type.dims)
        steps = self._steps.get(text)
        if steps is None:
            steps = self._steps[text] = parse_recipe(self._label, text, dims)
        x = self(*args, **{**kwargs, "reduction": "none"})
        return apply_recipe(self._recipe[2], x, dims, steps)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, self._recipe)

    def __repr__(self) -> str:
        return f"<lossdsl loss {self._label} ({self._recipe[2]}, {self._recipe[1]})>"


# A param takes a Python number or bool, or a 0-d tensor / traced value of the framework.
_NOT_PARAM_TYPES = (str, bytes, list, tuple, dict, set)


def _spec_files(spec: Spec) -> tuple[tuple[str, str], ...]:
    """(filename, text) of the spec's file and of every file it imports, transitively."""
    files = {spec.filename: spec.text}
    seen: set[int] = set()
    stack = [spec.resolved.scope]
    while stack:
        scope = stack.pop()
        if id(scope) in seen:
            continue
        seen.add(id(scope))
        for callee in scope.table.values():
            src = callee.loss.span.source if callee.loss.span is not None else None
            if src is not None:
                files.setdefault(src.filename, src.text)
            stack.append(callee.scope)
    return tuple(files.items())


def _rebuild(files, schedule, backend, baked, *options):
    """Compile a pickled loss again (CompiledLoss.__reduce__): from its files where they are
    still on disk with the same text, else from a temporary copy of them (imports are found
    beside the importing file)."""
    spec = _spec_from_files(files)
    if schedule == "plain":
        (dim,) = options
        return spec.compile(backend, shard=dim, **dict(baked))
    chunk, linear, rows = options
    if linear:
        return spec.compile_linear(backend, chunk=chunk, rows=rows, **dict(baked))
    return spec.compile(backend, schedule="chunked", chunk=chunk, **dict(baked))


def _spec_from_files(files) -> Spec:
    import tempfile

    from lossdsl.compiler import parse

    def unchanged(name: str, body: str) -> bool:
        try:
            return name != "<string>" and Path(name).read_text() == body
        except OSError:
            return False

    (main, text), rest = files[0], files[1:]
    if all(unchanged(n, b) for n, b in (rest if main == "<string>" else files)):
        return parse(text, main)
    with tempfile.TemporaryDirectory(prefix="lossdsl-") as tmp:
        for name, body in rest:
            (Path(tmp) / Path(name).name).write_text(body)
        path = Path(tmp) / (Path(main).name if main != "<string>" else "_main.loss")
        path.write_text(text)
        # parsing lowers the whole spec: nothing reads the files afterwards
        return parse(text, str(path))


def _to_python(kwargs: dict, renamed: dict[str, str], shown: str) -> dict:
    out = {}
    for k, v in kwargs.items():
        py = renamed.get(k, k)
        if py in out:
            raise ArityError(
                f"{shown}: got '{k}' twice (as '{k}' and '{py}')", None, f"pass '{k}' once"
            )
        out[py] = v
    return out


def _declared_signature(name: str, sig: inspect.Signature, back: dict[str, str]) -> str:
    """`f(x, *, lambda=1.0, reduction='mean')`: the signature with the declared names (which
    inspect.Signature cannot hold when they are Python keywords)."""
    parts, star = [], False
    for p in sig.parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        text = str(p)
        parts.append(back.get(p.name, p.name) + text[len(p.name) :])
    return f"{name}({', '.join(parts)})"


def _reference_fn(spec: Spec, baked):
    """The float64 numpy interpreter as a callable with the same signature as the others."""
    ref = reference()
    names = [i.name for i in spec.inputs] + [f.name for f in spec.fns]
    fn_names = {f.name for f in spec.fns}
    optional = {i.name for i in spec.inputs if i.optional}
    bake_d = dict(baked)
    free = {p.name: p.default for p in spec.params if p.name not in bake_d}
    has_index = any(i.type.startswith("index") for i in spec.inputs)
    back = _aliases(spec, baked)
    types_ = {i.name: i.type for i in spec.inputs}

    def loss_fn(*args, reduction=None, **kwargs):
        kwargs = _from_python(kwargs, back)
        check = kwargs.pop("check_indices", True) if has_index else False
        inputs = dict(zip(names, args))
        for k in list(kwargs):
            if k in names:
                inputs[k] = kwargs.pop(k)
        for k, v in inputs.items():
            if k in fn_names:
                if not callable(v):
                    raise InputError(
                        f"{spec.name}: input '{k}' must be a function, got {v!r:.60}",
                        None,
                        "pass a callable of numpy arrays",
                    )
                continue
            if (v is None and k not in optional) or type(v) in NOT_ARRAY_TYPES:
                raise InputError(
                    f"{spec.name}: input '{k}' must be a numpy array ({types_[k]}), got {v!r:.60}",
                    None,
                    "convert it with np.asarray",
                )
        bad = [k for k in kwargs if k not in free]
        if bad or len(args) > len(names):
            chosen = {p.name for p in spec.params if p.choices}
            raise ArityError(
                f"{spec.name}() got unexpected argument {bad[0] if bad else len(args)}",
                None,
                f"{bad[0]} is a choice param, fixed when the spec compiles: "
                f"compile(backend, {bad[0]}=...)"
                if bad and bad[0] in chosen
                else did_you_mean(bad[0], list(free) + names)
                if bad
                else None,
            )
        reduction = reduction or spec.default_reduction
        if reduction not in REDUCTIONS:
            raise ParamError(f"{spec.name}: reduction must be one of {REDUCTIONS}")
        absent = frozenset(k for k in optional if inputs.get(k) is None)
        missing = [n for n in names if n not in inputs and n not in optional]
        if missing:
            raise ArityError(f"{spec.name}() is missing input '{missing[0]}'")
        prog = _optimized(spec, absent, baked)
        params = {**free, **kwargs}
        _runtime_checks(spec, prog, params)
        return ref.evaluate(prog, inputs, params, reduction, check_indices=check)

    loss_fn.__name__ = loss_fn.__qualname__ = function_name(spec.name)
    loss_fn.__doc__ = spec.doc
    return loss_fn


def _runtime_checks(spec: Spec, prog: Program, params: dict) -> None:
    """Check this call's params as the generated code does: each one a scalar (a number, a
    numpy scalar, a 0-d array or tensor), of its kind, within its constraints."""
    values = {}
    for q in prog.params:
        name = q.var.name
        if q.default is None and params.get(name) is None:
            raise ParamError(
                f"{spec.name}: param '{name}' is required (it has no default)",
                None,
                f"pass {name}=... or bake it with compile(..., {name}=...)",
            )
        if name not in params:
            continue
        v = constraints.scalar_value(spec.name, name, params[name])
        if isinstance(v, (bool, int, float)) and q.var.type.dtype in ("int", "float"):
            check_param_value(name, q.var.type.dtype, v)
        if v is not None:
            values[name] = v
    for c in prog.checks:
        if constraints.evaluate(c, values) is False:
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise ParamError(
                f"{spec.name}: params must satisfy `{c.text}`, got {shown}",
                c.span,
                "change the value",
            )
