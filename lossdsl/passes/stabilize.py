"""stabilize: the rewrites that loss libraries rediscovered one NaN report at a time.

Each row keeps the value (the tests check it on random inputs against the numpy reference) and
removes an overflow, an underflow to log(0), or a cancellation."""

from __future__ import annotations

from lossdsl.ir import Eqn, Lit, Program
from lossdsl.passes.rewrite import Rewriter, Row, is_lit, run_rules
from lossdsl.types import TensorType


def _log_of(op: str):
    def fn(rw: Rewriter, e: Eqn):
        return rw.producer(e.args[0], op) if e.op == "log" else None

    return fn


def _log_softmax(rw, e):
    s = _log_of("softmax")(rw, e)
    return rw.emit("log_softmax", s.args, s.attrs) if s else None


def _log_sigmoid(rw, e):
    s = _log_of("sigmoid")(rw, e)
    if s is None:
        return None
    return rw.emit("neg", (rw.emit("softplus", (rw.emit("neg", s.args),)),))


def _one_minus(rw, a, op: str):
    """If `a` is 1 - op(x), the op's equation."""
    d = rw.producer(a, "sub")
    if d is None or not is_lit(d.args[0], 1):
        return None
    return rw.producer(d.args[1], op)


def _log_one_minus_sigmoid(rw, e):
    s = _one_minus(rw, e.args[0], "sigmoid") if e.op == "log" else None
    return rw.emit("neg", (rw.emit("softplus", s.args),)) if s else None


def _log_sum_exp(rw, e):
    s = _log_of("sum")(rw, e)
    x = rw.producer(s.args[0], "exp") if s else None
    return rw.emit("logsumexp", x.args, s.attrs) if x else None


def _log1p(rw, e):
    d = rw.producer(e.args[0], "add") if e.op == "log" else None
    if d is None:
        return None
    for i in (0, 1):
        if is_lit(d.args[i], 1) and d.args[1 - i].type == e.args[0].type:
            return rw.emit("log1p", (d.args[1 - i],))
    return None


def _one_minus_exp(rw, e):
    if e.op != "sub" or not is_lit(e.args[0], 1):
        return None
    x = rw.producer(e.args[1], "exp")
    if x is None or x.args[0].type != e.out.type:
        return None
    return rw.emit("neg", (rw.emit("expm1", x.args),))


def _gather_softmax(rw, e):
    s = rw.producer(e.args[0], "softmax") if e.op == "gather" else None
    if s is None:
        return None
    return rw.emit(
        "exp", (rw.emit("gather", (rw.emit("log_softmax", s.args, s.attrs), e.args[1])),)
    )


def _log_exp(rw, e):
    x = _log_of("exp")(rw, e)
    return x.args[0] if x and x.args[0].type == e.out.type else None


def _xlogx(rw, e):
    if e.op != "mul":
        return None
    for i in (0, 1):
        lg = rw.producer(e.args[1 - i], "log")
        if lg is not None and lg.args[0] == e.args[i]:
            return rw.emit("xlogy", (e.args[i], e.args[i]))
    return None


def _mix(rw, a):
    """a = A T + B (1 - T), each product's operands in either order: (A, B, T, 1 - T)."""
    d = rw.producer(a, "add")
    if d is None:
        return None
    for m1, m2 in (d.args, d.args[::-1]):
        e1, e2 = rw.producer(m1, "mul"), rw.producer(m2, "mul")
        if e1 is None or e2 is None:
            continue
        for x, t in (e1.args, e1.args[::-1]):
            for y, u in (e2.args, e2.args[::-1]):
                d = rw.producer(u, "sub")
                if d is not None and is_lit(d.args[0], 1) and d.args[1] == t:
                    return x, y, t, u
    return None


def _sigmoid_complement(rw, a):
    """1 - a without a subtraction, where a is sigmoid(x), sigmoid(-x) or 1 - sigmoid(x)."""
    s = rw.producer(a, "sigmoid")
    if s is not None:
        n = rw.producer(s.args[0], "neg")
        return rw.emit("sigmoid", (n.args[0] if n else rw.emit("neg", s.args),))
    s = _one_minus(rw, a, "sigmoid")
    return rw.emit("sigmoid", s.args) if s is not None else None


