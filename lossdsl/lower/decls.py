"""Declarations: an input's type and `where` domain, an optional input left out (its
default filled in), params with their defaults and constraints (lowered to Checks), and the
check of a baked param value."""

from __future__ import annotations

import math
from dataclasses import replace

from lossdsl import ast, constraints
from lossdsl.errors import DimMismatch, DuplicateDefinition, ParamError, TypeMismatch
from lossdsl.ir import Atom, Check, FnDecl, InputDecl, ParamDecl, Var
from lossdsl.lower.context import Builder, Ctx, _coerce, _sp, const_eval, lit
from lossdsl.lower.expr import lower_expr
from lossdsl.ops import FoldError, check_representable
from lossdsl.types import Dim, TensorType

# ---- inputs and params -----------------------------------------------------------------


def input_type(ctx: Ctx, inp: ast.Input) -> TensorType | None:
    t = inp.type
    if t.of is not None and t.dtype != "index":
        return ctx.error(
            TypeMismatch,
            f"only index tensors take `of`, found {t.dtype}",
            t.span,
            f"write `index[...] of {t.of}`",
        )
    if t.dtype == "index" and t.of is None:
        return ctx.error(
            TypeMismatch,
            "an index tensor names the dim it indexes",
            t.span,
            "write e.g. `index[B] of C`",
        )
    dims = []
    seen = set()
    for d in t.dims or ():
        prev = ctx.dims.get(d.name)
        base = prev if prev is not None else Dim(d.name, 0, d.variadic)
        dim = replace(base, primes=base.primes + d.primes)
        if prev is not None and prev.variadic != d.variadic:
            return ctx.error(
                DimMismatch,
                f"dim {d.name} is {'variadic' if prev.variadic else 'not variadic'} elsewhere",
                d.span,
                f"write it as {'*' if prev.variadic else ''}{d.name} everywhere",
            )
        if dim in seen:
            return ctx.error(
                DimMismatch,
                f"dim {dim} appears twice in {t}",
                d.span,
                f"two axes of the same size are {dim} and {dim}' (its primed twin)",
            )
        seen.add(dim)
        ctx.dims.setdefault(d.name, Dim(d.name, 0, d.variadic))
        dims.append(dim)
    if sum(d.variadic for d in dims) > 1:
        return ctx.error(
            DimMismatch,
            "an input can have at most one variadic dim",
            t.span,
            "one *S stands for any number of axes; name the others",
        )
    of = None
    if t.of is not None:
        if t.of.variadic:
            return ctx.error(
                DimMismatch,
                "an index cannot point into a variadic dim",
                t.of.span,
                f"index a named dim, e.g. `index[B] of C`, not of *{t.of.name}",
            )
        base = ctx.dims.setdefault(t.of.name, Dim(t.of.name))
        of = Dim(base.name, base.primes + t.of.primes)
    dtype = "int" if t.dtype == "index" else t.dtype
    return TensorType(dtype, tuple(dims), of)


def declare_inputs(ctx: Ctx, loss: ast.LossDef, absent: frozenset[str]) -> list[InputDecl]:
    """Bind the loss's inputs in `ctx` (the `absent` ones to their defaults, filled once every
    dim is known) and return the declarations of those passed."""
    decls: list[InputDecl] = []
    seen: set[str] = set()
    for inp in loss.inputs:
        if inp.name in seen:
            ctx.error(
                DuplicateDefinition,
                f"input '{inp.name}' is declared twice",
                inp.name_span or inp.span,
                "rename one of them",
            )
            continue
        seen.add(inp.name)
        t = input_type(ctx, inp)
        default = None
        if inp.default is not None:
            dv = const_eval(inp.default)
            if dv is None:
                ctx.error(
                    TypeMismatch,
                    "an optional input's default must be a constant",
                    _sp(inp.default),
                    f"e.g. `{inp.name}: {inp.type} = 1`",
                )
                ctx.silent.add(inp.name)
                continue
            default = lit(_coerce("int" if t and t.dtype == "int" else "float", dv)) if t else None
        if t is None:
            ctx.silent.add(inp.name)
            continue
        if inp.name in absent:
            ctx.env[inp.name] = None  # filled below, after every dim is known
            continue
        var = Var(ctx.b.fresh(inp.name), t)
        ctx.env[inp.name] = var
        ctx.origin[inp.name] = "input"
        decls.append(InputDecl(var, default, *input_domain(ctx, inp)))
    for inp in loss.inputs:
        if inp.name in absent:
            ctx.env[inp.name] = _absent_input(ctx, inp)
            ctx.origin[inp.name] = "input"
    for d in ctx.dims:
        if d in ctx.env:
            inp = next(i for i in loss.inputs if i.name == d)
            ctx.error(
                DuplicateDefinition,
                f"'{d}' is both a dim and an input",
                inp.name_span or inp.span,
                f"rename the input or the dim {d}",
            )
    return decls


