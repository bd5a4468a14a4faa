"""fold: evaluate equations whose arguments are all literals (the op table's numpy meaning).
simplify: algebraic identities that delete work, each row with its reason."""

from __future__ import annotations

import math

from lossdsl.errors import ConstantError
from lossdsl.ir import Atom, Eqn, Lit, Program
from lossdsl.ops import FOLDABLE_KINDS, OPS, FoldError, fold_value
from lossdsl.passes.rewrite import Rewriter, Row, is_lit, run_rules
from lossdsl.types import TensorType


def _const_value(rw: Rewriter, a: Atom):
    """The constant an atom holds everywhere: a literal's value, a fill's value, else None."""
    if isinstance(a, Lit):
        return a.value
    f = rw.producer(a, "fill")
    return None if f is None else f.attr("value")


def _absent(rw: Rewriter, a: Atom) -> bool:
    """Whether an atom is made of absent optional inputs only (a fill marked `absent`: the
    default of an input not passed, or a constant folded from such fills and literals)."""
    f = rw.producer(a, "fill")
    return f is not None and bool(f.attr("absent"))


def _constant(rw: Rewriter, t: TensorType, v, absent: bool = False) -> Atom | None:
    """`v` as a value of type `t`: a literal for a scalar, else a fill (None: a fill cannot
    carry an index's `of`); `absent` marks a fill folded from absent inputs' fills."""
    v = {"float": float, "int": int, "bool": bool}[t.dtype](v)
    if not t.dims:
        return Lit(v, t)
    attrs = (("dims", t.dims), ("value", v), ("dtype", t.dtype))
    f = rw.emit("fill", (), attrs + ((("absent", True),) if absent else ()))
    return f if f.type == t else None


def _fold_value(e: Eqn, values: list):
    # A float that overflows here is no constant the user wrote (those fail at parse, README
    # "Params"): an absent input's default or a baked param went through, and the value is the
    # inf the backends would compute at run time (compile(w=...) and passing w agree).
    try:
        return fold_value(e.op, values, e.attrs, e.out.type.dtype, overflow="ieee")
    except FoldError as err:  # a baked param made an int outside int64
        raise ConstantError(err.message, e.span, err.hint) from None


def _fold(rw: Rewriter, e: Eqn) -> Atom | None:
    """Elementwise ops on constants (literals, or fills from absent optional inputs), and
    reductions of a literal: evaluated now (the op table's numpy meaning, ints exact), so that no
    framework op is ever handed Python numbers alone (torch.where(False, ...) is a TypeError)."""
    op = OPS[e.op]
    if op.kind not in FOLDABLE_KINDS or not e.args:
        return None
    if op.kind == "reduce" and not isinstance(e.args[0], Lit):
        return None
    values = [_const_value(rw, a) for a in e.args]
    if any(v is None for v in values):
        return _partial(rw, e, values)
    absent = any(_absent(rw, a) for a in e.args)
    return _constant(rw, e.out.type, _fold_value(e, values), absent)


def _partial(rw: Rewriter, e: Eqn, values: list) -> Atom | None:
    """Some arguments constant: a constant condition picks its branch, a constant side of
    & and | decides or drops out, a constant denominator of safe_div is tested now."""
    if e.op == "where" and values[0] is not None:
        return _broadcast(rw, e, e.args[1] if values[0] else e.args[2])
    if e.op in ("and", "or"):
        for i in (0, 1):
            v = values[i]
            if v is None:
                continue
            if bool(v) == (e.op == "or"):  # x | true, x & false: the constant decides
                return _constant(rw, e.out.type, v)
            return _broadcast(rw, e, e.args[1 - i])  # x & true, x | false: x
    if e.op == "safe_div" and values[1] is not None:
        if values[1] == 0:
            return _constant(rw, e.out.type, e.attr("empty"))
        return _broadcast(rw, e, rw.emit("div", e.args[:2]))
    return None


