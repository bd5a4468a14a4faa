"""Required params (`param k: float   where k > 0`, no default: the paper gives none): passed at
call time or baked at compile time, on every backend and schedule, their constraints checked as
any param's; left out, a ParamError that names the param and says how to pass it (a helper
call that leaves it out: a LossError at the call).

Expected values: the loss is `k * sum(x, over=C)`; numpy's own sum times k."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import call

import lossdsl

SPEC = """\"\"\"A scaled row sum whose scale the paper leaves to the user.\"\"\"
loss scaled(x: float[B, C]) {
    param k: float   where k > 0
    param n: int
    sum(x, over=C) * k + 0 * n
}
"""
X = np.array([[0.5, -1.0, 2.0], [3.0, 0.25, -0.75]])
WANT = X.sum(axis=1)


def _spec():
    return lossdsl.parse(SPEC)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_passed_at_call_or_baked_it_gives_the_loss(backend):
    spec = _spec()
    got = call(backend, spec.compile(backend), {"x": X}, "float64", reduction="none", k=2.0, n=1)
    np.testing.assert_allclose(got, 2.0 * WANT, rtol=1e-15)
    baked = spec.compile(backend, k=3.0, n=0)
    np.testing.assert_allclose(call(backend, baked, {"x": X}, "float64", reduction="none"),
                               3.0 * WANT, rtol=1e-15)  # fmt: skip
    half = spec.compile(backend, k=0.5)  # one baked, the other passed
    got = call(backend, half, {"x": X}, "float64", reduction="none", n=4)
    np.testing.assert_allclose(got, 0.5 * WANT, rtol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("left_out", ["k", "n"])
def test_left_out_it_is_a_param_error_naming_it(backend, left_out):
    spec = _spec()
    given = {"k": 2.0, "n": 1}
    del given[left_out]
    with pytest.raises(lossdsl.ParamError, match=f"param '{left_out}' is required") as err:
        call(backend, spec.compile(backend), {"x": X}, "float64", **given)
    assert f"{left_out}=..." in str(err.value)  # the hint says how to pass it
    with pytest.raises(lossdsl.ParamError, match="k > 0"):  # its constraint, as any param's
        call(backend, spec.compile(backend), {"x": X}, "float64", k=-1.0, n=1)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_the_chunked_schedule_takes_and_requires_it_too(backend):
    spec = _spec()
    fn = spec.compile(backend, schedule="chunked", chunk=2)
    got = call(backend, fn, {"x": X}, "float64", reduction="sum", k=2.0, n=1)
    np.testing.assert_allclose(got, 2.0 * WANT.sum(), rtol=1e-14)
    with pytest.raises(lossdsl.ParamError, match="param 'k' is required"):
        call(backend, fn, {"x": X}, "float64", n=1)


def test_a_helper_call_passes_it_or_is_an_error_at_the_call():
    helper = SPEC[SPEC.index("loss scaled") :]
    ok = lossdsl.parse(helper + "loss user(x: float[B, C]) {\n    scaled(x, k=2, n=1)\n}\n")
    got = ok.compile("numpy")(X, reduction="none")
    np.testing.assert_allclose(got, 2.0 * WANT, rtol=1e-15)
    with pytest.raises(lossdsl.LossError, match="needs its param 'k'") as err:
        lossdsl.parse(helper + "loss user(x: float[B, C]) {\n    scaled(x, n=1)\n}\n")
    assert "^" in str(err.value) and "scaled(..., k=...)" in str(err.value)


def test_show_and_the_standalone_module_say_it_is_required(tmp_path):
    path = tmp_path / "scaled.loss"
    path.write_text(SPEC)
    show = subprocess.run([sys.executable, "-m", "lossdsl", "show", str(path)],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "param k: float  (required)  where k > 0" in show
    assert "param n: int  (required)" in show
    src = subprocess.run([sys.executable, "-m", "lossdsl", "compile", str(path), "--backend",
                          "torch"], capture_output=True, text=True, check=True).stdout  # fmt: skip
    mod: dict = {}
    exec(compile(src, str(path), "exec"), mod)  # the module lossdsl printed, not user text
    x = torch.tensor(X)
    torch.testing.assert_close(mod["scaled"](x, k=2.0, n=1, reduction="none"),
                               torch.tensor(2.0 * WANT), rtol=1e-15, atol=0)  # fmt: skip
    with pytest.raises(ValueError, match="param 'k' is required"):
        mod["scaled"](x, n=1)


def test_the_formatter_keeps_it_required():
    from lossdsl.parser import parse_module
    from lossdsl.unparse import unparse_module

    text = unparse_module(parse_module(SPEC, "<spec>"))
    assert "param k: float where k > 0" in text and "param n: int\n" in text
    assert lossdsl.parse(text).params[0].required