def declare_fns(ctx: Ctx, loss: ast.LossDef, helper: bool) -> list[FnDecl]:
    """Bind the loss's function inputs in `ctx.fns`: their argument and result types, over the
    dims of the tensor inputs (a dim only a function's signature names has no size: the
    function is called on the loss's own tensors)."""
    decls: list[FnDecl] = []
    if loss.fns and helper:
        f = loss.fns[0]
        ctx.error(
            TypeMismatch,
            f"{loss.name}() takes a function input ('{f.name}'): only the spec a file compiles "
            "can, not a loss another calls",
            f.name_span or f.span,
            f"move the call {f.name}(...) into the calling loss and pass its result",
        )
        ctx.silent.update(f.name for f in loss.fns)
        return decls
    carried = set(ctx.dims)
    for f in loss.fns:
        if f.name in ctx.env or f.name in ctx.fns or f.name in ctx.dims:
            ctx.error(
                DuplicateDefinition,
                f"input '{f.name}' is declared twice"
                if f.name not in ctx.dims
                else f"'{f.name}' is both a dim and an input",
                f.name_span or f.span,
                "rename one of them",
            )
            continue
        types = [
            input_type(ctx, ast.Input(f.name, t, None)) for t in (*f.type.params, f.type.result)
        ]
        if any(t is None for t in types):
            ctx.silent.add(f.name)
            continue
        unsized = [
            (d, t)
            for t in (*f.type.params, f.type.result)
            for d in (*(t.dims or ()), *((t.of,) if t.of else ()))
            if d.name not in carried and not d.name.isdigit()  # (a fixed dim is its size)
        ]
        if unsized:
            d, t = unsized[0]
            ctx.error(
                DimMismatch,
                f"dim {d.name} of {f.name}'s signature is on no tensor input: nothing gives it a "
                "size to check the function's result against",
                d.span or t.span,
                f"declare a tensor input over {d.name} (e.g. the clean logits float[B, "
                f"{d.name}]), or use the input's dims in the signature",
            )
            ctx.silent.add(f.name)
            continue
        decl = FnDecl(ctx.b.fresh(f.name), tuple(types[:-1]), types[-1])
        ctx.fns[f.name] = decl
        ctx.origin[f.name] = "function input"
        decls.append(decl)
    return decls


def input_domain(ctx: Ctx, inp: ast.Input) -> tuple[tuple[float, float], tuple[bool, bool]]:
    """`where lo <= x <= hi` on an input: the (lo, hi) it promises, and which bounds are
    strict (`x > 0` excludes 0). Only comparisons of the input with constants."""
    lo, hi = -math.inf, math.inf
    lo_open = hi_open = False
    d = inp.domain
    if d is None:
        return (lo, hi), (lo_open, hi_open)
    bad = (
        "an input's `where` compares the input with constants",
        _sp(d),
        f"e.g. `{inp.name}: {inp.type} where {inp.name} > 0` or `where 0 <= {inp.name} <= 1`",
    )
    if not isinstance(d, ast.Compare):
        ctx.error(TypeMismatch, *bad)
        return (lo, hi), (lo_open, hi_open)
    for left, op, right in zip(d.operands, d.ops, d.operands[1:]):
        me_left = isinstance(left, ast.Name) and left.name == inp.name
        me_right = isinstance(right, ast.Name) and right.name == inp.name
        bound = const_eval(right if me_left else left)
        if me_left == me_right or bound is None or op in ("==", "!="):
            ctx.error(TypeMismatch, *bad)
            return (-math.inf, math.inf), (False, False)
        upper = (op in ("<", "<=")) == me_left
        strict = op in ("<", ">")
        if upper and float(bound) <= hi:
            hi, hi_open = float(bound), strict or (hi_open and float(bound) == hi)
        elif not upper and float(bound) >= lo:
            lo, lo_open = float(bound), strict or (lo_open and float(bound) == lo)
    if lo >= hi:
        ctx.error(TypeMismatch, f"the domain of '{inp.name}' is empty", _sp(d), "check the bounds")
    return (lo, hi), (lo_open, hi_open)