def _broadcast(rw: Rewriter, e: Eqn, a: Atom) -> Atom | None:
    """`a` as a value of exactly `e`'s type (dtype, dims and their order), to replace `e`."""
    t = e.out.type
    if a.type == t:
        return a
    v = _const_value(rw, a)
    if v is not None:
        return _constant(rw, t, v, _absent(rw, a))
    if t.dtype == "float" and a.type.dtype != "float":
        a = rw.emit("to_float", (a,))
    missing = tuple(d for d in t.dims if d not in a.type.dims)
    if missing and a.type.dims:
        a = rw.emit("expand", (a,), (("dims", missing),))
    if a.type.dims != t.dims and sorted(map(str, a.type.dims)) == sorted(map(str, t.dims)):
        a = rw.emit("transpose", (a,), (("dims", t.dims),))
    if a.type == t:
        return a
    # Not reachable by those (a scalar param broadcast over dims, an index's `of`): `e` itself,
    # its Python-bool literals made masks (frameworks take a mask, never a Python bool).
    if not any(isinstance(x, Lit) and x.type.dtype == "bool" for x in e.args):
        return None
    args = []
    for x in e.args:
        if isinstance(x, Lit) and x.type.dtype == "bool":
            x = _constant(rw, TensorType("bool", t.dims), x.value)
        args.append(x)
    new = rw.emit(e.op, tuple(args), e.attrs)
    return new if new.type == t else None


def fold(prog: Program) -> Program:
    return run_rules(prog, _fold)


def _same(e: Eqn, a: Atom) -> Atom | None:
    """`a` replaces `e` only if nothing downstream can tell: same dtype and dims."""
    return a if a.type == e.out.type else None


def _identity(op: str, unit, side: tuple[int, ...] = (0, 1)):
    def fn(rw, e):
        if e.op != op:
            return None
        for i in side:
            if is_lit(e.args[i], unit):
                return _same(e, e.args[1 - i])
        return None

    return fn


def _double_neg(rw, e):
    inner = rw.producer(e.args[0], "neg") if e.op == "neg" else None
    return _same(e, inner.args[0]) if inner else None


def _pow_zero_times(rw, e):
    if e.op != "mul":
        return None
    for i in (0, 1):
        p = rw.producer(e.args[i], "pow")
        if p is not None and is_lit(p.args[1], 0):
            return _same(e, e.args[1 - i])
    return None


def _fill_value(rw, a):
    f = rw.producer(a, "fill")
    return None if f is None else f.attr("value")


def _mul_fill_one(rw, e):
    if e.op != "mul":
        return None
    for i in (0, 1):
        v = _fill_value(rw, e.args[i])
        if v == 1 and not isinstance(v, bool):
            return _same(e, e.args[1 - i])
    return None


def _gather_fill(rw, e):
    f = rw.producer(e.args[0], "fill") if e.op in ("gather", "take_along") else None
    if f is None:
        return None
    t = e.out.type
    return _constant(rw, t, f.attr("value"), bool(f.attr("absent")))


def _sum_fill(rw, e):
    """sum(fill(v), over=all its dims) = v * the product of their sizes: no tensor, and no
    collective when a dim is sharded (the size of B is known on every rank; a weighted mean
    by an absent weight's fill needed an all_reduce of its count)."""
    f = rw.producer(e.args[0], "fill") if e.op == "sum" else None
    if f is None or e.out.type.dims or e.out.type.dtype not in ("float", "int"):
        return None
    dims = f.out.type.dims
    if not dims or set(e.attr("over") or ()) != set(dims) or any(d.variadic for d in dims):
        return None
    n = rw.emit("size", (), (("dim", dims[0]),))
    for d in dims[1:]:
        n = rw.emit("mul", (n, rw.emit("size", (), (("dim", d),))))
    if e.out.type.dtype == "float":
        n = rw.emit("to_float", (n,))
    v = f.attr("value")
    out = n if v == 1 else rw.emit("mul", (Lit(v, TensorType(e.out.type.dtype)), n))
    return out if out.type == e.out.type else None


def _where_const(rw, e):
    if e.op == "where" and isinstance(e.args[0], Lit):
        return _same(e, e.args[1] if e.args[0].value else e.args[2])
    return None


