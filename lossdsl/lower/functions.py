"""The function library: FUNCTIONS maps each surface function (exp, sum, mean, clamp,
normalize, onehot, ...) to its signature (Sig, matched by bind) and the handler that lowers a
call to primitives of the op table; lower_call sends a call there or to another spec.

Why this file is long (over the ~600-line rule): it is the surface function table, one short
handler per function, grouped by family (reductions, indices, windows, order); the handlers
share bind, _over and _const, and the table at the end is the one list of what a user may call
(tests/test_language_doc.py checks the language reference against it)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from lossdsl import ast
from lossdsl.errors import ArityError, DimMismatch, TypeMismatch, UnknownName, did_you_mean
from lossdsl.ir import Atom, Lit, Var
from lossdsl.lower.context import (
    Ctx,
    _int_param,
    _sp,
    _src,
    const_eval,
    lit,
    resolve_dim,
    resolve_dims,
)
from lossdsl.lower.derivs import lower_fn_call, lower_grad
from lossdsl.lower.expr import lower_expr
from lossdsl.lower.inline import lower_spec_call
from lossdsl.ops import PADDINGS
from lossdsl.types import Dim, derived_as, fmt_dims

# ---- calls ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sig:
    """A surface function's parameters: positional-or-keyword names, those with defaults."""

    names: tuple[str, ...]
    defaults: tuple[tuple[str, object], ...] = ()
    variadic: bool = False  # extra positional args allowed (eye)


def bind(ctx: Ctx, call: ast.Call, sig: Sig) -> dict | None:
    """Match a call's arguments to a signature; report arity and keyword errors."""
    defaults = dict(sig.defaults)
    out: dict[str, object] = {}
    if len(call.args) > len(sig.names) and not sig.variadic:
        extra = call.args[len(sig.names)]
        return ctx.error(
            ArityError,
            f"{call.func}() takes at most {len(sig.names)} positional argument"
            f"{'s' if len(sig.names) != 1 else ''}, got {len(call.args)}",
            _sp(extra),
            f"signature: {call.func}({_fmt_sig(sig)})",
        )
    for name, a in zip(sig.names, call.args):
        out[name] = a
    for kw in call.kwargs:
        if kw.name not in sig.names:
            return ctx.error(
                ArityError,
                f"{call.func}() has no argument '{kw.name}'",
                _sp(kw),
                did_you_mean(kw.name, sig.names) or f"signature: {call.func}({_fmt_sig(sig)})",
            )
        if kw.name in out:
            return ctx.error(
                ArityError, f"{call.func}() got '{kw.name}' twice", _sp(kw), "pass it once"
            )
        out[kw.name] = kw.value
    for name in sig.names:
        if name not in out:
            if name in defaults:
                out[name] = defaults[name]
            else:
                return ctx.error(
                    ArityError,
                    f"{call.func}() is missing argument '{name}'",
                    call.span,
                    f"signature: {call.func}({_fmt_sig(sig)})",
                )
    if sig.variadic:
        out["*"] = call.args[len(sig.names) :]
    return out


def _fmt_sig(sig: Sig) -> str:
    d = dict(sig.defaults)
    parts = [n if n not in d else f"{n}={'...' if d[n] is None else d[n]}" for n in sig.names]
    return ", ".join(parts) + (", ..." if sig.variadic else "")


def lower_call(ctx: Ctx, call: ast.Call) -> Atom | None:
    if call.func in ctx.fns:  # a function input (before the builtins: it may shadow one)
        return lower_fn_call(ctx, call, ctx.fns[call.func])
    if call.func in ctx.silent:
        return None  # a function input whose declaration failed, and said so
    if call.func == "grad":
        return lower_grad(ctx, call)
    fn = FUNCTIONS.get(call.func)
    if fn is not None:
        sig, handler = fn
        args = bind(ctx, call, sig)
        return None if args is None else handler(ctx, call, args)
    callee = ctx.scope.get(call.func)
    if callee is not None:
        return lower_spec_call(ctx, call, callee)
    if call.func in ctx.scope.failed:
        return None  # its import failed, and that was reported
    if call.func == "repeat":
        return ctx.error(
            ArityError,
            "repeat(...) is a loop: it needs its state names and a block",
            call.func_span or call.span,
            "let u = repeat(50, init=u0) (u) { ...the next u... }",
        )
    return ctx.error(
        UnknownName,
        f"unknown function '{call.func}': not a lossdsl function, nor a spec this file imports",
        call.func_span or call.span,
        missing_function_hint(call.func, ctx.scope.names()),
    )


# Names a user brings from numpy, torch, scipy or jax, and how lossdsl writes them.
FOREIGN = {
    **{f"arc{f}": f"a{f}" for f in ("sin", "cos", "tan", "sinh", "cosh", "tanh")},
    "arctan2": "atan2",
    "gammaln": "lgamma",
    "psi": "digamma",
    "gamma": "exp(lgamma(x)) (|Gamma(x)|)",
    "erfc": "1 - erf(x)",
    "square": "x^2",
    "reciprocal": "1 / x",
    "rsqrt": "1 / sqrt(x)",
    "floor_divide": "a // b",
    "remainder": "a % b",
    "mod": "a % b",
    "fmod": "a % b (floored, as Python's %)",
    "clip": "clamp",
    "maximum": "max(a, b)",
    "minimum": "min(a, b)",
    "log_sigmoid": "logsigmoid",
    "softsign": "x / (1 + abs(x))",
    "silu": "x * sigmoid(x)",
    "logit": "log(p) - log1p(-p)",
    "isnan": "x != x",
    "amax": "max",
    "amin": "min",
    "average": "mean",
    "variance": "var",
    "one_hot": "onehot",
    "detach": "stop_grad",
    "stop_gradient": "stop_grad",
    "exp2": "2^x",
    "hypot": "sqrt(a^2 + b^2)",
}


def missing_function_hint(name: str, imported: list[str]) -> str:
    """How to write a function lossdsl does not have: its lossdsl spelling when it is a
    framework's name, an import when a shipped spec has that name, else the closest functions and
    specs by spelling (difflib), else where the function table is."""
    from lossdsl.resolve import shipped_spec_names  # resolve lowers specs: import at call time

    spec = f"to call the shipped spec '{name}', add `import {name}` at the top of the file"
    if name in FOREIGN:  # clip: numpy's clip or the CLIP loss
        also = f"; {spec}" if name in shipped_spec_names() else ""
        return f"lossdsl writes {name} as `{FOREIGN[name]}`{also}"
    if name in shipped_spec_names():
        return spec
    close = difflib.get_close_matches(name, sorted(set(FUNCTIONS) | set(imported)), n=3, cutoff=0.6)
    if close:
        return "the closest lossdsl functions: " + ", ".join(close)
    specs = difflib.get_close_matches(name, shipped_spec_names(), n=3, cutoff=0.6)
    if specs:
        return "the closest shipped specs (add `import NAME`): " + ", ".join(specs)
    return "docs/language.md lists every function; to call a spec of your own, import it"


def _x(ctx: Ctx, node) -> Atom | None:
    return lower_expr(ctx, node)


def _const(ctx: Ctx, node, what: str, params: bool = False) -> float | int | None:
    """A compile-time number (eps=1e-12, ddof=1); `params`: the hint offers an int param."""
    if isinstance(node, (int, float)):
        return node
    v = const_eval(node)
    if v is None:
        return ctx.error(
            TypeMismatch,
            f"{what} must be a " + ("whole number or an int param" if params else "number"),
            _sp(node),
            f"write a literal, e.g. {what}=1, or `param k: int` and {what}=k"
            if params
            else f"{what} is fixed when the spec compiles: write a literal, e.g. {what}=1",
        )
    return v


def _unary(op: str) -> tuple[Sig, Callable]:
    def h(ctx, call, a):
        x = _x(ctx, a["x"])
        return ctx.emit(op, (x,), span=call.span, arg_spans=(_sp(a["x"]),))

    return Sig(("x",)), h