def _absent_input(ctx: Ctx, inp: ast.Input, t: TensorType | None = None) -> Atom | None:
    """An optional input that was not passed: its default, broadcast to its declared dims
    (`t`: its type when already known, e.g. through a spec call's dim binding)."""
    v = const_eval(inp.default)
    t = t if t is not None else input_type(ctx, inp)
    if v is None or t is None:
        return None
    dtype = "int" if t.dtype == "int" else t.dtype
    if not t.dims:
        return lit(_coerce(dtype, v))
    attrs = (("dims", t.dims), ("value", _coerce(dtype, v)), ("dtype", dtype), ("absent", True))
    return ctx.emit("fill", (), attrs, span=inp.span, hint=inp.name)


def _lower_check(ctx: Ctx, p: ast.Param, params: dict[str, Atom]) -> Check | None:
    """A param constraint, lowered over the params alone into its own small equation list."""
    b = Builder()
    b.fold = True
    b.taken = ctx.b.taken  # share the namespace: check names never collide with body names
    # The inputs are in scope only so that using one is reported as such, not as unknown.
    env = {**ctx.env, **params}
    scratch = Ctx(b, ctx.errors, ctx.scope, env, dict(ctx.dims), silent=ctx.silent)
    scratch.levels, scratch.parent = ctx.levels, ctx.parent
    n_errors = len(ctx.errors)
    ok = lower_expr(scratch, p.constraint)
    if ok is None or len(ctx.errors) > n_errors:
        return
    used = {a.name for e in scratch.b.eqns for a in e.args if isinstance(a, Var)}
    used |= {ok.name} if isinstance(ok, Var) else set()
    used -= {v.name for v in params.values() if isinstance(v, Var)}
    used -= {e.out.name for e in scratch.b.eqns}
    names = {v.name: n for n, v in env.items() if isinstance(v, Var)}
    bad = [f"'{names.get(u, u)}'" for u in sorted(used)]
    # size(C) is a property of the inputs too: a constraint is checked before any input exists.
    bad += [f"size({dict(e.attrs)['dim']})" for e in scratch.b.eqns if e.op == "size"]
    if bad or ok.type.dims:
        ctx.error(
            TypeMismatch,
            "a param constraint may only use params and numbers"
            + (f", not {', '.join(bad)}" if bad else ""),
            _sp(p.constraint),
            "it is checked on the param values alone, e.g. `where gamma >= 0`; "
            "a condition on tensors belongs in the body (where(...))",
        )
        return
    if ok.type.dtype != "bool":
        ctx.error(
            TypeMismatch,
            f"a constraint must be a comparison, found {ok.type}",
            _sp(p.constraint),
            "e.g. `where gamma >= 0`",
        )
        return
    bad_op = constraints.unsupported(scratch.b.eqns)
    if bad_op is not None:
        # Checked on Python numbers before any tensor exists (lossdsl/constraints.py).
        ctx.error(
            TypeMismatch,
            f"a param constraint cannot use {_SURFACE.get(bad_op.op, bad_op.op)}",
            bad_op.span or _sp(p.constraint),
            constraints.HINT,
        )
        return
    text = p.constraint.span.source.text if p.constraint.span else ""
    if p.constraint.span is not None:
        s = p.constraint.span
        line = s.source.line(s.line)
        text = line[s.col - 1 : (s.end_col - 1 if s.end_line == s.line else None)]
    check = Check(tuple(scratch.b.eqns), ok, text, p.constraint.span)
    ctx.checks.append(check)
    return check


def _violated(check: Check | None, values: dict[str, object]) -> bool:
    """Whether a constraint already fails on constants: its params are literals (a spec call with
    gamma=-1) or have the given `values` (defaults). False when it depends on anything else."""
    return check is not None and constraints.evaluate(check, values) is False


_SURFACE = {"pow": "'^'", "safe_div": "a masked mean"}  # ops a user knows by another name


def _choice_default(ctx: Ctx, p: ast.Param) -> int | None:
    """A choice param's default as the index of its word; None after reporting an error."""
    words = p.choices
    dup = next((w for i, w in enumerate(words) if w in words[:i]), None)
    if dup is not None:
        return ctx.error(
            DuplicateDefinition,
            f"choice \"{dup}\" of param '{p.name}' is listed twice",
            p.span,
            "list each word once",
        )
    if p.constraint is not None:
        return ctx.error(
            TypeMismatch,
            f"choice param '{p.name}' takes no `where`: its words are its values",
            _sp(p.constraint),
            "drop the `where` clause",
        )
    if not isinstance(p.default, ast.Str) or p.default.value not in words:
        shown = ", ".join(f'"{w}"' for w in words)
        return ctx.error(
            TypeMismatch,
            f"choice param '{p.name}' defaults to one of {shown}",
            _sp(p.default) if p.default is not None else p.span,
            f'write `= "{words[0]}"`',
        )
    return words.index(p.default.value)