def _no_steps(rw, e):
    """repeat(n, init) with a literal n <= 0 takes no step: its state is its init. (Left for
    hoist, its body's invariant part would run anyway; under jax.grad a zero cotangent through
    an invariant with an infinite derivative there, x / 0, is NaN: difffuzz, seed 3.)"""
    if e.op == "repeat" and isinstance(e.args[0], Lit) and e.args[0].value <= 0:
        return _same(e, e.args[1 + e.attr("out")])
    return None


def _mask_to_float(rw, e):
    """where(c, 1, 0) with a constant-one branch (a literal or an absent weight's fill)."""
    if e.op != "where" or not is_lit(e.args[2], 0) and not is_lit(e.args[2], 0.0):
        return None
    one = e.args[1]
    if is_lit(one, 1) or (_fill_value(rw, one) == 1 and not isinstance(_fill_value(rw, one), bool)):
        if e.out.type.dtype == "float" and e.args[0].type.dims == e.out.type.dims:
            return rw.emit("to_float", (e.args[0],))
    return None


# Ops whose result is finite whatever their (finite-or-not) arguments: a 0/1 mask as numbers, a
# one-hot, an identity matrix, a dim's size.
_ALWAYS_FINITE = frozenset({"to_float", "onehot", "eye", "size"})


def _finite(rw: Rewriter, a: Atom) -> bool:
    """Whether an atom is finite for every input: an int or bool (no inf or NaN there), a finite
    constant, or the result of an op that is always finite."""
    if a.type.dtype != "float":
        return True
    v = _const_value(rw, a)
    if v is not None:
        return math.isfinite(v)
    return any(rw.producer(a, op) is not None for op in _ALWAYS_FINITE)


def _times_zero(rw, e):
    zero_at = (0, 1) if e.op == "mul" else (0,) if e.op == "div" else ()
    if e.op == "div" and rw.producer(e.args[1], "size") is None:
        return None  # 0 / x is NaN at x = 0; a dim's size is never 0 when there is data
    for i in zero_at:
        v = _const_value(rw, e.args[i])
        # a zero made of absent optional inputs ((pos_weight - 1) with pos_weight at its
        # default): that term is absent, whatever the other factor (docs/language.md). Any other
        # zero (a baked param, a masked mean's empty value) times inf stays NaN.
        absent = _absent(rw, e.args[i])
        if (
            v is not None
            and not isinstance(v, bool)
            and v == 0
            and (absent or _finite(rw, e.args[1 - i]))
        ):
            return _constant(rw, e.out.type, 0, absent)  # still absent: its term drops too
    return None


def _plus_fill_zero(rw, e):
    if e.op not in ("add", "sub"):
        return None
    sides = (0, 1) if e.op == "add" else (1,)
    for i in sides:
        v = _fill_value(rw, e.args[i])
        if v == 0 and not isinstance(v, bool):
            return _same(e, e.args[1 - i])
    return None


def _square(rw, e):
    if e.op == "pow" and is_lit(e.args[1], 2) and e.args[0].type.dtype == "float":
        return rw.emit("mul", (e.args[0], e.args[0]))
    return None


def _scalar(a: Atom) -> bool:
    return a.type.is_scalar and a.type.dtype in ("float", "int")


def _gather_scalars(rw, e):
    """s * (t * x), s * (x / t), s * -x, (s * x) / t, -(s * x): the scalar factors meet in
    one coefficient (Python arithmetic, or a 0-d op) and x is scaled once."""
    if e.op == "mul":
        for s, x in (e.args, e.args[::-1]):
            inner = rw.defn(x)
            if not _scalar(s) or _scalar(x) or inner is None or rw.uses[x.name] != 1:
                continue
            if inner.op == "neg":
                return _same(e, rw.emit("mul", (rw.emit("neg", (s,)), inner.args[0])))
            if inner.op not in ("mul", "div"):
                continue
            a, b = inner.args
            if inner.op == "mul" and (_scalar(a) or _scalar(b)):
                t, y = (a, b) if _scalar(a) else (b, a)
                return _same(e, rw.emit("mul", (rw.emit("mul", (s, t)), y)))
            if inner.op == "div" and _scalar(b) and not _scalar(a):
                return _same(e, rw.emit("mul", (rw.emit("div", (s, b)), a)))
        return None
    if e.op in ("div", "neg") and not _scalar(e.args[0]) and rw.uses[e.args[0].name] == 1:
        inner = rw.producer(e.args[0], "mul")
        if inner is None or (e.op == "div" and not _scalar(e.args[1])):
            return None
        for s, y in (inner.args, inner.args[::-1]):
            if _scalar(s) and not _scalar(y):
                c = rw.emit("div", (s, e.args[1])) if e.op == "div" else rw.emit("neg", (s,))
                return _same(e, rw.emit("mul", (c, y)))
    return None


