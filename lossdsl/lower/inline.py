"""Spec calls: another loss inlined at its call site, its dims bound to the arguments'
by position (_bind_dims), left-out optional inputs typed through that binding (_bound_type),
params passed or defaulted, one body per distinct binding."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from lossdsl import ast, constraints
from lossdsl.errors import ArityError, DimMismatch, ParamError, TypeMismatch, did_you_mean
from lossdsl.ir import Atom, Check, Eqn, Lit, Var
from lossdsl.lower.context import Ctx, _coerce, _sp, lit
from lossdsl.lower.decls import (
    REQUIRED,
    _absent_input,
    _bad_default,
    _lower_check,
    _param_default,
    _violated,
)
from lossdsl.lower.expr import lower_expr
from lossdsl.lower.results import lower_body
from lossdsl.types import UNIT_DIM, Dim, TensorType

if TYPE_CHECKING:
    from lossdsl.resolve import Callee


# ---- spec calls -------------------------------------------------------------------------


def lower_spec_call(ctx: Ctx, call: ast.Call, callee: Callee) -> Atom | None:
    """Inline another loss: its per-element value (before its reduction) over the caller's dims.
    The callee's dims bind to the argument dims by position, whatever their names (colsum(r:
    [N, M]) called with [M, N] sums the caller's M), all at once: the callee's body resolves
    each of its dim names through that one map, so no renaming can capture another. Dims the
    arguments have beyond the callee's declaration (e.g. *S) ride along like a vmap."""
    loss = callee.loss
    if loss.name in ctx.stack:
        return ctx.error(
            ArityError,
            f"'{loss.name}' calls itself (through {' -> '.join(ctx.stack + (loss.name,))})",
            call.span,
            "losses cannot be recursive",
        )
    params = {p.name: p for p in loss.body if isinstance(p, ast.Param)}
    inputs = {i.name: i for i in loss.inputs}
    bound: dict[str, object] = {}
    if len(call.args) > len(loss.inputs):
        return ctx.error(
            ArityError,
            f"{loss.name}() takes {len(loss.inputs)} input{'s' if len(loss.inputs) != 1 else ''}, "
            f"got {len(call.args)}",
            _sp(call.args[len(loss.inputs)]),
            f"inputs: {', '.join(inputs)}",
        )
    for inp, node in zip(loss.inputs, call.args):
        bound[inp.name] = node
    for kw in call.kwargs:
        if kw.name in bound:
            return ctx.error(
                ArityError, f"{loss.name}() got '{kw.name}' twice", _sp(kw), "pass it once"
            )
        if kw.name not in inputs and kw.name not in params:
            return ctx.error(
                ArityError,
                f"{loss.name}() has no input or param '{kw.name}'",
                _sp(kw),
                did_you_mean(kw.name, list(inputs) + list(params))
                or f"inputs: {', '.join(inputs)}; params: {', '.join(params) or 'none'}",
            )
        bound[kw.name] = kw.value
    sub = Ctx(ctx.b, ctx.errors, callee.scope, stack=ctx.stack + (loss.name,), loss_name=loss.name)
    levels: dict[tuple[str, int], Dim] = {}
    ok = True
    for inp in loss.inputs:
        node = bound.get(inp.name)
        if node is None:
            if inp.default is None:
                return ctx.error(
                    ArityError,
                    f"{loss.name}() is missing input '{inp.name}'",
                    call.span,
                    f"inputs: {', '.join(inputs)}",
                )
            continue
        atom = lower_expr(ctx, node)
        if atom is None:
            ok = False
            continue
        atom = _bind_dims(ctx, sub, inp, atom, levels, node)
        if atom is None:
            ok = False
        sub.env[inp.name] = atom
    if not ok:
        return None
    sub.levels, sub.parent = levels, ctx
    sub.dims = {n: sub.dim(n) for n in dict.fromkeys(n for n, _ in levels)}
    for inp in loss.inputs:
        if inp.name not in sub.env:
            t = _bound_type(ctx, sub, loss, inp, call)
            if t is None:
                return None
            sub.env[inp.name] = _absent_input(sub, inp, t)
    for name, p in params.items():
        if p.choices:
            v = _bind_choice(ctx, sub, loss, p, bound.get(name))
            if v is None:
                return None
            sub.env[name] = v
            continue
        if name in bound:
            v = lower_expr(ctx, bound[name])
            if v is None:
                return None
            if v.type.dims:
                return ctx.error(
                    TypeMismatch,
                    f"param '{name}' of {loss.name} must be a scalar, found {v.type}",
                    _sp(bound[name]),
                    "params are one number per call; pass a per-element weight as an input",
                )
            sub.env[name] = v
        else:
            d = _param_default(sub, p)  # reported here too: an imported spec is not lowered alone
            if d is None:
                return None
            if d is REQUIRED:
                return ctx.error(
                    ParamError,
                    f"{loss.name}() needs its param '{name}': it has no default",
                    call.span,
                    f"pass it: {loss.name}(..., {name}=...)",
                )
            sub.env[name] = lit(_coerce(p.dtype, d))
        if p.constraint is None:
            continue
        check = _lower_check(sub, p, {n: sub.env[n] for n in params if n in sub.env})
        if check is not None and name in bound and isinstance(sub.env[name], Var):
            check = _caller_check(ctx, sub, loss, name, check, bound[name])
        if _violated(check, {}) and name in bound:
            v = sub.env[name]
            ctx.error(
                ParamError,
                f"{loss.name}(): {name} = {v.value if isinstance(v, Lit) else v} violates "
                f"`{check.text}`",
                _sp(bound[name]),
                "change the value",
            )
        elif _violated(check, {}):
            _bad_default(sub, p, check)
    ctx.checks.extend(sub.checks)
    # One body per distinct binding: a call with the same loss, argument values and param
    # values as an earlier one reuses that call's result instead of inlining the body again
    # (30 helpers each calling the previous twice inlined 2^30 bodies). Absent inputs are
    # keyed as absent: their fill depends only on the loss and the argument types.
    key = (
        id(loss),
        tuple(None if bound.get(i.name) is None else sub.env[i.name] for i in loss.inputs),
        tuple(sub.env.get(n) for n in params),
    )
    if key not in ctx.b.inlined:
        n_errors = len(ctx.errors)
        ctx.b.inlined[key] = lower_body(sub, loss)
        # A mistake met inside the callee may come from this call's dims (colsum's N is the
        # caller's M here): point at the call too, with the binding.
        renamed = [f"{fmt_dim(k)} = {v}" for k, v in levels.items() if str(v) != fmt_dim(k)]
        note = f"in {loss.name}(...), inlined here"
        note += f" with {', '.join(renamed)}" if renamed else ""
        for e in ctx.errors[n_errors:]:
            e.notes.append((note, call.span))
    r = ctx.b.inlined[key]
    r = ctx.b.current(r) if isinstance(r, Var) else r
    if isinstance(r, Var) and UNIT_DIM in r.type.dims and r.type.dtype != "bool":
        # *S with no axes stays inside the call: the caller never names it (size 1: the sum,
        # or the max of an int, over it is the value itself).
        red = "sum" if r.type.dtype == "float" else "max"
        r = ctx.emit(red, (r,), (("over", (UNIT_DIM,)),), span=call.span)
    return r


