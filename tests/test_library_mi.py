"""Mutual-information bounds (mi_dv, mi_nwj, mi_infonce, mi_js, mi_smile) against the official
SMILE estimators (ermongroup/smile-mi-estimator estimators.py, transcribed in
tests/reference/smile_official.py): values and gradients in float64, two batch sizes. For
mi_js and mi_smile the gradient is the JS bound's while the value is NWJ's / SMILE's: the
stop_grad semantics are checked by comparing gradients with the reference's no_grad form."""

from __future__ import annotations

import pytest
import torch
from reference import smile_official as ref

import lossdsl

torch.set_default_dtype(torch.float64)

CASES = [
    ("mi_dv", {}, ref.dv_upper_lower_bound),
    ("mi_nwj", {}, ref.nwj_lower_bound),
    ("mi_infonce", {}, ref.infonce_lower_bound),
    ("mi_js", {}, ref.js_lower_bound),
    ("mi_smile", {"clip": 5.0}, lambda f: ref.smile_lower_bound(f, clip=5.0)),
    ("mi_smile", {"clip": 1.0}, lambda f: ref.smile_lower_bound(f, clip=1.0)),
    ("mi_smile", {"clip": float("inf")}, lambda f: ref.smile_lower_bound(f, clip=None)),
]


@pytest.mark.parametrize("b", [5, 16])
@pytest.mark.parametrize("name,params,bound", CASES, ids=[f"{n}-{p}" for n, p, _ in CASES])
def test_mi_bound_matches_official(name, params, bound, b):
    f = torch.randn(b, b, generator=torch.Generator().manual_seed(b)) * 3 + 2 * torch.eye(b)
    fn = lossdsl.load(name).compile("torch")
    x, y = f.clone().requires_grad_(True), f.clone().requires_grad_(True)
    ours, want = fn(x, **params), -bound(y)
    torch.testing.assert_close(ours, want)
    torch.testing.assert_close(torch.autograd.grad(ours, [x])[0], torch.autograd.grad(want, [y])[0])


def test_smile_gradient_is_the_js_gradient():
    """Song & Ermon 2020, eq. 17: SMILE trains with the JS bound's gradient."""
    f = torch.randn(6, 6, generator=torch.Generator().manual_seed(3))
    x, y = f.clone().requires_grad_(True), f.clone().requires_grad_(True)
    g = torch.autograd.grad(lossdsl.load("mi_smile").compile("torch")(x), [x])[0]
    g_js = torch.autograd.grad(-ref.js_fgan_lower_bound(y), [y])[0]
    torch.testing.assert_close(g, g_js)
