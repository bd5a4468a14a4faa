"""The entry points lower_loss (one loss to a Program) and lower_body (lets, uses, the
result), and the checks on the result: it reaches an input (with a gradient), every dim it
needs has a size, no pairwise dim is left, and the `reduce` statement's outputs."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from lossdsl import ast
from lossdsl.errors import (
    ArityError,
    DimMismatch,
    DuplicateDefinition,
    LossError,
    TypeMismatch,
    UnknownName,
    did_you_mean,
)
from lossdsl.ir import Atom, InputDecl, Lit, Program, Var
from lossdsl.lower.context import REDUCTIONS, Budget, Builder, Ctx, _sp, const_eval
from lossdsl.lower.decls import declare_fns, declare_inputs, declare_params
from lossdsl.lower.expr import lower_expr
from lossdsl.lower.preludes import lower_use
from lossdsl.ops import OPS
from lossdsl.types import Dim, fmt_dims

if TYPE_CHECKING:
    from lossdsl.resolve import Resolved


def lower_body(ctx: Ctx, loss: ast.LossDef) -> Atom | None:
    """Lets, uses and the result expression, in order. Returns the per-element result."""
    lower_stmts(ctx, loss.body)
    return lower_expr(ctx, loss.result)


def lower_stmts(ctx: Ctx, stmts) -> None:
    """Lets and uses, in order (a loss's body, or a loop's block)."""
    for st in stmts:
        match st:
            case ast.Use():
                lower_use(ctx, st)
            case ast.LetTuple(names=names, value=value):
                fresh = [_new_name(ctx, n, sp or st.span) for n, sp in zip(names, st.name_spans)]
                if not all(fresh):
                    ctx.silent.update(n for n in names if n not in ctx.env)
                    continue
                vals = _lower_tuple(ctx, value, names)
                for n, v in zip(names, vals or [None] * len(names)):
                    ctx.env[n] = v  # None marks a failed let: later uses stay silent
                    ctx.origin[n] = "let"
            case ast.Let(name=name, value=value):
                if not _new_name(ctx, name, st.name_span or st.span):
                    continue
                before = len(ctx.b.eqns)
                v = lower_expr(ctx, value)
                # `let p = (logp)` names a value already bound: p is an alias, and the
                # equation that made logp keeps its name (later uses of logp refer to it).
                # Only a value this let's expression computed is new (and `v not in
                # env.values()` made a chain of n lets O(n^2): 8,000 lets took 12 s).
                if isinstance(v, Var) and len(ctx.b.eqns) > before:
                    v = ctx.b.rename_last(v, name)
                ctx.env[name] = v  # None marks a failed let: later uses stay silent
                ctx.origin[name] = "let"


def _new_name(ctx: Ctx, name: str, span) -> bool:
    """False (and an error) when a let rebinds a name already defined."""
    if name not in ctx.env and name not in ctx.dims and name not in ctx.fns:
        return True
    what = "a dimension" if name in ctx.dims else ctx.origin.get(name, "defined")
    ctx.error(
        DuplicateDefinition,
        f"'{name}' is already defined ({what})",
        span,
        f"pick another name than '{name}'",
    )
    if name not in ctx.env:
        ctx.silent.add(name)  # uses of the rejected let stay quiet
    return False


def _lower_tuple(ctx: Ctx, value, names: tuple[str, ...]) -> list[Atom | None] | None:
    """The values a `let a, b = ...` binds: unstack(x, over=D) or a tuple (e1, e2)."""
    count = len(names)
    if isinstance(value, ast.BlockCall):
        from lossdsl.lower.loops import lower_block_call  # loops imports this module

        return lower_block_call(ctx, value, count)
    if isinstance(value, ast.Call) and value.func == "unstack":
        from lossdsl.lower.functions import lower_unstack  # functions imports this module

        return lower_unstack(ctx, value, names)
    if isinstance(value, ast.Tuple):
        if len(value.items) != count:
            return ctx.error(
                ArityError,
                f"the tuple has {len(value.items)} values, but the let binds {count} names",
                value.span,
                "bind one name per value",
            )
        return [lower_expr(ctx, v) for v in value.items]
    return ctx.error(
        TypeMismatch,
        f"`let` with {count} names needs {count} values",
        _sp(value),
        "split a fixed-size dim with unstack(box, over=4), or write a tuple: let a, b = (x, y)",
    )


def lower_loss(
    resolved: Resolved,
    loss: ast.LossDef,
    errors: list[LossError],
    absent: frozenset[str] = frozenset(),
    helper: bool = False,
    budget: Budget | None = None,
) -> Program | None:
    """Lower one loss for one set of absent optional inputs. A helper (a loss other specs in
    the file call, not the file's spec) may return a pairwise [B, B'] value. `budget`: the
    steps left to the spec (a fresh MAX_STEPS if None)."""
    b = Builder(budget=budget)
    ctx = Ctx(b, errors, resolved.scope, stack=(loss.name,), loss_name=loss.name)
    decls = declare_inputs(ctx, loss, absent)
    fns = declare_fns(ctx, loss, helper)
    if not helper:
        _optional_only_dims(ctx, loss)
    params = declare_params(ctx, loss)
    result = lower_body(ctx, loss)
    reduce_stmts = [s for s in loss.body if isinstance(s, ast.Reduce)]
    if not helper:
        _unsized_dims(ctx, decls)
    if result is None:
        return None
    result = _check_result(ctx, loss, result, helper)
    if result is None:
        return None
    outputs, default_mode = _reductions(ctx, loss, result, reduce_stmts)
    if outputs is None:
        return None
    return Program(
        name=loss.name,
        doc=loss.doc or "",
        inputs=tuple(decls),
        params=tuple(params),
        eqns=tuple(ctx.b.eqns),
        outputs=outputs,
        default_reduction=default_mode,
        checks=tuple(ctx.checks),
        absent=tuple(sorted(absent)),
        fns=tuple(fns),
    )


def _optional_only_dims(ctx: Ctx, loss: ast.LossDef) -> None:
    """A dim that only optional inputs carry has no size when they are left out (the default
    fills a tensor over it): the spec cannot be called without them, so say so at check."""
    required = {d.name for i in loss.inputs if i.default is None for d in i.type.dims or ()}
    reported = set()
    for inp in loss.inputs:
        if inp.default is None:
            continue
        for d in inp.type.dims or ():
            if d.name in required or d.name in reported:
                continue
            reported.add(d.name)
            ctx.error(
                DimMismatch,
                f"dim {d} is only on optional inputs: when '{inp.name}' is left out, nothing "
                f"gives {d.name} a size",
                d.span or inp.span,
                f"declare {d.name} on a required input too, or make '{inp.name}' required "
                "(drop its `= default`)",
            )


def _unsized_dims(ctx: Ctx, decls: list[InputDecl]) -> None:
    """Every dim an equation needs the size of (fill, eye, arange, onehot, size, expand) must
    be a dim of a passed input: an `index[...] of C` alone does not say how big C is."""
    carried = {d.name for decl in decls for d in decl.var.type.dims}
    reported = set()
    for e in ctx.b.eqns:
        dims = [v for k, v in e.attrs if k == "dim"] + [
            d for k, v in e.attrs if k == "dims" for d in v
        ]
        for d in dims:
            if (
                isinstance(d, Dim)
                and not d.unit
                and d.fixed is None  # a fixed-size dim's size is its name (arange(480))
                and d.param is None  # split(x, k, over=N): the int param k's value
                and d.name not in carried | reported
            ):
                reported.add(d.name)
                ctx.error(
                    DimMismatch,
                    f"the size of {d.name} is unknown: no input has dim {d.name}",
                    e.span,
                    f"declare an input over {d.name} (e.g. the logits float[B, {d.name}]); "
                    f"an index `of {d.name}` does not give its size",
                )


def _reaches_input(ctx: Ctx, r: Atom, differentiably: bool = False) -> bool:
    """Does `r` read an input tensor (not only params, sizes and literals)? With
    `differentiably`, only through float values and differentiable ops: not through
    comparisons, argmax, indices, the condition of a where, or stop_grad."""
    inputs = {
        ctx.env[n].name
        for n, o in ctx.origin.items()
        if o == "input" and isinstance(ctx.env.get(n), Var)
    }
    producers = {e.out.name: e for e in ctx.b.eqns}
    stack, seen = [r], set()
    while stack:
        a = stack.pop()
        if not isinstance(a, Var) or a.name in seen:
            continue
        if differentiably and a.type.dtype != "float":
            continue
        seen.add(a.name)
        if a.name in inputs:
            return True
        e = producers.get(a.name)
        if e is None:
            continue
        if differentiably:
            if e.op == "stop_grad" or not OPS[e.op].differentiable:
                continue  # (a fill too: an absent input is a constant)
            args = e.args[1:] if e.op == "where" else e.args
            args = e.args[1:2] if e.op == "custom_grad" else args  # only wrt= has a gradient
            stack.extend(args[:1] if e.op in ("gather", "cross_entropy") else args)
        elif e.op == "fill":
            return True  # an absent optional input still stands for an input
        else:
            stack.extend(e.args)
    return False


def _check_result(ctx: Ctx, loss: ast.LossDef, r: Atom, helper: bool = False) -> Atom | None:
    sp = _sp(loss.result)
    if r.type.dtype == "bool":
        return ctx.error(
            TypeMismatch,
            f"the loss is a comparison ({r.type}), not a number",
            sp,
            "a loss must be float; use where(mask, a, b) or float(mask)",
        )
    if not _reaches_input(ctx, r):
        return ctx.error(
            TypeMismatch,
            "the loss does not depend on any input",
            sp,
            "a loss is a function of its tensors; a constant has no gradient to train with",
        )
    if not helper and not _reaches_input(ctx, r, differentiably=True):
        return ctx.error(
            TypeMismatch,
            "the loss has no gradient: it reaches the float inputs only through integers, "
            "comparisons, indices or stop_grad",
            sp,
            "argmax, ==, onehot(i), x[i]'s index and stop_grad have zero gradient; make the loss "
            "depend smoothly on a float input (e.g. logits, not argmax(logits))",
        )
    if r.type.dtype == "int":
        r = ctx.emit("to_float", (r,), span=sp)
    # reduction="none" returns the dims in the order the inputs declare them, whatever order
    # the expression happened to build them in.
    order: list[Dim] = []
    for inp in loss.inputs:
        for d in inp.type.dims or ():
            dim = ctx.dim(d.name, d.primes)
            if dim is not None and dim not in order:
                order.append(dim)
    # A dim no input declares sits where the dim it comes from does (a split's N/G where N
    # is), else beside its neighbour (the split's G beside N/G): numpy's reshape layout.
    known = []
    for d in r.type.dims:
        base = replace(d, steps=(), primes=0)
        known.append(order.index(d) if d in order else order.index(base) if base in order else None)
    filled = [k for k in known if k is not None] or [0]
    prev, keys = filled[0], {}
    for d, k in zip(r.type.dims, known):
        keys[d] = prev = k if k is not None else prev
    canon = tuple(sorted(r.type.dims, key=keys.__getitem__))
    if r is not None and canon != r.type.dims:
        r = ctx.emit("transpose", (r,), (("dims", canon),), span=sp)
    primed = [d for d in r.type.dims if d.primes]
    if primed and not helper:
        return ctx.error(
            DimMismatch,
            f"the loss still has the pairwise dim{'s' if len(primed) > 1 else ''} "
            f"{', '.join(map(str, primed))}: {r.type}",
            sp,
            f"reduce over it, e.g. sum(..., over={primed[0]})",
        )
    return r


def _reductions(ctx: Ctx, loss: ast.LossDef, r: Atom, stmts: list[ast.Reduce]):
    """Outputs for reduction='none' | 'sum' | 'mean'. `reduce mean by w empty e` makes the mean
    sum(loss) / sum(w), with `e` when sum(w) == 0 (F.cross_entropy's weighted mean, without its
    NaN on an all-ignored batch)."""
    sp = _sp(loss.result)
    default = "mean"
    by = empty = None
    if len(stmts) > 1:
        ctx.error(
            DuplicateDefinition,
            "only one `reduce` per loss",
            stmts[1].span,
            "keep one; the caller picks another with reduction=...",
        )
        return None, default
    if stmts:
        st = stmts[0]
        if st.mode not in REDUCTIONS:
            ctx.error(
                UnknownName,
                f"unknown reduction '{st.mode}'",
                st.mode_span or st.span,
                did_you_mean(st.mode, REDUCTIONS) or "use mean, sum or none",
            )
            return None, default
        default = st.mode
        if st.by is not None:
            if st.mode != "mean":
                ctx.error(
                    ArityError,
                    "`by` only applies to `reduce mean`",
                    _sp(st.by),
                    f"write `reduce mean by ...`, or drop `by` from `reduce {st.mode}`",
                )
                return None, default
            if st.empty is None:
                ctx.error(
                    ArityError,
                    "a weighted mean must declare its value on an empty set",
                    st.span,
                    "add `empty 0` (what an all-masked batch returns)",
                )
                return None, default
            by = lower_expr(ctx, st.by)
            empty = const_eval(st.empty)
            if by is None:
                return None, default
            if empty is None:
                ctx.error(TypeMismatch, "`empty` must be a number", _sp(st.empty), "e.g. `empty 0`")
                return None, default
            if set(by.type.dims) != set(r.type.dims) or by.type.dtype == "bool":
                # One weight per loss element: a weight lacking a dim would count once per row
                # or once per element depending on how it is read; expand() says which.
                lacks = tuple(d for d in r.type.dims if d not in by.type.dims)
                extra = ", ".join(str(d) for d in by.type.dims if d not in r.type.dims)
                if extra:
                    fix = (
                        f"pick one weight per element along {extra} (w[i] for an index i into "
                        f"it) or reduce {extra} away"
                    )
                elif lacks:
                    names = ", ".join(map(str, lacks))
                    w = st.by.name if isinstance(st.by, ast.Name) else "w"
                    fix = f"repeat the weights along {names}: by `expand({w}, {names})`"
                else:
                    fix = "they are a mask: weigh by float(mask)"
                ctx.error(
                    DimMismatch,
                    f"the mean's weights are {by.type}, the loss is {r.type}",
                    _sp(st.by),
                    f"weights need the loss's dims {fmt_dims(r.type.dims)}, as numbers; {fix}",
                )
                return None, default
        elif st.empty is not None:
            ctx.error(
                ArityError,
                "`empty` only applies with `by`",
                _sp(st.empty),
                "an unweighted mean is never empty: drop `empty`, or add `by weights`",
            )
            return None, default
    dims = r.type.dims
    if not dims:
        # One element: sum(loss) / sum(w) is loss / w (the weights are a scalar too).
        m = r
        if by is not None:
            if isinstance(by, Lit):  # a tensor, as the sum of weights is for a ranked loss
                attrs = (("dims", ()), ("value", float(by.value)), ("dtype", "float"))
                by = ctx.emit("fill", (), attrs, span=sp)
            m = ctx.emit("safe_div", (r, by), (("empty", float(empty)),), span=sp)
        return (None if m is None else (("none", r), ("sum", r), ("mean", m))), default
    over = (("over", dims),)
    s = ctx.emit("sum", (r,), over, span=sp, hint="total")
    if by is None:
        m = ctx.emit("mean", (r,), over, span=sp, hint="average")
    else:
        w = ctx.emit("sum", (by,), over, span=sp, hint="denominator")
        m = ctx.emit("safe_div", (s, w), (("empty", float(empty)),), span=sp, hint="average")
    if s is None or m is None:
        return None, default
    return (("none", r), ("sum", s), ("mean", m)), default
