"""Param constraints: one op set (lossdsl/constraints.py), one evaluator, checked the same way
at bake time, on defaults, by the numpy reference and by the generated torch/jax code.

Before: `param g: float = 1.0 where exp(g) > 1` passed the checker and then crashed torch and
jax compiles with NotImplementedError (their scalar templates covered a few ops only), and
`1 / g` in a constraint was a raw ZeroDivisionError at g = 0.

The generator: every op a constraint may use, in a spec whose constraint is `E | g == 12345`
(the default 12345 satisfies it whatever E is), called on every backend with (g, h) on a grid
of ordinary and IEEE edge values: the call raises ParamError exactly where the evaluator says
E is false, and the evaluator equals the op table's numpy meaning (the reference semantics).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from helpers import call

import lossdsl
from lossdsl import constraints
from lossdsl.codegen import TARGETS
from lossdsl.ops import OPS

# Each op of constraints.TEMPLATES as the surface syntax that lowers to it (g, h: float params).
SURFACE = {
    "add": "g + h > 0.5", "sub": "g - h > 0.5", "mul": "g * h > 0.5", "div": "g / h > 0.5",
    "neg": "-g > 0.5", "eq": "g == h", "ne": "g != h", "lt": "g < h", "le": "g <= h",
    "gt": "g > h", "ge": "g >= h", "and": "g > 0 & h > 0", "or": "g > 0 | h > 0",
    "not": "!(g > 0)", "where": "where(g > 0, g, h) > 0.5", "abs": "abs(g) > 0.5",
    "maximum": "max(g, h) > 0.5", "minimum": "min(g, h) > 0.5", "relu": "relu(g) > 0.5",
    "to_float": "float(g > h) > 0.5", "stop_grad": "stop_grad(g) > 0.5",
    "custom_grad": "straight_through(g, h) > 0.5",
    "xlogy": "xlogy(g, h) > 0.5",
    **{f: f"{f}(g) > 0.5" for f in ("exp", "expm1", "log", "log1p", "sqrt", "sigmoid",
                                    "softplus", "erf", "tanh", "sin", "cos", "atan", "asin",
                                    "acos", "log2", "log10", "sinh", "cosh", "asinh",
                                    "acosh", "atanh", "lgamma", "floor", "ceil", "round",
                                    "sign")},
    "atan2": "atan2(g, h) > 0.5",
    "logaddexp": "logaddexp(g, h) > 0.5",
}  # fmt: skip
NO_SURFACE: dict[str, str] = {}  # an op constraints can check that no param expression makes
# 710.5: sinh/cosh overflow (math's raise); +-0.5, +-2.5: round's halves (to even), ceil(-0.5)
# is -0.0; -2.5: lgamma between poles, -2: at one
GRID = [-2.5, -2.0, -1.0, -0.5, 0.0, 0.3, 0.5, 1.0, 2.5, 710.0, 710.5, math.inf, -math.inf]
H = [-1.0, 0.0, 2.0, math.inf]


def _spec(expr: str):
    return lossdsl.parse(
        "loss l(x: float[B]) {\n"
        f"    param g: float = 12345.0   where {expr} | g == 12345\n"
        "    param h: float = 12345.0\n"
        "    x\n}\n"
    )


def test_every_constraint_op_has_a_surface_form_here():
    assert set(SURFACE) | set(NO_SURFACE) == set(constraints.TEMPLATES)
    for op, expr in SURFACE.items():
        (chk,) = _spec(expr)._lowered(frozenset()).checks
        assert op in {e.op for e in chk.eqns}, (op, [e.op for e in chk.eqns])


@pytest.mark.parametrize("op", sorted(constraints.TEMPLATES))
def test_the_evaluator_is_the_numpy_meaning(op):
    """Python-number templates, IEEE where Python would raise: equal (nan included) to the op
    table's numpy reference on the grid (bools for the logical ops)."""
    n = OPS[op].nargs
    logical = op in ("and", "or", "not")
    values = [False, True] if logical else GRID
    for args in itertools.product(values, repeat=n):
        if op == "where":
            args = (args[0] > 0, *args[1:])
        got = constraints._FNS[op](*args)
        with np.errstate(all="ignore"):
            want = OPS[op].ref(*(np.asarray(a) for a in args))
        # libm and numpy may differ in the last bit (expm1(1)); nan and inf must match exactly
        np.testing.assert_allclose(float(got), float(want), rtol=4e-16, err_msg=f"{op}{args}")