SIMPLIFY_RULES: tuple[Row, ...] = (
    Row(
        "fold",
        "constants the rules below make (0 * x -> 0, then 0 / 2) are folded too: no framework "
        "op is handed Python numbers alone",
        _fold,
        tuple(n for n, o in OPS.items() if o.kind in FOLDABLE_KINDS),
    ),
    Row("x + 0 -> x", "adding zero changes nothing", _identity("add", 0), ("add",)),
    Row("x - 0 -> x", "subtracting zero changes nothing", _identity("sub", 0, (1,)), ("sub",)),
    Row("x * 1 -> x", "multiplying by one changes nothing", _identity("mul", 1), ("mul",)),
    Row("x / 1 -> x", "dividing by one changes nothing", _identity("div", 1, (1,)), ("div",)),
    Row("x ^ 1 -> x", "the first power is the identity", _identity("pow", 1, (1,)), ("pow",)),
    Row("-(-x) -> x", "negation is an involution", _double_neg, ("neg",)),
    Row(
        "x^0 * y -> y",
        "x^0 = 1 everywhere, 0^0 included (torch, jax and numpy agree): focal with gamma=0 is CE",
        _pow_zero_times,
        ("mul",),
    ),
    Row("fill(1) * x -> x", "an absent optional weight multiplies by one", _mul_fill_one, ("mul",)),
    Row(
        "fill(v)[i] -> fill(v)",
        "gathering from a constant, or sorting one (an absent mask), gives the constant",
        _gather_fill,
        ("gather", "take_along"),
    ),
    Row(
        "sum(fill(v)) -> v * size",
        "a constant summed over all its dims is a count times it (no tensor, no collective)",
        _sum_fill,
        ("sum",),
    ),
    Row(
        "where(true, a, b) -> a", "a constant condition picks one branch", _where_const, ("where",)
    ),
    Row(
        "repeat(0, init) -> init",
        "a loop of no steps leaves its state as it was",
        _no_steps,
        ("repeat",),
    ),
    Row(
        "where(c, 1, 0) -> float(c)",
        "a mask as numbers: one cast instead of a constant tensor and a select",
        _mask_to_float,
        ("where",),
    ),
    Row(
        "0 * x -> 0 (x finite, or an absent input's 0), 0 / size(D) -> 0",
        "a zero times a finite value is zero; a term that may be inf or NaN stays (0 * inf is "
        "NaN, as IEEE arithmetic and the docs say, whether the zero is baked or passed), "
        "unless an absent optional input made the zero: its term is absent",
        _times_zero,
        ("mul", "div"),
    ),
    Row(
        "x + fill(0) -> x", "adding an absent term changes nothing", _plus_fill_zero, ("add", "sub")
    ),
    Row(
        "x^2 -> x*x",
        "one multiply instead of a pow kernel, with the same gradient",
        _square,
        ("pow",),
    ),
    Row(
        "s * (t * x) -> (s * t) * x",
        "one multiply of the tensor where scalar factors (and negations, and divisions by a "
        "scalar) were one kernel each, forward and backward",
        _gather_scalars,
        ("mul", "div", "neg"),
    ),
    Row("x & true -> x", "true is the unit of and", _identity("and", True), ("and",)),
    Row("x | false -> x", "false is the unit of or", _identity("or", False), ("or",)),
)


def simplify(prog: Program) -> Program:
    return run_rules(prog, SIMPLIFY_RULES)
