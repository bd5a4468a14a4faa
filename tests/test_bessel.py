"""log_ive(v, x): the exponentially scaled modified Bessel function of the first kind of real
order, against scipy.special.ive (scipy 1.17) and mpmath's besseli (mpmath 1.3, 40 digits), for
orders 0 to 500 and x from 1e-300 to 1e300, on every backend; its derivative in x against the
closed form d/dx log ive(v, x) = I_{v+1}(x) / I_v(x) + v / x - 1 (DLMF 10.29.2) in mpmath."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import scipy.special as sp
import torch
from helpers import call

import lossdsl
from lossdsl.codegen import TARGETS
from lossdsl.ops import _debye_polys, _log_ive

ORDERS = (
    0.0,
    1e-9,
    0.3,
    0.5,
    1.0,
    2.7,
    7.5,
    14.5,
    14.99,
    15.0,
    15.01,
    25.0,
    49.9,
    100.0,
    333.3,
    500.0,
)
XS = (1e-300, 1e-50, 1e-8, 1e-3, 0.5, 1.0, 1.0000001, 2.0, 3.3, 10.0, 49.0, 700.0, 1e4, 1e6, 1e12)


def _mp_log_ive(v, x):
    with mpmath.workdps(40 if x < 1e20 else 340):
        return float(mpmath.log(mpmath.besseli(v, x)) - x)


def test_debye_polynomials_are_dlmf_10_41_10():
    """u_1 = (3t - 5t^3)/24, u_2 = (81t^2 - 462t^4 + 385t^6)/1152, u_3 = (30375t^3 - 369603t^5
    + 765765t^7 - 425425t^9)/414720 (DLMF 10.41.10), as t^k times a polynomial in t^2."""
    u = _debye_polys(4)
    np.testing.assert_allclose(u[0], np.array([3, -5]) / 24, rtol=1e-15)
    np.testing.assert_allclose(u[1], np.array([81, -462, 385]) / 1152, rtol=1e-15)
    np.testing.assert_allclose(
        u[2], np.array([30375, -369603, 765765, -425425]) / 414720, rtol=1e-15
    )


@pytest.mark.parametrize("v", ORDERS)
def test_the_reference_meaning_against_mpmath(v):
    got = _log_ive(v, np.array(XS))
    want = np.array([_mp_log_ive(v, x) for x in XS])
    np.testing.assert_allclose(got, want, rtol=2e-14, atol=2e-14)


def test_scipy_ive_and_the_edges():
    """Where scipy's ive is a normal number it agrees (relative 5e-13 on ive: exp turns an error
    of 1e-16 relative on log ive, which reaches -690 here, into that); at x = 0 it is 1
    at order 0 and 0 above; NaN at a negative order or x, -inf at x = inf."""
    v, x = np.meshgrid(np.linspace(0, 500, 41), np.geomspace(1e-3, 1e5, 37))
    ref = sp.ive(v, x)
    ok = ref > 1e-300
    np.testing.assert_allclose(np.exp(_log_ive(v, x))[ok], ref[ok], rtol=5e-13)
    got = _log_ive([0, 2, -1, 1, 1, np.nan], [0, 0, 1, -1, np.inf, 1])
    np.testing.assert_array_equal(got, [0, -np.inf, np.nan, np.nan, -np.inf, np.nan])


@pytest.mark.parametrize("backend", TARGETS)
def test_every_backend_and_its_derivative(backend):
    spec = lossdsl.parse("loss b(v: float[B], x: float[B]) {\n    log_ive(v, x)\n}\n")
    v, x = np.meshgrid([0.0, 0.5, 3.0, 20.0, 500.0], [1e-6, 0.7, 1.5, 30.0, 1e4])
    d = {"v": v.ravel(), "x": x.ravel()}
    got = call(backend, spec.compile(backend), d, "float64", reduction="none")
    want = [_mp_log_ive(a, b) for a, b in zip(d["v"], d["x"])]
    np.testing.assert_allclose(got, want, rtol=5e-14, atol=5e-14)
    if backend == "numpy":
        return
    with mpmath.workdps(40):
        dwant = [
            float(mpmath.besseli(a + 1, b) / mpmath.besseli(a, b) + a / mpmath.mpf(b) - 1)
            for a, b in zip(d["v"], d["x"])
        ]
    if backend == "torch":
        xt = torch.tensor(d["x"], requires_grad=True)
        (g,) = torch.autograd.grad(
            spec.compile("torch")(torch.tensor(d["v"]), xt, reduction="sum"), xt
        )
        g = g.numpy()
    else:
        import jax

        f = spec.compile("jax")
        g = np.asarray(jax.grad(lambda x: f(d["v"], x, reduction="sum"))(d["x"]))
    np.testing.assert_allclose(g, dwant, rtol=1e-12, atol=1e-12)
