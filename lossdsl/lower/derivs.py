"""Function inputs and derivatives inside a loss: `critic(x)` calls a function input (one
`call_fn` equation), `grad(e, wrt=x)` differentiates the scalar e as a function of x (one
`grad` equation holding e's computation as a closed Body, lossdsl/ir.py, whose state is x: a
function of x, as jax.grad takes one; torch runs autograd.grad(create_graph=True) on it)."""

from __future__ import annotations

from dataclasses import replace

from lossdsl import ast
from lossdsl.errors import ArityError, DimMismatch, TypeMismatch
from lossdsl.ir import Atom, Body, FnDecl, Lit, Var
from lossdsl.lower.context import Builder, Ctx, _sp, close_body
from lossdsl.lower.expr import lower_expr
from lossdsl.types import fmt_dims


def lower_fn_call(ctx: Ctx, call: ast.Call, fn: FnDecl) -> Atom | None:
    """critic(x): each argument of its declared type (dims in any order: transposed to the
    declared one), the result of the declared type."""
    name = call.func
    sig = f"{name}: fn({', '.join(map(str, fn.params))}) -> {fn.result}"
    if call.kwargs or len(call.args) != len(fn.params):
        where = call.kwargs[0].span if call.kwargs else call.span
        return ctx.error(
            ArityError,
            f"{name}() takes {len(fn.params)} argument{'s' if len(fn.params) != 1 else ''}, "
            "by position",
            where,
            f"call it as declared: {sig}",
        )
    args = []
    for node, want in zip(call.args, fn.params):
        a = lower_expr(ctx, node)
        if a is None:
            return None
        if a.type.dtype == "int" and want.dtype == "float":
            a = ctx.emit("to_float", (a,), span=_sp(node))
        if a.type.dtype != want.dtype or set(a.type.dims) != set(want.dims) or a.type.of != want.of:
            return ctx.error(
                DimMismatch if a.type.dtype == want.dtype else TypeMismatch,
                f"{name}() takes {want}, but the argument is {a.type}",
                _sp(node),
                f"pass a value over exactly {fmt_dims(want.dims)} ({sig}); expand(x, D) adds "
                "a dim, a reduction removes one",
            )
        if a.type.dims != want.dims:
            a = ctx.emit("transpose", (a,), (("dims", want.dims),), span=_sp(node))
        args.append(a)
    attrs = (("fn", fn.name), ("result", fn.result))
    return ctx.emit("call_fn", tuple(args), attrs, span=call.span)


def lower_grad(ctx: Ctx, call: ast.Call) -> Atom | None:
    """grad(e, wrt=x): de/dx for a float scalar e, of x's type. x is a name (an input, a let,
    a loop's state); e is lowered again as a function of it, so every value e reads that x
    determines must be computed inside e (else it would be a constant there)."""
    example = "grad(sum(critic(x), over=B), wrt=x)"
    kws = {k.name: k for k in call.kwargs}
    bad = next((k for k in call.kwargs if k.name != "wrt"), None)
    if bad is not None or len(call.args) != 1 or "wrt" not in kws:
        return ctx.error(
            ArityError,
            "grad() takes the expression to differentiate and wrt=NAME",
            bad.span if bad is not None else call.span,
            example,
        )
    wrt_node = kws["wrt"].value
    if not isinstance(wrt_node, ast.Name):
        return ctx.error(
            TypeMismatch,
            "grad() differentiates with respect to a name (an input, a let or a loop's state)",
            _sp(wrt_node),
            f"bind the value first: let xh = ...; then {example.replace('x)', 'xh)')}",
        )
    x = lower_expr(ctx, wrt_node)
    if x is None:
        return None
    if x.type.dtype != "float" or isinstance(x, Lit):
        return ctx.error(
            TypeMismatch,
            f"grad() differentiates with respect to a float tensor; {wrt_node.name} is "
            f"{x.type if not isinstance(x, Lit) else 'a constant'}",
            _sp(wrt_node),
            "take the gradient with respect to a float input or a value computed from one",
        )
    b = Builder(budget=ctx.b.budget)
    b.taken = ctx.b.taken
    b.params, b.weak = set(ctx.b.params), set(ctx.b.weak)
    inner = replace(ctx, b=b, env=dict(ctx.env), origin=dict(ctx.origin), silent=set(ctx.silent))
    s = Var(b.fresh(wrt_node.name), x.type)
    inner.env[wrt_node.name] = s
    n_errors = len(ctx.errors)
    e = lower_expr(inner, call.args[0])
    if e is None or len(ctx.errors) > n_errors:
        return None
    if e.type.dtype != "float" or e.type.dims:
        return ctx.error(
            TypeMismatch,
            f"grad() differentiates a float scalar; this is {e.type}",
            _sp(call.args[0]),
            f"sum it over its dims first: grad(sum(..., over={fmt_dims(e.type.dims)}), wrt=...)"
            if e.type.dims
            else "differentiate a float value",
        )
    # close the body: every outer value it reads becomes a free var; none may depend on x
    own = {s.name} | {q.out.name for q in b.eqns}
    after = _dependents(ctx, x)
    for args in (*(q.args for q in b.eqns), (e,)):
        for a in args:
            if isinstance(a, Var) and a.name not in own and a.name in after:
                what = next(
                    (n for n, v in ctx.env.items() if isinstance(v, Var) and v.name == a.name),
                    a.name,
                )
                return ctx.error(
                    TypeMismatch,
                    f"the expression reads '{what}', which is computed from "
                    f"{wrt_node.name} outside grad(): it would be a constant there",
                    _sp(call.args[0]),
                    f"write {what}'s formula inside grad(), or differentiate with respect to "
                    f"{what}",
                )

    eqns, results, free, outer = close_body(b, own, [e])
    body = Body((s,), free, eqns, tuple(results))
    return ctx.emit("grad", (x, *outer), (("body", body),), span=call.span)


def _dependents(ctx: Ctx, x: Var) -> set[str]:
    """The outer values computed from x (x included)."""
    out = {x.name}
    for q in ctx.b.eqns:
        if any(isinstance(a, Var) and a.name in out for a in q.args):
            out.add(q.out.name)  # (a loop reads x through its args too)
    return out