@pytest.mark.parametrize("backend", TARGETS)
def test_generated_checks_agree_with_the_evaluator(backend):
    x = {"x": np.array([1.0, 2.0])}
    for op, expr in SURFACE.items():
        spec = _spec(expr)
        (chk,) = spec._lowered(frozenset()).checks
        fn = spec.compile(backend)
        for g, h in itertools.product(GRID, H):
            ok = constraints.evaluate(chk, {"g": g, "h": h})
            try:
                call(backend, fn, x, "float64", g=g, h=h)
                raised = False
            except lossdsl.ParamError:
                raised = True
            assert raised == (not ok), (backend, op, g, h)


@pytest.mark.parametrize("expr", ["g ^ 2 > 1", "2 ^ g > 1", "g ^ h > 1"])
def test_an_op_outside_the_set_is_a_check_time_error(expr):
    """pow is the one elementwise op left out (Python's ** raises or goes complex where numpy
    gives inf or nan); a tensor op cannot take a scalar param (sum(g) over no dims is g)."""
    with pytest.raises(lossdsl.TypeMismatch, match="a param constraint cannot use '\\^'"):
        _spec(expr)


def test_digamma_in_a_constraint_is_a_check_time_error_naming_it():
    """digamma is the one elementwise function without a constraint form (Python's math module
    has none); the hint lists what a constraint can use and says so."""
    with pytest.raises(lossdsl.TypeMismatch, match="cannot use digamma") as e:
        _spec("digamma(g) > 0")
    assert "(not digamma or log_ive)" in str(e.value)
    assert {op for op, d in OPS.items() if d.kind == "elementwise"} - set(
        constraints.TEMPLATES
    ) == {"digamma", "log_ive", "pow", "safe_div", "floordiv", "mod"}  # a form or a reason:
    # // and % have none (Python's raise on a float 0, and which operand is an int is not
    # known to a template): a constraint using them is a check-time error


def test_literal_arithmetic_in_a_constraint_folds():
    """2 ^ 3 folds to 8 before the op set is checked."""
    fn = _spec("g <= 2 ^ 3").compile("torch")
    fn(torch.ones(2), g=8.0)
    with pytest.raises(lossdsl.ParamError, match="2 \\^ 3"):
        fn(torch.ones(2), g=8.5)


HELPER = "loss sq(d: float[B]) {\n    param s: float = 1.0 where s >= 0\n    s * d * d\n}\n"


@pytest.mark.parametrize("arg, s", [("a", 1.0), ("a * 2", 2.0), ("a + 1", 2.0)])
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_a_helpers_constraint_on_a_callers_param_is_checked_at_every_call(arg, s, backend):
    """sq's `s >= 0` with s bound to the caller's param a (or arithmetic on it): at a = 1, s
    is the listed value and the loss s * x^2 (by hand); a = -3 is a ParamError naming both
    names, at the call on every backend and when baked."""
    spec = lossdsl.parse(
        HELPER + f"loss f(x: float[K]) {{\n    param a: float = 1.0\n    sq(x, s={arg})\n}}\n"
    )
    x = {"x": np.array([1.0, 2.0])}
    fn = spec.compile(backend)
    got = call(backend, fn, x, "float64", reduction="none", a=1.0)
    np.testing.assert_allclose(got, s * x["x"] ** 2)
    with pytest.raises(lossdsl.ParamError, match="sq's s being"):
        call(backend, fn, x, "float64", reduction="none", a=-3.0)
    with pytest.raises(lossdsl.ParamError, match="sq's s being"):
        spec.compile(backend, a=-3.0)


@pytest.mark.parametrize("arg", ["c", "mean(x)", "a + c", "sum(x) * 0"])
def test_a_helpers_constraint_cannot_bind_to_a_tensor_value(arg):
    """s bound to a tensor value (an input, a reduction, a mix with a param): the constraint
    would be skipped (sq(x, s=c) with c = -3 ran unchecked): a ParamError at the argument."""
    head = "x: float[K], c: float"
    text = HELPER + f"loss f({head}) {{\n    param a: float = 1.0\n    sq(x, s={arg})\n}}\n"
    with pytest.raises(lossdsl.ParamError) as e:
        lossdsl.parse(text)
    assert "cannot be bound to a tensor value" in str(e.value)
    assert e.value.errors[0].span.line == 7