def _rounding(op: str) -> tuple[Sig, Callable]:
    """floor, ceil, round: of an int, the int itself (no equation: torch, jax and numpy each
    keep an int's dtype, but it is the identity); of a float, the op."""

    def h(ctx, call, a):
        x = _x(ctx, a["x"])
        if x is not None and x.type.dtype == "int":
            return x
        return ctx.emit(op, (x,), span=call.span, arg_spans=(_sp(a["x"]),))

    return Sig(("x",)), h


def _binary(op: str, names=("x", "y")) -> tuple[Sig, Callable]:
    def h(ctx, call, a):
        x, y = _x(ctx, a[names[0]]), _x(ctx, a[names[1]])
        return ctx.emit(op, (x, y), span=call.span, arg_spans=(_sp(a[names[0]]), _sp(a[names[1]])))

    return Sig(names), h


def _over(ctx: Ctx, a: dict) -> tuple[Dim, ...] | None:
    """The dims a reduction sums over; all of the operand's when over= is not given."""
    if a["over"] is None:
        return ()
    return resolve_dims(ctx, a["over"])


def _reduce_operand(ctx: Ctx, a: dict, over: tuple[Dim, ...]):
    """Lower the operand of a reduction; primes inside it leave the summed dims alone."""
    saved, ctx.contracting = ctx.contracting, over
    try:
        return _x(ctx, a["x"])
    finally:
        ctx.contracting = saved