def _one_minus_pt(rw, e):
    if e.op != "sub" or not is_lit(e.args[0], 1):
        return None
    mix = _mix(rw, e.args[1])
    if mix is None:
        return None
    x, y, t, u = mix
    cx = _sigmoid_complement(rw, x)
    cy = _sigmoid_complement(rw, y) if cx is not None else None
    if cy is None:
        return None
    return rw.emit("add", (rw.emit("mul", (cx, t)), rw.emit("mul", (cy, u))))


# float32's smallest normal number: below it, b^(gamma - 1) overflows float32 for gamma near 0
TINY = 1.1754943508222875e-38


def _complement_pow(rw, e):
    """(1 - p)^gamma, gamma not a literal >= 1 (or 0): the base held constant where it is
    <= TINY, so that the infinite d/db b^gamma at b = 0 (1 - p_t underflows to 0 once the true
    class saturates: a logit gap > 17 in float32) meets a select, not 0 * inf. The value is
    unchanged; the gradient dropped below TINY is O(TINY^gamma) for every gamma (two
    elementwise ops: a `maximum(b, TINY)` would be one, but moves the value by TINY^gamma)."""
    if e.op != "pow":
        return None
    b, g = e.args
    if is_lit(g) and not 0 < g.value < 1:
        return None
    one_minus = rw.producer(b, "sub")
    neg = rw.producer(b, "neg")
    if not (
        (one_minus is not None and is_lit(one_minus.args[0], 1))
        or (neg is not None and rw.producer(neg.args[0], "expm1") is not None)
        or _mix(rw, b) is not None  # 1 - p_t of sigmoids, as _one_minus_pt writes it
    ):
        return None
    ok = rw.emit("gt", (b, Lit(TINY, TensorType("float"))))
    return rw.emit("pow", (rw.emit("where", (ok, b, rw.emit("stop_grad", (b,)))), g))


STABILIZE_RULES: tuple[Row, ...] = (
    Row(
        "log(softmax x) -> log_softmax x",
        "softmax underflows to 0 for logits ~1e2 apart and log(0) = -inf; log_softmax is x - lse",
        _log_softmax,
        ("log",),
    ),
    Row(
        "log(sigmoid x) -> -softplus(-x)",
        "sigmoid(-800) is 0 in float64; -softplus(-x) is exact for any x",
        _log_sigmoid,
        ("log",),
    ),
    Row(
        "log(1 - sigmoid x) -> -softplus(x)",
        "1 - sigmoid(x) cancels to 0 for x > 17 in float32",
        _log_one_minus_sigmoid,
        ("log",),
    ),
    Row(
        "log(sum(exp x)) -> logsumexp x",
        "exp overflows for x > 88 in float32; logsumexp subtracts the max first",
        _log_sum_exp,
        ("log",),
    ),
    Row("log(1 + x) -> log1p x", "1 + x rounds away x < 1e-8 in float32", _log1p, ("log",)),
    Row(
        "1 - exp(x) -> -expm1(x)",
        "the focal weight 1 - p_t from log p_t: 1 - exp cancels when p_t ~ 1, expm1 does not",
        _one_minus_exp,
        ("sub",),
    ),
    Row(
        "1 - (p t + q (1 - t)) -> (1 - p) t + (1 - q) (1 - t), p, q sigmoids",
        "the multilabel focal weight 1 - p_t cancels to 0 once a logit passes 17 in float32 "
        "(the loss then 0, its Hessian NaN); 1 - sigmoid(x) = sigmoid(-x) is exact",
        _one_minus_pt,
        ("sub",),
    ),
    Row(
        "softmax(x)[i] -> exp(log_softmax(x)[i])",
        "p_t through log space, so that 1 - p_t and log p_t above apply",
        _gather_softmax,
        ("gather",),
    ),
    Row("log(exp x) -> x", "exp overflows first", _log_exp, ("log",)),
    Row("q * log q -> xlogy(q, q)", "0 * log 0 is NaN; xlogy defines it as 0", _xlogx, ("mul",)),
    Row(
        "(1 - p)^gamma -> where(1 - p > tiny, 1 - p, stop_grad(1 - p))^gamma",
        "the focal factor's gradient gamma (1 - p)^(gamma - 1) is infinite at p = 1 for gamma < 1 "
        "(0 * inf = NaN); the selected-away branch gives it 0, as optax and kornia (the value "
        "is unchanged; a gradient O((1 - p)^gamma) below tiny = 1.2e-38 is dropped)",
        _complement_pow,
        ("pow",),
    ),
)


def stabilize(prog: Program) -> Program:
    return run_rules(prog, STABILIZE_RULES)