REQUIRED = object()  # a param with no default (ParamDecl.default None)


def _param_default(ctx: Ctx, p: ast.Param) -> float | int | bool | None:
    """The param's default, checked against its dtype; None after reporting an error."""
    if p.dtype == "choice":
        return _choice_default(ctx, p)
    if p.default is None and p.dtype in ("float", "int", "bool"):
        return REQUIRED
    if p.dtype not in ("float", "int", "bool"):
        return ctx.error(
            TypeMismatch,
            f"a param is float, int or bool, found {p.dtype}",
            p.span,
            "index tensors are inputs, not params",
        )
    d = const_eval(p.default)
    if d is None:
        return ctx.error(
            TypeMismatch,
            "a param default must be a constant",
            _sp(p.default),
            "write a number, or arithmetic on numbers that stays finite: "
            "e.g. `param gamma: float = 2.0`",
        )
    if p.dtype == "bool" and not isinstance(d, bool):
        return ctx.error(
            TypeMismatch,
            f"bool param '{p.name}' needs true or false, found {d}",
            _sp(p.default),
            f"write `param {p.name}: bool = {'true' if d else 'false'}`",
        )
    if p.dtype == "int" and (isinstance(d, bool) or not isinstance(d, int)):
        # One rule for every backend: the default has the param's type, as the language
        # computes it (`/` is true division: 4 / 2 is 2.0, not an int).
        whole = isinstance(d, float) and d.is_integer()
        return ctx.error(
            TypeMismatch,
            f"int param '{p.name}' needs an integer default, found {str(d).lower()}",
            _sp(p.default),
            f"write `param {p.name}: int = {int(d)}` (`/` is true division and a literal "
            "with a point is a float)"
            if whole
            else f"give an integer, or declare it `param {p.name}: float`",
        )
    if p.dtype == "float" and isinstance(d, bool):
        return ctx.error(
            TypeMismatch,
            f"float param '{p.name}' needs a number, found {str(d).lower()}",
            _sp(p.default),
            f"give a number, or declare it `param {p.name}: bool`",
        )
    if isinstance(d, float) and math.isnan(d):
        return ctx.error(
            TypeMismatch,
            f"param '{p.name}' defaults to nan",
            _sp(p.default),
            "give a number: a nan param makes every loss value nan",
        )
    return d


def declare_params(ctx: Ctx, loss: ast.LossDef) -> list[ParamDecl]:
    decls = []
    declared: dict[str, Atom] = {}
    for p in loss.body:
        if not isinstance(p, ast.Param):
            continue
        if p.name in ctx.env or p.name in ctx.dims or p.name in declared:
            ctx.error(
                DuplicateDefinition,
                f"'{p.name}' is already defined"
                + (f" ({ctx.origin[p.name]})" if p.name in ctx.origin else ""),
                p.name_span or p.span,
                "rename the param",
            )
            continue
        d = _param_default(ctx, p)
        if d is None:
            ctx.silent.add(p.name)
            continue
        dtype = "int" if p.choices else p.dtype
        var = Var(ctx.b.fresh(p.name), TensorType(dtype))
        ctx.env[p.name] = declared[p.name] = var
        ctx.origin[p.name] = "param"
        ctx.b.params.add(var.name)
        if p.choices:
            ctx.choices[p.name] = p.choices
        decls.append(ParamDecl(var, None if d is REQUIRED else _coerce(dtype, d), p.choices))
    defaults = {d.var.name: d.default for d in decls}
    for p in loss.body:
        if isinstance(p, ast.Param) and p.constraint is not None and p.name in declared:
            check = _lower_check(ctx, p, declared)
            if p.default is not None and _violated(check, defaults):
                _bad_default(ctx, p, check)
    return decls


def _bad_default(ctx: Ctx, p: ast.Param, check: Check) -> None:
    ctx.error(
        ParamError,
        f"the default {p.name} = {const_eval(p.default)} violates `{check.text}`",
        _sp(p.default),
        "change the default or the constraint",
    )


def check_param_value(name: str, dtype: str, value) -> None:
    """Reject a baked param of the wrong kind (True for a float, 2.5 for an int)."""
    ok = {
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }[dtype]
    if not ok or (dtype == "float" and isinstance(value, float) and math.isnan(value)):
        raise ParamError(f"param '{name}' must be {dtype}, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            check_representable(value)
        except FoldError as e:
            raise ParamError(f"param '{name}': {e.message}", None, e.hint) from None