def _all_dims(x: Atom | None, over: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """The dims to reduce: all of x's when none are listed. over=H also names H-1 (from
    diff(x, over=H)) when x has that and not H itself: users cannot spell H-1."""
    if x is None:
        return over
    if not over:
        return x.type.dims
    return tuple(derived_as(x.type.dims, d) for d in over)


def _reduction(op: str, extra: tuple[tuple[str, object], ...] = ()) -> tuple[Sig, Callable]:
    def h(ctx, call, a):
        over = _over(ctx, a)
        if over is None:
            return None
        x = _reduce_operand(ctx, a, over)
        if x is None:
            return None
        over = _all_dims(x, over)
        if not over:
            return x  # reducing a scalar is the identity
        attrs = [("over", over)]
        if op == "var":
            ddof = _const(ctx, a["ddof"], "ddof")
            if ddof is None:
                return None
            if ddof not in (0, 1):
                return ctx.error(
                    TypeMismatch,
                    f"ddof must be 0 (biased, BatchNorm) or 1 (unbiased, torch .var()), got {ddof}",
                    _sp(a["ddof"]),
                    "write ddof=0 or ddof=1",
                )
            attrs.append(("ddof", int(ddof)))
        return ctx.emit(op, (x,), tuple(attrs), span=call.span, arg_spans=(_sp(a["x"]),))

    return Sig(("x", "over") + tuple(k for k, _ in extra), (("over", None),) + extra), h


def _minmax(reduce_op: str, elementwise_op: str) -> tuple[Sig, Callable]:
    """max(x, over=C) reduces; max(a, b) is elementwise."""
    _, red = _reduction(reduce_op)

    def h(ctx, call, a):
        if a["y"] is not None:
            if a["over"] is not None:
                return ctx.error(
                    ArityError,
                    f"{call.func}(a, b) is elementwise and takes no over=",
                    _sp(a["over"]),
                    f"use {call.func}(x, over=...) to reduce",
                )
            x, y = _x(ctx, a["x"]), _x(ctx, a["y"])
            return ctx.emit(
                elementwise_op, (x, y), span=call.span, arg_spans=(_sp(a["x"]), _sp(a["y"]))
            )
        return red(ctx, call, a)

    return Sig(("x", "y", "over"), (("y", None), ("over", None))), h


def _mean(ctx, call, a):
    """mean(x, over=..., mask=m, empty=0): a masked mean whose empty-set value is declared."""
    over = _over(ctx, a)
    if over is None:
        return None
    x = _reduce_operand(ctx, a, over)
    if a["mask"] is None:
        if a["empty"] is not None:
            return ctx.error(
                ArityError, "empty= only applies with mask=", _sp(a["empty"]), "add mask=m"
            )
        over = _all_dims(x, over)
        if x is None or not over:
            return x
        return ctx.emit("mean", (x,), (("over", over),), span=call.span)
    m = _x(ctx, a["mask"])
    empty = 0.0 if a["empty"] is None else _const(ctx, a["empty"], "empty")
    if x is None or m is None or empty is None:
        return None
    if m.type.dtype != "bool":
        return ctx.error(
            TypeMismatch,
            f"mask= must be a bool mask, found {m.type}",
            _sp(a["mask"]),
            "compare first, e.g. mask=target != ignore_index",
        )
    zero = lit(0.0)
    masked = ctx.emit(
        "where", (m, x, zero), span=call.span, arg_spans=(_sp(a["mask"]), _sp(a["x"]))
    )
    if masked is None:
        return None
    over = _all_dims(masked, over)
    num = ctx.emit("sum", (masked,), (("over", over),), span=call.span)
    if num is None:
        return None
    cnt = _count(ctx, m, over, call)
    return ctx.emit("safe_div", (num, cnt), (("empty", float(empty)),), span=call.span)


def _count(ctx, m: Atom, over: tuple[Dim, ...], call) -> Atom | None:
    """How many elements of the reduced set `m` selects: the sum over `over` of m broadcast to
    the reduced value's dims. A dim of `over` that m lacks counts m once per position, so it
    multiplies the count by its size (mean(x, over=C, mask=m) with m: [B] counts size(C) per
    row, not 1)."""
    f = ctx.emit("to_float", (m,), span=call.span)
    if f is None:
        return None
    inside = tuple(d for d in over if d in f.type.dims)
    if inside:
        f = ctx.emit("sum", (f,), (("over", inside),), span=call.span)
    for d in over:
        if d not in inside:
            n = ctx.emit("size", (), (("dim", d),), span=call.span)
            f = ctx.emit("mul", (f, n), span=call.span)
    return f


def _count_fn(ctx, call, a):
    over = _over(ctx, a)
    if over is None:
        return None
    m = _reduce_operand(ctx, a, over)
    if m is None:
        return None
    if m.type.dtype != "bool":
        return ctx.error(
            TypeMismatch,
            f"count() expects a bool mask, found {m.type}",
            _sp(a["x"]),
            "count a comparison, e.g. count(x > 0, over=C)",
        )
    missing = [d for d in over if d not in m.type.dims]
    if missing:
        names = ", ".join(map(str, missing))
        text = _src(_sp(a["x"])) or "m"
        return ctx.error(
            DimMismatch,
            f"cannot count over {names}: the mask is {m.type}",
            _sp(a["x"]),
            f"to count each of its entries once per {names}, repeat it: `expand({text}, {names})`"
            + (f"; or count over its own dims {fmt_dims(m.type.dims)}" if m.type.dims else ""),
        )
    return _count(ctx, m, _all_dims(m, over), call)


def _along(x: Atom | None, over: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """The one dim an axis or order op works along, as its operand has it: over=T names the
    derived dim of T there (diff's T-1, the frame count of frames(x, over=T))."""
    return over if x is None else (derived_as(x.type.dims, over[0]),)


def _axis_op(op: str) -> tuple[Sig, Callable]:
    def h(ctx, call, a):
        over = resolve_dims(ctx, a["over"]) if a["over"] is not None else None
        if a["over"] is None:
            return ctx.error(
                ArityError,
                f"{call.func}() needs over=DIM",
                call.span,
                f"e.g. {call.func}(x, over=C)",
            )
        if over is None:
            return None
        if len(over) != 1:
            return ctx.error(
                DimMismatch,
                f"{call.func}() works over exactly one dim, got {len(over)}",
                _sp(a["over"]),
                f"pick the one dim, e.g. {call.func}(x, over={over[-1]})",
            )
        x = _x(ctx, a["x"])
        over = _along(x, over)
        return ctx.emit(op, (x,), (("over", over),), span=call.span, arg_spans=(_sp(a["x"]),))

    return Sig(("x", "over"), (("over", None),)), h


UNSTACK = Sig(("x", "over"), (("over", None),))


def lower_unstack(ctx: Ctx, call: ast.Call, names: tuple[str, ...]) -> list[Atom] | None:
    """`let x1, y1, x2, y2 = unstack(box, over=4)`: one value per entry of a fixed-size dim
    (`take` of each), as many as the let binds."""
    a = bind(ctx, call, UNSTACK)
    if a is None:
        return None
    if a["over"] is None:
        return ctx.error(
            ArityError, "unstack() needs over=DIM", call.span, "e.g. unstack(box, over=4)"
        )
    over = resolve_dims(ctx, a["over"])
    if over is None:
        return None
    if len(over) != 1 or over[0].fixed is None:
        return ctx.error(
            DimMismatch,
            f"unstack() splits one fixed-size dim, got over={', '.join(map(str, over))}",
            _sp(a["over"]),
            "declare the dim by its size, e.g. box: float[B, 4], then unstack(box, over=4)",
        )
    (d,) = over
    count = len(names)
    if d.fixed != count:
        return ctx.error(
            ArityError,
            f"unstack(over={d}) gives {d.fixed} values, but the let binds {count} names",
            call.span,
            f"bind {d.fixed} names, e.g. let {', '.join(f'v{i}' for i in range(d.fixed))} = ...",
        )
    x = _x(ctx, a["x"])
    if x is None:
        return None
    out = []
    for i, name in enumerate(names):
        before = len(ctx.b.eqns)
        v = ctx.emit(
            "take", (x,), (("over", over), ("index", i)), span=call.span, arg_spans=(_sp(a["x"]),)
        )
        if isinstance(v, Var) and len(ctx.b.eqns) > before:
            v = ctx.b.rename_last(v, name)  # the generated code reads x1 = box[:, 0]
        out.append(v)
    return out


def _take(ctx, call, a):
    """take(box, 2, over=4): one entry of a fixed-size dim (unstack gives them all)."""
    k = _const(ctx, a["index"], "index")
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int):
        return ctx.error(
            TypeMismatch, f"index must be a whole number, got {k}", _sp(a["index"]), "e.g. 0"
        )
    over = resolve_dims(ctx, a["over"]) if a["over"] is not None else None
    if over is None:
        return (
            None
            if a["over"] is not None
            else ctx.error(
                ArityError, "take() needs over=DIM", call.span, "e.g. take(box, 0, over=4)"
            )
        )
    x = _x(ctx, a["x"])
    return ctx.emit(
        "take", (x,), (("over", over), ("index", k)), span=call.span, arg_spans=(_sp(a["x"]),)
    )


def _unstack_alone(ctx, call, a):
    return ctx.error(
        TypeMismatch,
        "unstack() gives several values, one per entry of a fixed-size dim",
        call.span,
        "bind them by name: let x1, y1, x2, y2 = unstack(box, over=4)",
    )


def _eigvalsh(ctx, call, a):
    """eigvalsh(c, over=(D, D')): eigenvalues of a symmetric [.., D, D'] matrix, ascending."""
    over = resolve_dims(ctx, a["over"])
    if over is None:
        return None
    if len(over) != 2:
        return ctx.error(
            DimMismatch,
            "eigvalsh() takes a matrix: over=(D, D')",
            _sp(a["over"]),
            "name the dim and its primed twin",
        )
    x = _x(ctx, a["x"])
    return ctx.emit("eigvalsh", (x,), (("over", over),), span=call.span, arg_spans=(_sp(a["x"]),))


def _ints(ctx, node, what: str, n: int, params: bool = False) -> tuple | None:
    """size=11 or size=(11, 7): one positive whole number per window dim. With `params`, an
    entry may also be an int param (a window's size=k): the dim "$k" its value sizes at call
    time (a Python int there: static under jax.jit, as split's group size)."""
    items = node.items if isinstance(node, ast.Tuple) else (node,)
    vals: list = []
    for v in items:
        if params and isinstance(v, ast.Name) and v.name not in ctx.dims:
            b = ctx.env.get(v.name)
            if isinstance(b, Lit) and type(b.value) is int:  # a param a spec call passed as 2
                vals.append(b.value)
                continue
            if isinstance(b, Var) and _int_param(ctx, b):
                vals.append(resolve_dim(ctx, v))
                continue
        vals.append(v if isinstance(v, int) else _const(ctx, v, what, params))
    if any(v is None for v in vals):
        return None
    bad = [v for v in vals if not isinstance(v, Dim) and (type(v) is not int or v < 1)]
    if bad or len(vals) not in (1, n):
        return ctx.error(
            TypeMismatch,
            f"{what} must be a positive whole number{' or an int param' if params else ''}, "
            f"or one per dim of over ({n})",
            _sp(node),
            f"e.g. {what}=3" + (f" or {what}=({', '.join(['3'] * n)})" if n > 1 else ""),
        )
    return tuple(vals) * (n if len(vals) == 1 else 1)


def _window(op: str, sig: Sig) -> tuple[Sig, Callable]:
    """blur, box, avg_pool, max_pool, conv: a window sliding over the `over` dims (derived
    ones too: over=H reaches H//2 after a pool); every other dim is carried through."""

    def h(ctx, call, a):
        if a["over"] is None:
            return ctx.error(
                ArityError, f"{call.func}() needs over=DIMS", call.span, "e.g. over=(H, W)"
            )
        over = resolve_dims(ctx, a["over"])
        pad = a["padding"]
        if not isinstance(pad, ast.Str) or pad.value not in PADDINGS:
            return ctx.error(
                TypeMismatch,
                f"padding must be one of {', '.join(f'{p!r}' for p in PADDINGS)}".replace("'", '"'),
                _sp(pad) if not isinstance(pad, str) else call.span,
                'e.g. padding="same" (the output keeps the size of the input)',
            )
        if over is None:
            return None
        n = len(over)
        attrs: list = []
        if "size" in a:
            size = _ints(ctx, a["size"], "size", n, params=True)
            if size is None:
                return None
            attrs.append(("size", size))
        if a["stride"] is None and any(isinstance(k, Dim) for k in dict(attrs).get("size", ())):
            return ctx.error(
                TypeMismatch,
                f"{call.func}() with a param size needs stride=: its default, the size, would "
                "make the output's shape depend on two params",
                _sp(a["size"]),
                f"e.g. {call.func}(x, k, over=(H, W), stride=1)",
            )
        stride = a["stride"] if a["stride"] is not None else a.get("size")
        stride = _ints(ctx, stride, "stride", n)
        if stride is None:
            return None
        x = _x(ctx, a["x"])
        args, spans = [x], [_sp(a["x"])]
        if op == "conv":
            k = _x(ctx, a["kernel"])
            if k is None:
                return None
            args.append(k)
            spans.append(_sp(a["kernel"]))
            attrs.append(("taps", k.type.dims))
        if op == "blur":  # sigma: a number, a param, or a float tensor (one blur per entry)
            sigma = _blur_sigma(ctx, a["sigma"])
            if sigma is None:
                return None
            args.append(sigma)
            spans.append(_sp(a["sigma"]))
        if x is None:
            return None
        over = tuple(derived_as(x.type.dims, d) for d in over)
        attrs += [("stride", stride), ("padding", pad.value)]
        return ctx.emit(
            op, tuple(args), (("over", over), *attrs), span=call.span, arg_spans=tuple(spans)
        )

    return sig, h


_VALID = ("padding", ast.Str("valid"))


def _blur_sigma(ctx, node) -> Atom | None:
    """blur's sigma, an operand: a positive number (checked here), or a float value (a param,
    an expression, a tensor whose dims x lacks: one blur per entry, its dims first)."""
    if isinstance(node, (int, float)):
        node = ast.Num(node, None)
    v = const_eval(node)
    if v is not None and (isinstance(v, bool) or not v > 0):
        return ctx.error(
            TypeMismatch,
            f"sigma must be positive, got {v}",
            _sp(node),
            "the Gaussian's standard deviation in pixels: e.g. sigma=1.5 (SSIM's)",
        )
    if v is not None:
        return lit(float(v))
    s = _x(ctx, node)
    if s is not None and s.type.dtype != "float":
        return ctx.error(
            TypeMismatch,
            f"sigma must be a float, got {s.type}",
            _sp(node),
            "a number, a float param or a float tensor of sigmas, e.g. sigma=1.5",
        )
    return s


def _group_dim(ctx, node) -> Dim | None:
    """split's size: a whole number (the fixed-size dim it names), a dim in scope (an input's
    K: its size at call time), or an int param (the dim "$k", sized by the param's value)."""
    v = ctx.env.get(node.name) if isinstance(node, ast.Name) else None
    if isinstance(v, Lit) and type(v.value) is int and node.name not in ctx.dims:
        node = ast.Num(v.value, node.span)  # an int param a spec call passed as a number
    if isinstance(node, ast.Num) and type(node.value) is int:
        if node.value < 1:
            return ctx.error(
                TypeMismatch,
                f"split() needs groups of at least one entry, got {node.value}",
                _sp(node),
                "e.g. split(x, 4, over=N): N cut into N/4 groups of 4",
            )
        return Dim(str(node.value))
    if isinstance(node, ast.Prime) or (
        isinstance(node, ast.Name)
        and (node.name in ctx.dims or (isinstance(v, Var) and _int_param(ctx, v)))
    ):
        return resolve_dim(ctx, node)
    return ctx.error(
        TypeMismatch,
        "split()'s group size must be a whole number, a dim or an int param",
        _sp(node),
        "e.g. split(x, 4, over=N), split(x, K, over=N) (K: a dim of an input) or "
        "split(x, k, over=N) with `param k: int`",
    )


def _split(ctx, call, a):
    """split(x, G, over=N): N cut into groups of G consecutive entries (row-major, torch's
    x.view(-1, G)): N gives way to the group count N/G (over=N names it) followed by G.
    split(x, groups=C, over=N): N cut into C groups (x.view(C, -1)): C followed by N/C."""
    if a["over"] is None:
        return ctx.error(ArityError, "split() needs over=DIM", call.span, "e.g. over=N")
    if (a["size"] is None) == (a["groups"] is None):
        return ctx.error(
            ArityError,
            "split() takes a group size or a number of groups, one of them",
            call.span,
            "split(x, 4, over=N): groups of 4 entries, [N/4, 4]; split(x, groups=C, over=N): "
            "C groups, [C, N/C]",
        )
    outer = a["groups"] is not None
    given = a["groups"] if outer else a["size"]
    over = resolve_dims(ctx, a["over"])
    g = _group_dim(ctx, given)
    x = _x(ctx, a["x"])
    if over is None or g is None or x is None:
        return None
    if len(over) != 1:
        return ctx.error(
            DimMismatch,
            f"split() cuts exactly one dim, got {len(over)}",
            _sp(a["over"]),
            f"e.g. split(x, 4, over={over[-1]})",
        )
    d = derived_as(x.type.dims, over[0])
    if d not in x.type.dims:
        return ctx.error(
            DimMismatch,
            f"cannot split {d}: {_src(_sp(a['x'])) or 'x'} is {x.type}",
            _sp(a["over"]),
            f"split one of its dims: {fmt_dims(x.type.dims)}" if x.type.dims else None,
        )
    if d.variadic or d.unit:
        return ctx.error(
            DimMismatch,
            f"split() needs a named axis, not the variadic {d}",
            _sp(a["over"]),
            "declare the axis by name, e.g. float[N, D]",
        )
    if g in x.type.dims or g == d:
        return ctx.error(
            DimMismatch,
            f"split() by {g} would give {x.type} a second dim {g}",
            _sp(given),
            f"reduce over {g} first, or split by another size",
        )
    rest = d.derive("/", g.fixed) if g.fixed is not None else d.derive("/", 1, g.name)
    if d.fixed is not None and rest.fixed is None:
        return ctx.error(
            DimMismatch,
            f"split() cannot cut {d} entries into {'' if outer else 'groups of '}{g}"
            f"{' groups' if outer else ''}: {d.fixed} = {d.fixed // g.fixed} x {g.fixed} + "
            f"{d.fixed % g.fixed}",
            _sp(given),
            f"the {'number of groups' if outer else 'group size'} must divide the dim's size: "
            + ", ".join(str(k) for k in range(1, d.fixed + 1) if d.fixed % k == 0),
        )
    k = x.type.dims.index(d)
    dims = x.type.dims[:k] + ((g, rest) if outer else (rest, g)) + x.type.dims[k + 1 :]
    return ctx.emit("reshape", (x,), (("dims", dims),), span=call.span, arg_spans=(_sp(a["x"]),))


def _merge(ctx, call, a):
    """merge(x, over=(P, G)): two dims made one, P's entries outer (row-major: the inverse of
    split, so merge(split(x, G, over=N), over=(N, G)) is x over N again). The result stands
    where P stood; over=P names it."""
    if a["over"] is None:
        return ctx.error(
            ArityError,
            "merge() needs over=(OUTER, INNER)",
            call.span,
            "e.g. merge(x, over=(P, G)): P outer, G inner",
        )
    over = resolve_dims(ctx, a["over"])
    x = _x(ctx, a["x"])
    if over is None or x is None:
        return None
    if len(over) != 2:
        return ctx.error(
            DimMismatch,
            f"merge() makes two dims one, got {len(over)}",
            _sp(a["over"]),
            "e.g. merge(x, over=(P, G)): P outer, G inner",
        )
    p, g = (derived_as(x.type.dims, d) for d in over)
    for d, node in zip((p, g), a["over"].items):
        if d not in x.type.dims:
            return ctx.error(
                DimMismatch,
                f"cannot merge {d}: {_src(_sp(a['x'])) or 'x'} is {x.type}",
                _sp(node),
                f"merge two of its dims: {fmt_dims(x.type.dims)}" if x.type.dims else None,
            )
        if d.variadic or d.unit:
            return ctx.error(
                DimMismatch,
                f"merge() needs named axes, not the variadic {d}",
                _sp(node),
                "declare the axes by name",
            )
    if p == g:
        return ctx.error(
            DimMismatch,
            f"merge() needs two different dims, got {p} twice",
            _sp(a["over"]),
            "e.g. merge(x, over=(P, G)): P outer, G inner",
        )
    cut = g.steps[-1] if g.steps else None
    if cut is not None and cut[0] == "/" and p == (Dim(str(cut[1])) if not cut[2] else Dim(cut[2])):
        merged = replace(g, steps=g.steps[:-1])  # split(x, groups=C, over=N) undone: N
    elif g.fixed is not None:
        merged = p.derive("*", g.fixed)
    elif not g.steps and not g.primes:
        merged = p.derive("*", 1, g.name)
    else:
        return ctx.error(
            DimMismatch,
            f"merge() cannot put {g} inside {p}: the inner dim must be a dim as declared "
            "(or a number, or the group size of a split)",
            _sp(a["over"]),
            f"swap them if {p} is the inner one (merge(x, over=({g}, {p})))",
        )
    if merged != p.base and merged in x.type.dims:
        return ctx.error(
            DimMismatch,
            f"the merge would give {x.type} a second dim {merged}",
            _sp(a["over"]),
            f"reduce over {merged} first",
        )
    dims = x.type.dims
    if dims.index(g) != dims.index(p) + 1:  # bring G right after P (a transpose first)
        order = tuple(d for d in dims if d != g)
        order = order[: order.index(p) + 1] + (g,) + order[order.index(p) + 1 :]
        x = ctx.emit("transpose", (x,), (("dims", order),), span=call.span)
        dims = order
        if x is None:
            return None
    k = dims.index(p)
    dims = dims[:k] + (merged,) + dims[k + 2 :]
    return ctx.emit("reshape", (x,), (("dims", dims),), span=call.span, arg_spans=(_sp(a["x"]),))


def _frames(ctx, call, a):
    """frames(x, size, hop, over=T, padding=, center=false): T cut into frames of `size` every
    `hop` (default: size); padding defaults to "valid", and to "reflect" with center=true
    (torch.stft's pad_mode), which pads size//2 on each side and takes no "valid"."""
    if a["over"] is None:
        return ctx.error(ArityError, "frames() needs over=DIM", call.span, "e.g. over=T")
    over = resolve_dims(ctx, a["over"])
    center = _flag(ctx, a, "center")
    if over is None or center is None:
        return None
    if len(over) != 1:
        return ctx.error(
            DimMismatch,
            f"frames() cuts exactly one dim into frames, got {len(over)}",
            _sp(a["over"]),
            f"e.g. frames(x, 400, 160, over={over[-1]})",
        )
    pad = a["padding"]
    if pad is None:
        pad = ast.Str("reflect" if center else "valid")
    if (
        not isinstance(pad, ast.Str)
        or pad.value not in PADDINGS
        or (center and pad.value == "valid")
    ):
        allowed = PADDINGS[1:] if center else PADDINGS
        return ctx.error(
            TypeMismatch,
            f"padding{' with center=true' if center else ''} must be one of "
            + ", ".join(f'"{p}"' for p in allowed),
            _sp(pad),
            'center=true pads size//2 on each side: with zeros (padding="same") or mirrored '
            '(padding="reflect", torch.stft\'s default)'
            if center
            else 'e.g. padding="valid" (only whole frames, as librosa.util.frame)',
        )
    size = _ints(ctx, a["size"], "size", 1)
    if size is None:
        return None
    hop = _ints(ctx, a["hop"] if a["hop"] is not None else a["size"], "hop", 1)
    x = _x(ctx, a["x"])
    if hop is None or x is None:
        return None
    attrs = (
        ("over", (derived_as(x.type.dims, over[0]),)),
        ("size", size),
        ("stride", hop),
        ("padding", pad.value),
        ("center", center),
    )
    return ctx.emit("frames", (x,), attrs, span=call.span, arg_spans=(_sp(a["x"]),))


def _eps(ctx, call, a) -> float | None:
    """eps >= 0, the floor of the power re^2 + im^2 under the square root (stft_mag, rfft_mag)."""
    eps = _const(ctx, a["eps"], "eps")
    if eps is None:
        return None
    if isinstance(eps, bool) or not eps >= 0:
        return ctx.error(
            TypeMismatch,
            f"eps must be a number >= 0, got {eps}",
            _sp(a["eps"]) if not isinstance(a["eps"], (int, float)) else call.span,
            "e.g. eps=1e-8 (auraloss's floor of the power: a finite gradient at |X| = 0)",
        )
    return float(eps)


def _stft_mag(ctx, call, a):
    """stft_mag(x, n_fft, hop=n_fft//4, win=n_fft, over=T, eps=0): the magnitude STFT along T, as
    torch.stft(center=True, pad_mode="reflect") with a periodic Hann window of win <= n_fft."""
    if a["over"] is None:
        return ctx.error(ArityError, "stft_mag() needs over=DIM", call.span, "e.g. over=T")
    over = resolve_dims(ctx, a["over"])
    if over is None:
        return None
    if len(over) != 1:
        return ctx.error(
            DimMismatch,
            f"stft_mag() transforms exactly one dim, got {len(over)}",
            _sp(a["over"]),
            f"e.g. stft_mag(x, 1024, 256, over={over[-1]})",
        )
    size = _ints(ctx, a["n_fft"], "n_fft", 1)
    if size is None:
        return None
    # torch.stft's default hop: n_fft // 4
    hop = _ints(ctx, a["hop"], "hop", 1) if a["hop"] is not None else (max(size[0] // 4, 1),)
    if hop is None:
        return None
    win = _ints(ctx, a["win"], "win", 1) if a["win"] is not None else size
    if win is None:
        return None
    if win[0] > size[0]:
        return ctx.error(
            TypeMismatch,
            f"the window (win={win[0]}) is longer than the FFT (n_fft={size[0]})",
            _sp(a["win"]),
            "win <= n_fft: a shorter window is zero-padded to n_fft, centred (torch.stft)",
        )
    eps = _eps(ctx, call, a)
    x = _x(ctx, a["x"])
    if eps is None or x is None:
        return None
    attrs = (
        ("over", (derived_as(x.type.dims, over[0]),)),
        ("size", size),
        ("stride", hop),
        ("padding", "reflect"),
        ("center", True),
        ("win", win[0]),
        ("eps", eps),
    )
    return ctx.emit("stft_mag", (x,), attrs, span=call.span, arg_spans=(_sp(a["x"]),))


def _rfft_mag(ctx, call, a):
    """rfft_mag(x, over=N, eps=0): |rFFT(x)| along N, its N//2 + 1 bins in N's place."""
    over, eps = _one_over(ctx, call, a), _eps(ctx, call, a)
    if over is None or eps is None:
        return None
    x = _x(ctx, a["x"])
    if x is None:
        return None
    attrs = (("over", _along(x, over)), ("eps", eps))
    return ctx.emit("rfft_mag", (x,), attrs, span=call.span, arg_spans=(_sp(a["x"]),))


def _dim_args(ctx, call, a) -> tuple | None:
    """The dims listed after x in prime(x, H, W) and expand(x, H, W). A tuple there is the
    over=(H, W) form, which these do not take: the hint writes the call as they do."""
    tup = next((n for n in a["*"] if isinstance(n, ast.Tuple)), None)
    if tup is not None:
        flat = [i for n in a["*"] for i in (n.items if isinstance(n, ast.Tuple) else (n,))]
        x = _src(_sp(a["x"])) or "x"
        names = ", ".join(_src(_sp(i)) or "D" for i in flat)
        return ctx.error(
            TypeMismatch,
            f"{call.func}() takes its dims as separate arguments, not a tuple",
            _sp(tup),
            f"write `{call.func}({x}, {names})`",
        )
    dims = tuple(resolve_dim(ctx, n, f"e.g. {call.func}(x, C)") for n in a["*"])
    return None if any(d is None for d in dims) else dims


def _prime(ctx, call, a):
    """prime(x, C): prime only the listed dims (x' primes all but the summed ones), e.g. a
    per-sample Gram matrix sum(f * prime(f, C), over=S) is [B, C, C'], not [B, C, B', C']."""
    dims = _dim_args(ctx, call, a)
    if dims is None:
        return None
    if not dims:
        return ctx.error(ArityError, "prime() needs the dims to prime", call.span, "prime(x, C)")
    x = _x(ctx, a["x"])
    if x is None:
        return None
    missing = [d for d in dims if d not in x.type.dims]
    if missing:
        text = _src(_sp(a["x"])) or "x"
        return ctx.error(
            DimMismatch,
            f"cannot prime {', '.join(map(str, missing))}: the operand is {x.type}",
            call.span,
            f"prime a dim it has, e.g. `prime({text}, {x.type.dims[0]})`"
            if x.type.dims
            else f"a scalar has no dims to prime: `{text}`",
        )
    mapping = tuple((d, ctx.twin(d)) for d in dims)
    return ctx.emit("rename", (x,), (("mapping", mapping),), span=call.span)


def _expand(ctx, call, a):
    """expand(x, M): x repeated along new dims, so that unrelated dims may meet on purpose:
    expand(centers, B) - target is [C, B] (an implicit [C] - [B] is an error: usually a bug)."""
    dims = _dim_args(ctx, call, a)
    if dims is None:
        return None
    if not dims:
        return ctx.error(
            ArityError, "expand() needs the dims to add", call.span, "e.g. expand(x, B)"
        )
    x = _x(ctx, a["x"])
    if x is None:
        return None
    return ctx.emit("expand", (x,), (("dims", dims),), span=call.span, arg_spans=(_sp(a["x"]),))


def _where(ctx, call, a):
    c, x, y = _x(ctx, a["cond"]), _x(ctx, a["x"]), _x(ctx, a["y"])
    sp = (_sp(a["cond"]), _sp(a["x"]), _sp(a["y"]))
    return ctx.emit("where", (c, x, y), span=call.span, arg_spans=sp)


def _custom_grad(ctx, call, a):
    """custom_grad(y, wrt=x, grad=g): the value y, whose derivative w.r.t. x is declared to be
    g (elementwise); no gradient reaches y's or g's own inputs."""
    y, x, g = _x(ctx, a["y"]), _x(ctx, a["wrt"]), _x(ctx, a["grad"])
    sp = (_sp(a["y"]), _sp(a["wrt"]), _sp(a["grad"]))
    return ctx.emit("custom_grad", (y, x, g), span=call.span, arg_spans=sp)


def _straight_through(ctx, call, a):
    """straight_through(forward, backward): forward's value, backward's gradient (the
    identity into backward: VQ-VAE's z_e + sg(z_q - z_e) without its rounding)."""
    f, b = _x(ctx, a["forward"]), _x(ctx, a["backward"])
    sp = (_sp(a["forward"]), _sp(a["backward"]), call.span)
    return ctx.emit("custom_grad", (f, b, lit(1.0)), span=call.span, arg_spans=sp)


def _grad_reverse(ctx, call, a):
    """grad_reverse(x, scale=1): x's value, -scale times the gradient (DANN's gradient
    reversal layer; scale may be a param, as DANN's schedule of lambda)."""
    x, k = _x(ctx, a["x"]), a["scale"]
    if isinstance(k, (int, float)):  # the default
        s, ks = lit(-float(k)), call.span
    else:
        s, ks = _x(ctx, ast.Unary("-", k, _sp(k))), _sp(k)
    return ctx.emit("custom_grad", (x, x, s), span=call.span, arg_spans=(_sp(a["x"]),) * 2 + (ks,))


_CTC_ARGS = ("log_probs", "targets", "input_lengths", "target_lengths", "blank", "log_epsilon")


def _ctc_nll(ctx, call, a):
    """ctc_nll(log_probs, targets, input_lengths, target_lengths, blank=0, log_epsilon=-1e5):
    CTC's per-sequence negative log-likelihood, [B]. T is log_probs' dim that is neither the
    batch (the lengths' dim) nor the classes (the targets' `of`)."""
    args, spans = [], []
    for name in _CTC_ARGS:
        v = a[name]
        if isinstance(v, (int, float)):  # a default
            args.append(lit(v))
            spans.append(call.span)
        else:
            args.append(_x(ctx, v))
            spans.append(_sp(v))
    if any(x is None for x in args):
        return None
    lp, tg, il = args[:3]
    if lp.type.dtype == "int":  # the recurrence computes in float
        args[0] = lp = ctx.emit("to_float", (lp,), span=spans[0])
    rest = [
        d for d in lp.type.dims if d not in il.type.dims + ((tg.type.of,) if tg.type.of else ())
    ]
    if len(rest) != 1:
        return ctx.error(
            DimMismatch,
            f"ctc_nll's log_probs are over frames, batch and classes, found {lp.type}",
            spans[0],
            "log_probs: float[T, B, C] with targets: index[B, L] of C and lengths int[B]",
        )
    return ctx.emit("ctc_nll", args, (("over", (rest[0],)),), span=call.span, arg_spans=spans)


def _clamp(ctx, call, a):
    x = _x(ctx, a["x"])
    if a["min"] is None and a["max"] is None:
        return ctx.error(ArityError, "clamp() needs min= or max=", call.span, "clamp(x, min=1e-7)")
    if a["min"] is not None:
        x = ctx.emit("maximum", (x, _x(ctx, a["min"])), span=call.span)
    if a["max"] is not None:
        x = ctx.emit("minimum", (x, _x(ctx, a["max"])), span=call.span)
    return x


def _logsigmoid(ctx, call, a):
    """log(sigmoid(x)) = -softplus(-x), finite for any x."""
    x = _x(ctx, a["x"])
    nx = ctx.emit("neg", (x,), span=call.span)
    return ctx.emit("neg", (ctx.emit("softplus", (nx,), span=call.span),), span=call.span)


def _norm(ctx, call, a):
    """The L2 norm, with torch's zero (not NaN) gradient at the zero vector: sqrt is never
    evaluated at an exact zero. Only s == 0 is guarded (not `s > 0`): a NaN sum of squares
    must stay NaN, as torch's x.norm() gives. p= other than the literal 2: _lp_norm."""
    over = _over(ctx, a)
    if over is None:
        return None
    x = _reduce_operand(ctx, a, over)
    if not _is_two(a["p"]):
        return _lp_norm(ctx, call, a, x, _all_dims(x, over))
    sq = ctx.emit("mul", (x, x), span=call.span, arg_spans=(_sp(a["x"]), _sp(a["x"])))
    over = _all_dims(sq, over)
    s = ctx.emit("sum", (sq,), (("over", over),), span=call.span) if over else sq
    zero = ctx.emit("eq", (s, lit(0.0)), span=call.span)
    root = ctx.emit(
        "sqrt", (ctx.emit("where", (zero, lit(1.0), s), span=call.span),), span=call.span
    )
    return ctx.emit("where", (zero, lit(0.0), root), span=call.span)


def _is_two(node) -> bool:
    """p= left at its default or written as the number 2: the L2 forms."""
    return (node if isinstance(node, (int, float)) else const_eval(node)) == 2


def _lp_norm(ctx, call, a, x, over):
    """(sum |x|^p)^(1/p) for p >= 1 (torch.linalg.vector_norm's ord, torch.cdist's p; p may
    be a param), scaled by m = max |x|: m (sum (|x| / m)^p)^(1/p). The scaled terms lie in
    [0, 1], so no power overflows or underflows to a wrong 0, and the sum is at least 1 (its
    root has a finite gradient). The norm does not depend on the scale (its derivative in m
    is 0), so m carries no gradient: jax's max rule divides by the count of entries equal to
    the max, which a fusion that recomputes |x| in other bits leaves at 0 (NaN gradients under
    jax.jit, measured). p = inf is m, with torch's gradient: sign(x) split over the entries at
    the max. The zero vector is 0 with a zero gradient, as torch's; an infinite entry gives
    inf. The max needs one entry: over an empty dim this norm is an InputError (torch's
    inf-norm raises there too), where the L2 form is 0."""
    p = _x(ctx, a["p"])
    if x is None or p is None:
        return None
    if p.type.dims or p.type.dtype not in ("float", "int"):
        return ctx.error(
            TypeMismatch,
            f"p must be a number (a literal or a param), found {p.type}",
            _sp(a["p"]),
            "the norm's order, one for the whole norm: e.g. p=1, p=inf, or p=p with "
            "`param p: float = 2 where p >= 1`",
        )
    v = const_eval(a["p"])
    if v is not None and not v >= 1:
        return ctx.error(
            TypeMismatch,
            f"p must be at least 1, got {v}",
            _sp(a["p"]),
            "a p-norm needs p >= 1 (p = inf is the max norm); p < 1 is not a norm",
        )
    sp = call.span

    def e(op, *args, attrs=()):
        return ctx.emit(op, args, attrs, span=sp)

    ax = ctx.emit("abs", (x,), span=sp, arg_spans=(_sp(a["x"]),))
    if not over:  # a scalar's norm
        return ax
    on = (("over", over),)
    m = e("stop_grad", e("max", ax, attrs=on))
    zero = e("eq", m, lit(0.0))
    ms = e("where", zero, lit(1.0), m)
    inf = e("eq", p, lit(math.inf))
    pf = e("where", inf, lit(2.0), p)
    # r^p as exp(p log r), r = 0 apart: no pow rule at 0 (x^y's gradient has x^(y - 1))
    r = e("div", ax, ms)
    pos = e("gt", r, lit(0.0))
    rp = e("exp", e("mul", pf, e("log", e("where", pos, r, lit(1.0)))))
    s = e("where", zero, lit(1.0), e("sum", e("where", pos, rp, lit(0.0)), attrs=on))
    general = e("mul", ms, e("exp", e("div", e("log", s), pf)))
    # p = inf: m plus a zero whose gradient is sign(x) / (the entries at the max)
    at = e("to_float", e("eq", ax, m))
    w = e("div", at, e("maximum", e("sum", at, attrs=on), lit(1.0)))
    slope = e("sum", e("mul", w, e("sub", ax, e("stop_grad", ax))), attrs=on)
    norm = e("where", inf, e("add", m, slope), general)
    norm = e("where", e("eq", m, lit(math.inf)), m, norm)
    return e("where", zero, lit(0.0), norm)


def _normalize(ctx, call, a):
    """x / max(||x||, eps) as in F.normalize, written x / sqrt(max(||x||^2, eps^2)) so that a
    zero vector has a zero (not NaN) gradient: sqrt is never evaluated at 0. p= other than 2:
    x / max(||x||_p, eps) with _lp_norm's p-norm (F.normalize's p)."""
    if a["over"] is None:
        return ctx.error(
            ArityError, "normalize() needs over=DIM", call.span, "normalize(z, over=D)"
        )
    over = resolve_dims(ctx, a["over"])
    eps = _const(ctx, a["eps"], "eps")
    if over is None or eps is None:
        return None
    x = _x(ctx, a["x"])
    if not _is_two(a["p"]):
        n = _lp_norm(ctx, call, a, x, over)
        if n is None:
            return None
        n = ctx.emit("maximum", (n, lit(float(eps))), span=call.span)
        return ctx.emit("div", (x, n), span=call.span)
    sq = ctx.emit("mul", (x, x), span=call.span, arg_spans=(_sp(a["x"]), _sp(a["x"])))
    s = ctx.emit("sum", (sq,), (("over", over),), span=call.span, arg_spans=(_sp(a["x"]),))
    s = ctx.emit("maximum", (s, lit(float(eps) ** 2)), span=call.span)
    return ctx.emit("div", (x, ctx.emit("sqrt", (s,), span=call.span)), span=call.span)


def _onehot(ctx, call, a):
    idx = _x(ctx, a["x"])
    if idx is None:
        return None
    if idx.type.of is None:
        return ctx.error(
            TypeMismatch,
            f"onehot() needs an index tensor (index[...] of C), found {idx.type}",
            _sp(a["x"]),
            "declare the input as `index[B] of C`",
        )
    dim = idx.type.of if a["dim"] is None else resolve_dim(ctx, a["dim"])
    return ctx.emit("onehot", (idx,), (("dim", dim),), span=call.span, arg_spans=(_sp(a["x"]),))


def _eye(ctx, call, a):
    nodes = (a["a"], a["b"])
    dims = tuple(resolve_dim(ctx, n) for n in nodes)
    if None in dims:
        return None
    d0, d1 = dims
    if not d0.twin_of(d1):
        return ctx.error(
            DimMismatch,
            f"eye() needs a dim and its primed twin, got {d0} and {d1}",
            call.span,
            f"e.g. eye({d0.name}, {d0.name}')",
        )
    return ctx.emit("eye", (), (("dims", dims),), span=call.span)


def _arange(ctx, call, a):
    """arange(K): the positions 0 .. size(K) - 1, an index into K (for masks like j <= k)."""
    d = resolve_dim(ctx, a["dim"])
    return None if d is None else ctx.emit("arange", (), (("dim", d),), span=call.span)


def _size(ctx, call, a):
    d = resolve_dim(ctx, a["dim"])
    return None if d is None else ctx.emit("size", (), (("dim", d),), span=call.span)


def _xlogy(ctx, call, a):
    x, y = _x(ctx, a["x"]), _x(ctx, a["y"])
    return ctx.emit("xlogy", (x, y), span=call.span, arg_spans=(_sp(a["x"]), _sp(a["y"])))


# ---- order along one dim: scans, sorts, ranks, quantiles ------------------------------------


def _one_over(ctx: Ctx, call: ast.Call, a: dict) -> tuple[Dim, ...] | None:
    """The single dim of over= (required) of an order function."""
    if a["over"] is None:
        return ctx.error(
            ArityError, f"{call.func}() needs over=DIM", call.span, f"e.g. {call.func}(x, over=N)"
        )
    over = resolve_dims(ctx, a["over"])
    if over is None:
        return None
    if len(over) != 1:
        return ctx.error(
            DimMismatch,
            f"{call.func}() works along exactly one dim, got {len(over)}",
            _sp(a["over"]),
            f"pick the one dim, e.g. {call.func}(x, over={over[-1]})",
        )
    return over


def _flag(ctx: Ctx, a: dict, name: str) -> bool | None:
    """A compile-time true/false option (reverse=true, descending=true)."""
    v = a[name]
    if isinstance(v, bool):
        return v
    c = const_eval(v)
    if not isinstance(c, bool):
        return ctx.error(
            TypeMismatch,
            f"{name} must be true or false",
            _sp(v),
            f"{name} is fixed when the spec compiles: write {name}=true",
        )
    return c


def _scan(op: str) -> tuple[Sig, Callable]:
    """cumsum(x, over=N, reverse=false): running sum (product, max, log-sum-exp) along N."""

    def h(ctx, call, a):
        over, rev = _one_over(ctx, call, a), _flag(ctx, a, "reverse")
        if over is None or rev is None:
            return None
        x = _x(ctx, a["x"])
        over = _along(x, over)
        attrs = (("over", over), ("reverse", rev))
        return ctx.emit(op, (x,), attrs, span=call.span, arg_spans=(_sp(a["x"]),))

    return Sig(("x", "over", "reverse"), (("over", None), ("reverse", False))), h


def _shift(ctx, call, a):
    """shift(x, k, over=N, fill=0): x moved k entries along N (later entries for k > 0, earlier
    for k < 0), the k entries it leaves at the edge filled (a recurrence's previous position:
    CTC's alpha at s - 1 is shift(alpha, 1, over=S, fill=-inf))."""
    over = _one_over(ctx, call, a)
    if over is None:
        return None
    k = _const(ctx, a["by"], "the shift")
    fill = None if a["fill"] is None else _const(ctx, a["fill"], "fill")
    if k is None or (fill is None and a["fill"] is not None):
        return None
    if isinstance(k, bool) or not isinstance(k, int):
        return ctx.error(
            TypeMismatch,
            f"shift() moves x by a whole number of entries, got {k}",
            _sp(a["by"]),
            "e.g. shift(x, 1, over=N) (x[n - 1] at n) or shift(x, -1, over=N) (x[n + 1])",
        )
    x = _x(ctx, a["x"])
    if x is None:
        return None
    if fill is None:  # the default: nothing there (false for a mask)
        fill = False if x.type.dtype == "bool" else 0
    if (x.type.dtype == "bool") != isinstance(fill, bool):
        return ctx.error(
            TypeMismatch,
            f"shift() of {x.type} fills with a value of its dtype, got {fill}",
            _sp(a["fill"]),
            "fill=false for a mask, a number otherwise: shift float(x) to fill it with one"
            if x.type.dtype == "bool"
            else "fill with a number",
        )
    if x.type.dtype == "int" and not (math.isfinite(fill) and fill == int(fill)):
        # an int x filled with a non-integer (-inf): the result is float, as x's values
        x = ctx.emit("to_float", (x,), span=call.span)
    elif x.type.dtype == "int":
        fill = int(fill)
    attrs = (("over", _along(x, over)), ("steps", k), ("value", fill))
    return ctx.emit("shift", (x,), attrs, span=call.span, arg_spans=(_sp(a["x"]),))


def _sort_fn(ctx, call, a):
    """sort(x, over=N, descending=false, by=k): x in ascending (descending) order along N, or
    x permuted as the stable sort of the key k permutes k (ties keep their order)."""
    over, desc = _one_over(ctx, call, a), _flag(ctx, a, "descending")
    if over is None or desc is None:
        return None
    x = _x(ctx, a["x"])
    over = _along(x, over)
    attrs = (("over", over), ("descending", desc))
    if a["by"] is None:
        return ctx.emit("sort", (x,), attrs, span=call.span, arg_spans=(_sp(a["x"]),))
    # x at the positions that sort the key: one argsort per key (CSE shares it between
    # sort(e, by=e) and sort(g, by=e): Lovász sorts the errors and the labels by one order)
    k = _x(ctx, a["by"])
    idx = ctx.emit("argsort", (k,), attrs, span=call.span, arg_spans=(_sp(a["by"]),))
    sp = (_sp(a["x"]), _sp(a["by"]))
    return ctx.emit("take_along", (x, idx), (("over", over),), span=call.span, arg_spans=sp)


def _rank_fn(ctx, call, a):
    over = _one_over(ctx, call, a)
    if over is None:
        return None
    x = _x(ctx, a["x"])
    over = _along(x, over)
    return ctx.emit("rank", (x,), (("over", over),), span=call.span, arg_spans=(_sp(a["x"]),))


def _topk(ctx, call, a):
    over = _one_over(ctx, call, a)
    if over is None:
        return None
    x, k = _x(ctx, a["x"]), _x(ctx, a["k"])
    over = _along(x, over)
    sp = (_sp(a["x"]), _sp(a["k"]))
    return ctx.emit("topk", (x, k), (("over", over),), span=call.span, arg_spans=sp)


def _quantile_fn(ctx, call, a):
    """quantile(x, q, over=N): numpy's linear quantile; median is q = 0.5."""
    over = _one_over(ctx, call, a)
    if over is None:
        return None
    if call.func == "median":
        q = lit(0.5)
    else:
        v = const_eval(a["q"])
        if v is not None and not isinstance(v, bool) and not 0 <= v <= 1:
            return ctx.error(
                TypeMismatch, f"q must be in [0, 1], got {v}", _sp(a["q"]), "e.g. q=0.9"
            )
        q = _x(ctx, a["q"])
    # a reduction (it drops over): a prime inside leaves that dim alone, as in sum(z', over=B)
    x = _reduce_operand(ctx, a, over)
    over = _along(x, over)
    sp = (_sp(a["x"]), _sp(a.get("q")) if a.get("q") is not None else None)
    return ctx.emit("quantile", (x, q), (("over", over),), span=call.span, arg_spans=sp)


FUNCTIONS: dict[str, tuple[Sig, Callable]] = {
    **{
        name: _unary(op)
        for name, op in {
            "exp": "exp",
            "log": "log",
            "log1p": "log1p",
            "expm1": "expm1",
            "sqrt": "sqrt",
            "abs": "abs",
            "sigmoid": "sigmoid",
            "softplus": "softplus",
            "relu": "relu",
            "erf": "erf",
            "tanh": "tanh",
            "sin": "sin",
            "cos": "cos",
            "atan": "atan",
            "asin": "asin",
            "acos": "acos",
            "log2": "log2",
            "log10": "log10",
            "sinh": "sinh",
            "cosh": "cosh",
            "asinh": "asinh",
            "acosh": "acosh",
            "atanh": "atanh",
            "lgamma": "lgamma",
            "digamma": "digamma",
            "sign": "sign",
            "stop_grad": "stop_grad",
            "float": "to_float",
        }.items()
    },
    "logsigmoid": (Sig(("x",)), _logsigmoid),
    "pow": _binary("pow"),
    "xlogy": (Sig(("x", "y")), _xlogy),
    "atan2": _binary("atan2", ("y", "x")),
    "log_ive": _binary("log_ive", ("v", "x")),
    "logaddexp": _binary("logaddexp", ("a", "b")),
    **{name: _rounding(name) for name in ("floor", "ceil", "round")},
    "where": (Sig(("cond", "x", "y")), _where),
    "prime": (Sig(("x",), variadic=True), _prime),
    "expand": (Sig(("x",), variadic=True), _expand),
    "diff": _axis_op("diff"),
    "shift": (Sig(("x", "by", "over", "fill"), (("over", None), ("fill", None))), _shift),
    "clamp": (Sig(("x", "min", "max"), (("min", None), ("max", None))), _clamp),
    "custom_grad": (Sig(("y", "wrt", "grad")), _custom_grad),
    "straight_through": (Sig(("forward", "backward")), _straight_through),
    "grad_reverse": (Sig(("x", "scale"), (("scale", 1.0),)), _grad_reverse),
    "ctc_nll": (Sig(_CTC_ARGS, (("blank", 0), ("log_epsilon", -100000.0))), _ctc_nll),
    "max": _minmax("max", "maximum"),
    "min": _minmax("min", "minimum"),
    "sum": _reduction("sum"),
    "logsumexp": _reduction("logsumexp"),
    "var": _reduction("var", (("ddof", 0),)),
    "mean": (
        Sig(("x", "over", "mask", "empty"), (("over", None), ("mask", None), ("empty", None))),
        _mean,
    ),
    "count": (Sig(("x", "over"), (("over", None),)), _count_fn),
    "norm": (Sig(("x", "over", "p"), (("over", None), ("p", 2))), _norm),
    "normalize": (
        Sig(("x", "over", "eps", "p"), (("over", None), ("eps", 1e-12), ("p", 2))),
        _normalize,
    ),
    "argmax": _axis_op("argmax"),
    "unstack": (UNSTACK, _unstack_alone),
    "take": (Sig(("x", "index", "over"), (("over", None),)), _take),
    "eigvalsh": (Sig(("x", "over")), lambda ctx, call, a: _eigvalsh(ctx, call, a)),
    "softmax": _axis_op("softmax"),
    "log_softmax": _axis_op("log_softmax"),
    "onehot": (Sig(("x", "dim"), (("dim", None),)), _onehot),
    "eye": (Sig(("a", "b")), _eye),
    "size": (Sig(("dim",)), _size),
    "arange": (Sig(("dim",)), _arange),
    **{name: _scan(name) for name in ("cumsum", "cumprod", "cummax", "logcumsumexp")},
    "sort": (
        Sig(
            ("x", "over", "descending", "by"), (("over", None), ("descending", False), ("by", None))
        ),
        _sort_fn,
    ),
    "rank": (Sig(("x", "over"), (("over", None),)), _rank_fn),
    "topk": (Sig(("x", "k", "over"), (("over", None),)), _topk),
    "median": (Sig(("x", "over"), (("over", None),)), _quantile_fn),
    "quantile": (Sig(("x", "q", "over"), (("over", None),)), _quantile_fn),
    "blur": _window(
        "blur",
        Sig(
            ("x", "over", "sigma", "size", "padding", "stride"),
            (("over", None), ("sigma", 1.5), ("size", 11), _VALID, ("stride", 1)),
        ),
    ),
    "box": _window(
        "box",
        Sig(("x", "size", "over", "padding", "stride"), (("over", None), _VALID, ("stride", 1))),
    ),
    "conv": _window(
        "conv",
        Sig(("x", "kernel", "over", "padding", "stride"), (("over", None), _VALID, ("stride", 1))),
    ),
    "stft_mag": (
        Sig(
            ("x", "n_fft", "hop", "win", "over", "eps"),
            (("hop", None), ("win", None), ("over", None), ("eps", 0.0)),
        ),
        _stft_mag,
    ),
    "rfft_mag": (Sig(("x", "over", "eps"), (("over", None), ("eps", 0.0))), _rfft_mag),
    "split": (
        Sig(("x", "size", "over", "groups"), (("size", None), ("over", None), ("groups", None))),
        _split,
    ),
    "merge": (Sig(("x", "over"), (("over", None),)), _merge),
    "frames": (
        Sig(
            ("x", "size", "hop", "over", "padding", "center"),
            (("hop", None), ("over", None), ("padding", None), ("center", False)),
        ),
        _frames,
    ),
    **{
        name: _window(
            name,
            Sig(
                ("x", "size", "over", "stride", "padding"),
                (("over", None), ("stride", None), _VALID),
            ),
        )
        for name in ("avg_pool", "max_pool")
    },
}
