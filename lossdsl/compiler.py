"""The pipeline, readable top to bottom:

    text --parse--> AST --check/resolve--> losses in scope --lower--> IR --verify--> passes
         --bake params--> IR --backend--> Python source --exec--> callable

`Spec` is what `lossdsl.load` and `lossdsl.parse` return: a checked spec that can print its IR,
generate source for a backend, and compile (cached) to a callable.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import weakref
from dataclasses import dataclass, replace
from pathlib import Path

from lossdsl import ast, constraints
from lossdsl.codegen import (
    NOT_ARRAY_TYPES,
    REFERENCE,
    forget_modules,
    forget_with,
    function_name,
    load_backend,
    load_module,
    module_source,
    public_names,
    reference,
    registered,
)
from lossdsl.errors import (
    ArityError,
    DuplicateDefinition,
    InputError,
    LimitError,
    LossError,
    ParamError,
    UnknownName,
    did_you_mean,
    raise_all,
)
from lossdsl.ir import Lit, Program, Var, format_program, verify
from lossdsl.lower import REDUCTIONS, Budget, _coerce, check_param_value, const_eval, lower_loss
from lossdsl.parser import parse_module, read_source
from lossdsl.passes import PASS_NAMES, run_pipeline
from lossdsl.passes.cleanup import dce
from lossdsl.passes.library import library
from lossdsl.passes.simplify import fold, simplify
from lossdsl.resolve import Resolved, resolve, shipped_spec_names, shipped_specs_dir
from lossdsl.shard import shard
from lossdsl.source import deep_recursion


@dataclass(frozen=True)
class ParamInfo:
    name: str
    dtype: str
    default: float | int | bool
    constraint: str | None


@dataclass(frozen=True)
class InputInfo:
    name: str
    type: str
    optional: bool
    domain: tuple[float, float] | None = None
    open_bounds: tuple[bool, bool] = (False, False)  # strict bounds: `x > 0` excludes 0


class Spec:
    """A parsed and checked loss. Construction raises LossError listing every error."""

    def __init__(self, text: str, filename: str = "<string>"):
        with deep_recursion():
            self._init(text, filename)

    def _init(self, text: str, filename: str) -> None:
        self.text, self.filename = text, filename
        module = parse_module(text, filename)
        errors: list[LossError] = []
        base = Path(filename).parent if filename != "<string>" else None
        self.resolved: Resolved = resolve(module, base, errors)
        loss = self.resolved.main
        if loss is None:
            raise LossError("no loss defined", None, "write `loss NAME(inputs) { ... }`")
        self.loss: ast.LossDef = loss
        # Lower every spec in the file (helpers too), so that all errors show up at once;
        # within one bound on the work (lossdsl/lower/context.py MAX_STEPS).
        budget = Budget()
        for other in module.losses:
            if other is not loss:
                lower_loss(self.resolved, other, errors, helper=True, budget=budget)
        full = lower_loss(self.resolved, loss, errors, budget=budget)
        raise_all(errors)
        assert full is not None
        self.name = loss.name
        self.doc = (loss.doc or module.doc or loss.name).strip()
        decl = {d.var.name: d for d in full.inputs}
        self.inputs = tuple(
            InputInfo(
                i.name,
                str(i.type),
                i.default is not None,
                decl[i.name].domain if i.name in decl else None,
                decl[i.name].open_bounds if i.name in decl else (False, False),
            )
            for i in loss.inputs
        )
        self.params = tuple(_param_info(p) for p in loss.body if isinstance(p, ast.Param))
        self.default_reduction = full.default_reduction
        self._raw: dict[frozenset[str], Program] = {frozenset(): full}

    # ---- IR --------------------------------------------------------------------------

    def _lowered(self, absent: frozenset[str]) -> Program:
        if absent not in self._raw:
            errors: list[LossError] = []
            with deep_recursion():
                prog = lower_loss(self.resolved, self.loss, errors, absent)
            raise_all(errors)
            self._raw[absent] = verify(prog)
        return self._raw[absent]

    def variants(self) -> list[frozenset[str]]:
        """Every combination of absent optional inputs: one specialized function each."""
        opt = [i.name for i in self.inputs if i.optional]
        return [frozenset(c) for k in range(len(opt) + 1) for c in itertools.combinations(opt, k)]

    def program(self, absent: frozenset[str] = frozenset(), **baked) -> Program:
        """The optimized IR for one variant, with `baked` params folded in."""
        return _optimized(self, absent, _baked_key(self, baked))

    def ir(self, after: str | None = None, **baked) -> str:
        """The IR as lowered (after=None) or after the named pass (`library`: what torch's
        source is emitted from)."""
        prog = bake(self._lowered(frozenset()), dict(_baked_key(self, baked)))
        if after is None or after == "lower":
            return format_program(prog)
        names = PASS_NAMES + ("library",)
        if after not in names:
            raise UnknownName(
                f"unknown pass '{after}'",
                None,
                did_you_mean(after, names) or f"passes: lower, {', '.join(names)}",
            )
        seen: dict[str, Program] = {}
        run_pipeline(prog, lambda name, p: seen.setdefault(name, verify(p)))
        seen["library"] = verify(library(seen["dce"]))
        return format_program(seen[after])

    # ---- code ------------------------------------------------------------------------

    def source(self, backend: str, shard: str | None = None, **baked) -> str:
        """The standalone Python module for `backend` (imports only its framework)."""
        backend = _check_backend(backend)
        return _source(self, backend, _baked_key(self, baked), self._shard(backend, shard))

    def compile(
        self,
        backend: str,
        schedule: str = "plain",
        chunk: int = 8192,
        shard: str | None = None,
        **baked,
    ):
        """A callable: fn(*inputs, **unbaked_params, reduction=...). Cached; it pickles (as
        its spec files, backend, baked params and schedule) and compiles again on load.

        schedule="chunked" (torch, jax): the first input (the logits [..., V]) is consumed
        `chunk` classes at a time through row statistics, never materializing the
        log-softmax and its intermediates over V (lossdsl/schedules/vsliced.py). A LossError
        here when the spec does not chunk (lossdsl/schedules/plan.py's contract;
        `chunk_refusal`).

        shard="B": the batch dim B is split across devices (lossdsl/shard.py). Each rank
        passes its rows; the loss and the gradients are those of the whole batch. torch: call
        it on every rank of a torch.distributed process group (keywords group=None and
        grads="mean", for DDP/FSDP, which average the ranks' gradients, or "sum"). jax: call
        it inside shard_map over the mesh axis `axis_name` (keyword, "batch")."""
        if schedule == "chunked":
            if shard is not None:
                raise ParamError("a chunked schedule is not sharded", None, "drop shard=")
            return _chunked(self, backend, chunk, _baked_key(self, baked), linear=False)
        if schedule != "plain":
            raise UnknownName(f"unknown schedule '{schedule}'", None, "plain or chunked")
        backend = _check_backend(backend)
        return _compiled(self, backend, _baked_key(self, baked), self._shard(backend, shard))

    def _shard(self, backend: str, dim: str | None) -> str | None:
        """Validate shard=: a dim of an input, a backend with a distributed mode, and a
        program that splits (the transform raises ShardError at the spec's text if not)."""
        if dim is None:
            return None
        if load_backend(backend).TARGET.shard is None:
            raise ParamError(
                f"the {backend} backend has no distributed mode",
                None,
                "shard= is for torch and jax (tests simulate ranks with "
                "backends/numpy_ref.evaluate_sharded)",
            )
        if not isinstance(dim, str):
            raise ParamError(f"shard= takes a dim name, got {dim!r}", None, "e.g. shard='B'")
        self.sharded_program(dim)  # the errors, now
        return dim

    def sharded_program(self, dim: str, absent: frozenset[str] = frozenset(), **baked):
        """The program one rank runs with `dim` split across ranks (lossdsl/shard.py)."""
        return _sharded_cached(_key(self), absent, _baked_key(self, baked), dim)

    def compile_linear(
        self, backend: str = "torch", chunk: int = 8192, rows: int | None = None, **baked
    ):
        """The loss fused with the final linear layer: fn(h, W, *other inputs, **params,
        reduction=...) computes the spec on logits = h @ W.T (h [N, D], W [V, D]) without
        holding the [N, V] logits at once. By default V-chunk by V-chunk through the spec's
        chunk plan (Cut Cross-Entropy's schedule: backward recomputes each slice); with
        rows=R in blocks of R batch rows over the whole V, each block's gradient taken at once
        (Liger-Kernel's schedule: no recomputation). Row blocks need a loss that reads its
        logits row by row and adds them up in one sum or mean (lossdsl/schedules/rowplan.py);
        anything else is a LossError here that names the construct (`chunk_refusal(rows=True)`)."""
        return _chunked(self, backend, chunk, _baked_key(self, baked), linear=True, rows=rows)

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.name}: {i.type}" for i in self.inputs)
        return f"<lossdsl.Spec {self.name}({ins})>"


def _param_info(p: ast.Param) -> ParamInfo:
    text = None
    if p.constraint is not None and p.constraint.span is not None:
        s = p.constraint.span
        line = s.source.line(s.line)
        text = line[s.col - 1 : s.end_col - 1] if s.end_line == s.line else line[s.col - 1 :]
    # the default as the param's type (an int literal for a float param is a float)
    return ParamInfo(p.name, p.dtype, _coerce(p.dtype, const_eval(p.default)), text)


def _check_backend(backend: str) -> str:
    known = registered()  # lossdsl/codegen/targets.py
    if backend not in known:
        raise UnknownName(
            f"unknown backend '{backend}'",
            None,
            did_you_mean(backend, known) or f"backends: {', '.join(known)}",
        )
    return backend


def _baked_key(spec: Spec, baked: dict) -> tuple:
    """Validate compile-time params; a sorted tuple so it can key the caches."""
    known = {p.name: p for p in spec.params}
    for k, v in baked.items():
        if k == "reduction":
            raise ParamError(
                "reduction is chosen per call, not at compile time",
                None,
                f"call fn(..., reduction={v!r})",
            )
        if k not in known:
            raise ParamError(
                f"{spec.name} has no param '{k}'",
                None,
                did_you_mean(k, known) or f"params: {', '.join(known) or 'none'}",
            )
        check_param_value(k, known[k].dtype, v)
    return tuple(sorted(baked.items()))


def bake(prog: Program, values: dict) -> Program:
    """Replace params by literals. Constraints that become constant are checked now."""
    if not values:
        return prog
    sub = {
        q.var.name: Lit(v if q.var.type.dtype != "float" else float(v), q.var.type)
        for q in prog.params
        for k, v in values.items()
        if q.var.name == k
    }

    def s(a):
        return sub.get(a.name, a) if hasattr(a, "name") else a

    eqns = tuple(replace(e, args=tuple(s(a) for a in e.args)) for e in prog.eqns)
    checks = []
    for c in prog.checks:
        c2 = replace(c, eqns=tuple(replace(e, args=tuple(s(a) for a in e.args)) for e in c.eqns))
        ok = constraints.evaluate(c2, {})
        if ok is None:
            checks.append(c2)
        elif not ok:
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise ParamError(
                f"param value violates `{c.text}`: {shown}", c.span, "change the value"
            )
    params = tuple(q for q in prog.params if q.var.name not in sub)
    outputs = tuple((m, s(a)) for m, a in prog.outputs)
    return replace(prog, eqns=eqns, params=params, checks=tuple(checks), outputs=outputs)


@functools.lru_cache(maxsize=512)
def _optimized_cached(spec_key, absent, baked) -> Program:
    spec = _SPECS[spec_key]
    # dead lets go first: every pass is linear in the equations (8000 unused lets: 0.6 s)
    return verify(run_pipeline(dce(bake(spec._lowered(absent), dict(baked)))))


# The specs behind the cache keys, while someone holds them (the caches key on the texts).
_SPECS: weakref.WeakValueDictionary[tuple, Spec] = weakref.WeakValueDictionary()


def _key(spec: Spec) -> tuple:
    # The texts of the imported files too: an edited import must not hit the old entry.
    k = (spec.text, spec.filename, spec.resolved.files)
    # the caller's spec, which it holds through this call (setdefault kept an earlier equal
    # spec, which the garbage collector could take before the cached function looked it up)
    _SPECS[k] = spec
    return k


def _optimized(spec: Spec, absent, baked) -> Program:
    return _optimized_cached(_key(spec), absent, baked)


MAX_ZERO_SPECIALIZED = 2


def _work(prog: Program) -> int:
    """Equations that touch tensors bigger than the per-element loss (a [B, C] log-softmax
    for a [B] loss): what a zero-specialization must save to be worth a variant."""
    rank = len(prog.output("none").type.dims)
    big = lambda a: isinstance(a, Var) and len(a.type.dims) > rank  # noqa: E731
    return sum(1 for e in prog.eqns if big(e.out) or any(big(a) for a in e.args))


def _estimate(spec: Spec, baked: tuple) -> Program:
    return dce(simplify(fold(dce(bake(spec._lowered(frozenset()), dict(baked))))))


def zero_params(spec: Spec, baked: tuple) -> tuple[str, ...]:
    """Float params worth a specialized variant at value 0: those whose term disappears
    (label_smoothing=0 computes no smoothing term, gamma=0 makes focal plain CE). Traced or
    nonzero values take the general variant, so this is invisible except in speed."""
    # The estimate runs the cheap passes only (fold, simplify, dce): a term that a zero param
    # deletes is gone after them, and the full pipeline runs only for the chosen variants.
    full = _estimate(spec, baked)
    done = dict(baked)
    gains = []
    for p in spec.params:
        if p.dtype != "float" or p.name in done:
            continue
        try:
            with_zero = _estimate(spec, tuple(sorted({**done, p.name: 0.0}.items())))
        except LossError:
            continue  # 0 violates the param's constraint
        saved = _work(full) - _work(with_zero)
        if saved > 0:
            gains.append((-saved, p.name))
    return tuple(sorted(name for _, name in sorted(gains)[:MAX_ZERO_SPECIALIZED]))


# A module enumerates every combination of absent optional inputs (2^k functions) for up to
# this many optional inputs; compile() of a spec with more builds one module per combination
# actually called, on its first call (12 optional inputs made 4096 functions, 16 MB of source).
MAX_SPECIALIZED_OPTIONAL = 3
# Spec.source() (a standalone module) still enumerates them all: up to this many.
MAX_SOURCE_OPTIONAL = 8


def variant_programs(spec: Spec, baked: tuple, only=None) -> list[Program]:
    """One optimized program per (absent optional inputs, zero-valued params) combination,
    the most specialized first within each set of absent inputs (`only`: one set)."""
    zeros = zero_params(spec, baked)
    out = []
    for absent in spec.variants() if only is None else [only]:
        for k in range(len(zeros), -1, -1):
            for z in itertools.combinations(zeros, k):
                with_z = tuple(sorted({**dict(baked), **{n: 0.0 for n in z}}.items()))
                out.append(replace(_optimized(spec, absent, with_z), zeros=z))
    return out


@functools.lru_cache(maxsize=512)
def _sharded_cached(spec_key, absent, baked, dim) -> Program:
    return shard(_optimized_cached(spec_key, absent, baked), dim, _input_spans(_SPECS[spec_key]))


def _input_spans(spec: Spec) -> dict:
    """Where each input is declared: the shard transform's errors about inputs point there."""
    return {i.name: i.span for i in spec.loss.inputs}


@functools.lru_cache(maxsize=512)
def _source_cached(spec_key, backend, baked, dim=None, only=None) -> str:
    spec = _SPECS[spec_key]
    n_opt = sum(i.optional for i in spec.inputs)
    if only is None and n_opt > MAX_SOURCE_OPTIONAL:
        raise LimitError(
            f"a standalone module of {spec.name} would hold 2^{n_opt} functions, one per "
            f"combination of its {n_opt} optional inputs (limit {MAX_SOURCE_OPTIONAL} inputs)",
            spec.loss.name_span,
            "compile() builds only the combinations that are called",
        )
    progs = variant_programs(spec, baked, only)
    target = load_backend(backend).TARGET
    if dim is not None:
        progs = [shard(p, dim, _input_spans(spec)) for p in progs]
    if target.library_calls:  # after shard: it splits the primitives' sums
        progs = [verify(library(p)) for p in progs]
    return module_source(target, progs, spec.doc)


def _source(spec: Spec, backend: str, baked, dim=None) -> str:
    return _source_cached(_key(spec), backend, baked, dim)


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
    """What `Spec.compile` returns: the loss function, with its signature and docstring.

    A bad call (unknown keyword, missing input) is an ArityError with a hint, a param that is
    no number (None, a str, a list) a ParamError; everything else passes straight through.

    It pickles as what made it, not as code: the text of every spec file it was compiled from
    (the imported ones too), the backend, the baked params and the schedule; unpickling
    compiles it again (a spawn worker, a DataLoader worker, torch.load of a model that holds
    it). The generated module exists only in the process that compiled it."""

    def __init__(self, fn, spec: Spec, recipe: tuple, declared=None, guard: bool = True):
        functools.update_wrapper(self, fn)  # __name__, __doc__, __module__, __wrapped__
        self._fn, self._guarded = fn, guard
        self._label = spec.name
        self._recipe = (_spec_files(spec),) + recipe
        baked = dict(recipe[2])
        self._params = {p.name: p.dtype for p in spec.params if p.name not in baked}
        self.signature = self.__signature__ = sig = inspect.signature(fn)
        # declared input and param names -> Python names (a param `lambda` is `lambda_`): both
        # are accepted, and messages show the declared ones
        self.declared = dict(declared or {})
        self._renamed = {d: py for d, py in self.declared.items() if d != py}
        self._back = {py: d for d, py in self._renamed.items()}
        self._shown = _declared_signature(fn.__name__, sig, self._back)

    def __call__(self, *args, **kwargs):
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
                msg = str(bad)
                for py, d in back.items():
                    msg = msg.replace(f"'{py}'", f"'{d}'")
                shown = self._shown
                raise ArityError(f"{shown}: {msg}", None, hint or f"signature: {shown}") from None
            raise

    def __reduce__(self):
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
    names = [i.name for i in spec.inputs]
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
            if (v is None and k not in optional) or type(v) in NOT_ARRAY_TYPES:
                raise InputError(
                    f"{spec.name}: input '{k}' must be a numpy array ({types_[k]}), got {v!r:.60}",
                    None,
                    "convert it with np.asarray",
                )
        bad = [k for k in kwargs if k not in free]
        if bad or len(args) > len(names):
            raise ArityError(
                f"{spec.name}() got unexpected argument {bad[0] if bad else len(args)}",
                None,
                did_you_mean(bad[0], list(free) + names) if bad else None,
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


def _chunked(spec: Spec, backend: str, chunk: int, baked: tuple, linear: bool, rows=None):
    """The chunked schedule of a spec (lossdsl/schedules/). Cached like `_compiled`, by
    (spec, backend, chunk, rows, baked params); refused here, at compile time, when some
    variant has no chunk plan (lossdsl/schedules/plan.py: ChunkError names the construct)."""
    if _check_backend(backend) == "numpy":
        raise UnknownName(
            "the numpy reference has no chunked schedule",
            None,
            "torch or jax (lossdsl.schedules.plan.evaluate_chunked runs a chunk plan on numpy)",
        )
    for what, n in (("chunk", chunk), ("rows", 1 if rows is None else rows)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ParamError(f"{what} must be a positive int, got {n!r}", None, f"e.g. {what}=8192")
    return _chunked_cached(_key(spec), backend, chunk, baked, linear, rows)


def chunk_refusal(spec: Spec, rows: bool = False) -> LossError | None:
    """Why `spec` has no chunked schedule (the first variant's ChunkError), or None: every
    combination of absent optional inputs chunks its first input's last dim, for the sum and
    the mean. rows=True: the row-blocked schedule (compile_linear(rows=R)) along its first."""
    from lossdsl.schedules.plan import ChunkError, plan
    from lossdsl.schedules.rowplan import row_plan

    logits = spec.inputs[0].name
    for absent in spec.variants():
        for reduction in ("sum", "mean"):
            try:
                (row_plan if rows else plan)(_optimized(spec, absent, ()), logits, reduction)
            except ChunkError as e:
                return e
    return None


CHUNKED_CACHE = 64  # chunked compiles kept (each holds a few generated modules per variant)


@functools.lru_cache(maxsize=CHUNKED_CACHE)
def _chunked_cached(spec_key, backend, chunk, baked, linear, rows):
    from lossdsl.schedules.plan import ChunkError
    from lossdsl.schedules.rows import RowBlocked
    from lossdsl.schedules.subfunctions import Modules
    from lossdsl.schedules.vsliced import ChunkedLoss

    spec = _SPECS[spec_key]
    logits = spec.inputs[0].name
    rest = [i.name for i in spec.inputs[1:]]
    for inp in spec.loss.inputs[1:] if linear else ():
        if inp.name in ("h", "W"):  # the fused function takes h and W in place of the logits
            raise DuplicateDefinition(
                f"input '{inp.name}' is named like compile_linear's own '{inp.name}' "
                "(the hidden states h and the weight W replace the logits)",
                inp.name_span or inp.span,
                f"rename the input '{inp.name}'",
            )
    optional = {i.name for i in spec.inputs if i.optional}
    bake_d = dict(baked)
    free = {p.name: p.default for p in spec.params if p.name not in bake_d}
    mods = Modules(backend)
    plans: dict = {}
    back = _aliases(spec, baked)
    # row blocks run each block's loss as the plain schedule would: with the variants for
    # params at 0 (label_smoothing=0: no [rows, V] smoothing term), picked per call as the
    # generated dispatcher picks them (a Python number equal to 0)
    zeros = zero_params(spec, baked) if rows is not None else ()
    combos = [z for k in range(1, len(zeros) + 1) for z in itertools.combinations(zeros, k)]
    # every variant and reduction planned (and its code generated) now: a loss that does not
    # chunk is refused at compile time, with the construct that prevents it
    for absent in spec.variants():
        prog = _optimized(spec, absent, baked)
        for reduction in ("sum", "mean"):
            try:
                if rows is not None:
                    plans[absent, reduction] = RowBlocked(None, prog, logits, reduction, rows, mods)
                else:
                    plans[absent, reduction] = ChunkedLoss(prog, logits, reduction, chunk, mods)
            except ChunkError as e:
                forget_modules(tuple(mods.names))
                if absent:
                    e.message += f" (when {', '.join(sorted(absent))} is not passed)"
                raise e from None
            for z in combos:
                with_z = tuple(sorted({**bake_d, **{n: 0.0 for n in z}}.items()))
                zprog = _optimized(spec, absent, with_z)
                try:
                    plans[absent, reduction, z] = RowBlocked(
                        None, zprog, logits, reduction, rows, mods
                    )
                except ChunkError:
                    pass  # the general variant serves

    def loss_fn(*args, reduction=None, **kwargs):
        kwargs = _from_python(kwargs, back)
        names = (["h", "W"] if linear else [logits]) + rest
        given = dict(zip(names, args))
        given.update({k: kwargs.pop(k) for k in list(kwargs) if k in names})
        bad = [k for k in kwargs if k not in free]
        if bad or len(args) > len(names):
            raise ArityError(
                f"{loss_fn.__name__}() got unexpected argument {bad[0] if bad else len(args)}",
                None,
                did_you_mean(bad[0], list(free) + names) if bad else f"inputs: {', '.join(names)}",
            )
        missing = [n for n in names if n not in given and n not in optional]
        if missing:
            raise ArityError(f"{loss_fn.__name__}() is missing input '{missing[0]}'")
        reduction = reduction or spec.default_reduction
        if reduction not in ("sum", "mean"):
            raise ParamError(
                f"{spec.name}: the chunked schedule reduces over the batch (sum or mean), "
                f"got reduction={reduction!r}",
                None,
                "use the plain schedule for reduction='none'",
            )
        absent = frozenset(k for k in optional if given.get(k) is None)
        params = {**free, **kwargs}
        _runtime_checks(spec, _optimized(spec, absent, baked), params)
        inputs = {k: v for k, v in given.items() if k in rest and v is not None}
        run = plans[absent, reduction]
        if linear and 0 in tuple(given["h"].shape[:-1]):
            # an empty batch: the plain schedule's declared values (README, "Edge cases") on
            # the empty logits h @ W.T, which hold no memory; gradients reach h and W as zeros
            plain = _compiled(spec, backend, baked)
            x = given["h"] @ given["W"].T
            return plain(x, **inputs, **kwargs, reduction=reduction)
        if rows is not None:
            z = tuple(n for n in zeros if type(params[n]) in (int, float) and params[n] == 0)
            run = plans.get((absent, reduction, z), run)
            return run(inputs, params, given["h"], given["W"])
        if linear:
            return run(inputs, params, linear=(given["h"], given["W"]))
        return run({**inputs, logits: given[logits]}, params)

    loss_fn.__name__ = f"{spec.name}_chunked" + ("_linear" if linear else "")
    # its generated modules (and their linecache sources) go once nobody holds loss_fn
    forget_with(loss_fn, tuple(mods.names))
    loss_fn.__doc__ = spec.doc
    recipe = ("chunked", backend, baked, chunk, linear, rows)
    return CompiledLoss(loss_fn, spec, recipe, guard=False)


def _runtime_checks(spec: Spec, prog: Program, params: dict) -> None:
    """Check this call's params as the generated code does: each one a scalar (a number, a
    numpy scalar, a 0-d array or tensor), of its kind, within its constraints."""
    values = {}
    for q in prog.params:
        name = q.var.name
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


# ---- public constructors -----------------------------------------------------------------


def parse(text: str, filename: str = "<string>") -> Spec:
    return Spec(text, filename)


def load(name_or_path: str | Path) -> Spec:
    """A shipped spec by name ("focal"), or a .loss file by path."""
    s = str(name_or_path)
    if s.endswith(".loss") or "/" in s or "\\" in s:
        path = Path(s)
        if not path.is_file():
            raise LossError(f"no such spec file: {s}", None, "check the path")
        return parse(read_source(path), str(path))
    path = shipped_specs_dir() / f"{s}.loss"
    if not s.isidentifier() or not path.is_file():
        raise UnknownName(
            f"no shipped spec named '{s}'",
            None,
            did_you_mean(s, shipped_spec_names()) or "see `lossdsl list`",
        )
    return parse(read_source(path), str(path))


def list_specs() -> list[str]:
    return shipped_spec_names()