def _caller_check(ctx: Ctx, sub: Ctx, loss, name: str, check: Check, node) -> Check | None:
    """The callee's constraint on a param the call binds to a value of the caller: checked at
    every call when that value is a param of the caller (the message says which), an error
    when it is a tensor value (a constraint is checked on numbers before any tensor exists;
    skipping it would run sq(x, s=c) with c = -3 unchecked)."""
    sub.checks.remove(check)
    # the caller's equations the constraint reads (s=a * 2), when they are of params alone
    producers = {e.out.name: e for e in ctx.b.eqns}
    needed: dict[str, Eqn] = {}

    def params_only(v: Var) -> bool:
        if v.name in ctx.b.params or v.name in needed:
            return True
        e = producers.get(v.name)
        if e is None or not all(isinstance(a, Lit) or params_only(a) for a in e.args):
            return False
        needed[v.name] = e
        return True

    reads = {a for e in check.eqns for a in e.args if isinstance(a, Var)}
    reads |= {check.ok} if isinstance(check.ok, Var) else set()
    reads = {v for v in reads if v.name not in {e.out.name for e in check.eqns}}
    ok = all(params_only(v) for v in sorted(reads, key=lambda v: v.name))
    pre = sorted(needed.values(), key=lambda e: list(producers).index(e.out.name))
    if not ok or constraints.unsupported(pre) is not None:
        return ctx.error(
            ParamError,
            f"{loss.name}()'s param {name} has the constraint `{check.text}`, which is "
            "checked on numbers: it cannot be bound to a tensor value",
            _sp(node),
            f"pass a number, or a param of {ctx.loss_name or 'the caller'} (a param's "
            "constraint is checked at every call)",
        )
    sp = _sp(node)
    one_line = sp is not None and sp.end_line == sp.line
    arg = sp.source.line(sp.line)[sp.col - 1 : sp.end_col - 1] if one_line else sub.env[name].name
    text = check.text if arg == name else f"{check.text}, {loss.name}'s {name} being {arg}"
    check = replace(check, eqns=(*pre, *check.eqns), text=text)
    sub.checks.append(check)
    return check


