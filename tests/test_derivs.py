"""grad(e, wrt=x) and function inputs, as constructs: every kind of name grad differentiates
with respect to (an input, a let, a loop's state, a grad's own result), against the derivative
by hand, on every backend, with the loss's own gradient (a double backward) by hand too; function
inputs called with their dims in any order, several arguments, a *S or a fixed dim in the
result; and the errors of a call at run time. The specs built on them (r1_penalty, wgan_gp, vat)
are checked against their official code in tests/library/test_input_derivatives.py."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from helpers import call, grads

import lossdsl
from lossdsl.equiv import ExampleFn, random_inputs

BACKENDS = ("numpy", "torch", "jax")

# (loss over x: float[B] (and y: float[B]), its value by hand, its gradient w.r.t. x by hand).
# Each differentiates a different kind of name; the hand forms follow from d/dx x^n = n x^(n-1).
CASES = {
    "input": (
        "let g = grad(sum(x ^ 3, over=B), wrt=x)\n    g * y",
        lambda x, y: 3 * x**2 * y,
        lambda x, y: 6 * x * y,
    ),
    "let": (  # with respect to a let: d/dh sum(sin(h) * y) = cos(h) y, h = 2 x
        "let h = 2 * x\n    let g = grad(sum(sin(h) * y, over=B), wrt=h)\n    g * x",
        lambda x, y: np.cos(2 * x) * y * x,
        lambda x, y: -2 * np.sin(2 * x) * y * x + np.cos(2 * x) * y,
    ),
    "loop state": (  # two gradient steps on sum(s^2 / 2) from x: s <- s - 0.25 s
        "let s = repeat(2, init=x) (s) {\n        s - 0.25 * grad(sum(s * s / 2, over=B), wrt=s)\n"
        "    }\n    s * y",
        lambda x, y: 0.5625 * x * y,
        lambda x, y: 0.5625 * y + 0 * x,
    ),
    "nested": (  # d/dx sum(d/dx sum(x^4)) = d/dx sum(4 x^3) = 12 x^2
        "grad(sum(grad(sum(x ^ 4, over=B), wrt=x), over=B), wrt=x) * y",
        lambda x, y: 12 * x**2 * y,
        lambda x, y: 24 * x * y,
    ),
    "constant": (  # a body of a literal and of params alone: no dependence on x, 0
        "param a: float = 1.5\n    grad(3.0, wrt=x) + grad(a * 2, wrt=x) + x * y",
        lambda x, y: x * y,
        lambda x, y: y + 0 * x,
    ),
    "free values": (  # the body reads y and a param from outside
        "param a: float = 1.5\n    grad(sum(a * x * x * y + exp(y), over=B), wrt=x)",
        lambda x, y: 2 * 1.5 * x * y,
        lambda x, y: 3.0 * y + 0 * x,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_grad_of_every_kind_of_name_equals_the_derivative_by_hand(case):
    body, value, dvalue = CASES[case]
    spec = lossdsl.parse(f"loss f(x: float[B], y: float[B]) {{\n    {body}\n}}\n")
    rng = np.random.default_rng(len(case))
    d = {"x": rng.normal(size=5), "y": rng.normal(size=5)}
    want = value(d["x"], d["y"])
    for b in BACKENDS:
        got = call(b, spec.compile(b), d, "float64", reduction="none")
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=b)
    for b in ("torch", "jax"):  # the loss's gradient: a derivative of a derivative
        g = grads(b, spec.compile(b), d, ["x"], "float64", reduction="sum")["x"]
        np.testing.assert_allclose(g, dvalue(d["x"], d["y"]), rtol=1e-10, atol=1e-12, err_msg=b)


# function inputs: (declarations, body); the value is checked across backends with ExampleFn
# (lossdsl/equiv.py), the same smooth function on each
SIGNATURES = {
    "dims permuted": ("x: float[B, C], f: fn(float[C, B]) -> float[B]", "f(x)"),
    "two arguments": (
        "x: float[B, C], y: float[B], f: fn(float[B, C], float[B]) -> float[B, C]",
        "sum(f(x, y), over=C)",
    ),
    "variadic result": (
        "x: float[B, *S], f: fn(float[B, *S]) -> float[B, *S]",
        "sum(f(x), over=S)",
    ),
    "fixed dim": (
        "x: float[B, 4], f: fn(float[B, 4]) -> float[B, 2]",
        "take(f(x), 0, over=2) * take(f(x), 1, over=2)",
    ),
    "in a grad": (
        "x: float[B, C], f: fn(float[B, C]) -> float[B]",
        "sum(grad(sum(f(x), over=B), wrt=x) ^ 2, over=C)",
    ),
}


@pytest.mark.parametrize("case", SIGNATURES)
def test_function_inputs_agree_on_every_backend(case):
    decls, body = SIGNATURES[case]
    spec = lossdsl.parse(f"loss f({decls}) {{\n    {body}\n}}\n")
    d = random_inputs(spec, {"B": 3, "C": 4, "S": (2, 3)}, np.random.default_rng(0))
    want = call("numpy", spec.compile("numpy"), d, "float64", reduction="none")
    assert want.shape == (3,) and np.all(np.isfinite(want))
    for b in ("torch", "jax"):
        got = call(b, spec.compile(b), d, "float64", reduction="none")
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=b)
    floats = [k for k, v in d.items() if not isinstance(v, ExampleFn) and v.dtype.kind == "f"]
    gt = grads("torch", spec.compile("torch"), d, floats, "float64", reduction="sum")
    gj = grads("jax", spec.compile("jax"), d, floats, "float64", reduction="sum")
    for k in floats:
        np.testing.assert_allclose(gt[k], gj[k], rtol=1e-10, atol=1e-12, err_msg=k)


CALL_ERRORS = {
    "not callable": (lambda b: 3.0, "input 'f' must be a function"),
    "wrong shape": (lambda b: lambda x: x, r"function input 'f' must return float\[B\]"),
    "wrong dtype": (
        lambda b: lambda x: x[:, 0] > 0,
        r"function input 'f' must return float\[B\]",
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CALL_ERRORS)
def test_a_bad_function_input_is_an_input_error_at_the_call(backend, case):
    make, msg = CALL_ERRORS[case]
    spec = lossdsl.parse("loss g(x: float[B, C], f: fn(float[B, C]) -> float[B]) {\n    f(x)\n}\n")
    x = np.ones((2, 3))
    conv = {"numpy": np.asarray, "torch": torch.as_tensor, "jax": jnp.asarray}[backend]
    with pytest.raises(lossdsl.InputError, match=msg):
        spec.compile(backend)(conv(x), make(backend))