def _bind_dims(ctx, sub, inp: ast.Input, atom: Atom, levels: dict, node) -> Atom | None:
    """Bind the dims `inp` declares to the argument's, position by position (the argument's
    dims in the order its type lists them: an input's declared order), whatever their names
    and primes: `levels` maps each dim as declared, (name, primes), to the caller's. A dim
    bound by an earlier input must meet the same caller dim again, and a dim and its declared
    twins bind twins (ha(x: [B', B]) takes [B, B'], not [N, M]). Dims past the declaration
    ride along. A *S the argument has no dim for is *S with no axes (README): a size-1 dim
    the argument is expanded by. The argument as the callee sees it, or None after an error."""
    decl = inp.type.dims or ()
    have = atom.type.dims

    def bad(msg: str) -> None:
        ctx.error(
            DimMismatch,
            f"input '{inp.name}' of {sub.loss_name} {msg}",
            _sp(node),
            f"{sub.loss_name} declares {inp.name}: {inp.type}; its dims bind to the "
            "argument's by position",
        )
        return None

    def bind(dref, d: Dim, what: str) -> str | None:
        """Bind the declared dim `dref` to the caller's `d`; a complaint, or None."""
        key = (dref.name, dref.primes)
        want = levels.get(key)
        if want is not None:
            return None if want == d else f"{what} {dref} (= {want} here), but {atom.type} has {d}"
        kin = next(((k, v) for k, v in levels.items() if k[0] == dref.name), None)
        if kin is not None and not (kin[1].twin_of(d) and kin[1].unit == d.unit):
            k, v = kin
            return (
                f"{what} {dref}, a twin of its {fmt_dim(k)} (= {v} here), but {atom.type} has {d}"
            )
        levels[key] = d
        return None

    star = next((k for k, d in enumerate(decl) if d.variadic), None)
    if have and len(have) == len(decl) - 1 and star is not None and isinstance(atom, Var):
        s = decl[star]
        unit = levels.get((s.name, 0)) or UNIT_DIM
        if unit.unit and s.primes == 0:
            atom = ctx.emit("expand", (atom,), (("dims", (unit,)),), span=_sp(node))
            have = have[:star] + (unit,) + have[star:]
    if len(have) < len(decl):
        return bad(f"is {inp.type}, but the argument is {atom.type}: it lacks a dimension")
    for dref, d in zip(decl, have):
        if dref.name.isdigit() and d.name != dref.name:  # a fixed-size dim binds only itself
            return bad(f"wants its fixed-size dim {dref} where the argument {atom.type} has {d}")
        why = bind(dref, d, "wants dim")
        if why is not None:
            return bad(why)
    of = inp.type.of
    if of is not None:
        if atom.type.of is None:
            return bad(f"is an index ({inp.type}), but the argument is {atom.type}")
        why = bind(of, atom.type.of, "indexes")
        if why is not None:
            return bad(why.replace(f"but {atom.type} has", "but the argument indexes"))
    return atom


def fmt_dim(key: tuple[str, int]) -> str:
    return key[0] + "'" * key[1]


def _bound_type(ctx, sub: Ctx, loss: ast.LossDef, inp: ast.Input, call) -> TensorType | None:
    """The type of a callee's optional input that the call leaves out: its declared dims
    through the call's binding. A dim no passed argument binds has no size to fill with."""
    t = inp.type
    declared = (*(t.dims or ()), *((t.of,) if t.of else ()))
    unbound = [d.name for d in declared if d.name not in sub.dims]
    if unbound:
        return ctx.error(
            DimMismatch,
            f"{loss.name}() leaves out '{inp.name}' ({t}), and no argument binds its dim "
            f"{unbound[0]}",
            call.span,
            f"pass {inp.name}=... too, so {unbound[0]} has a size",
        )

    def bound(d):
        return sub.dim(d.name, d.primes)

    of = bound(t.of) if t.of is not None else None
    return TensorType("int" if t.dtype == "index" else t.dtype, tuple(map(bound, t.dims or ())), of)


def _bind_choice(ctx: Ctx, sub: Ctx, loss, p: ast.Param, arg) -> Atom | None:
    """A callee's choice param: a word of it (`activation="sigmoid"`), the caller's choice param
    with the same words, or its default."""
    sub.choices[p.name] = p.choices
    if arg is None:
        d = _param_default(sub, p)
        return None if d is None else lit(d)
    if isinstance(arg, ast.Str) and arg.value in p.choices:
        return lit(p.choices.index(arg.value))
    if isinstance(arg, ast.Name) and ctx.choices.get(arg.name) == p.choices:
        return lower_expr(ctx, arg)
    return ctx.error(
        TypeMismatch,
        f"{loss.name}()'s param {p.name} is one of " + ", ".join(f'"{w}"' for w in p.choices),
        _sp(arg),
        f'pass one of those words, e.g. {p.name}="{p.choices[0]}", or a choice param of '
        "the caller with the same words",
    )
