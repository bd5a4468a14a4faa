"""cross_entropy_nd against torch.nn.functional.cross_entropy of the installed torch (2.13.0 in
CI) on torch's [N, C, d1, ..., dk] layout: a generator over the number of spatial dims (0 to
3), sizes of 1, every reduction, class weights present or absent, ignore_index hits and
label_smoothing in {0, 0.3, 1}; values on torch and jax (float64), gradients on torch. The
expected values are torch's own; the one documented difference (an all-ignored batch's mean:
0 here, NaN in torch) is checked separately."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import ND_SPATIAL, nd_case

import lossdsl

SPEC = lossdsl.load("cross_entropy_nd")
SHAPES = ND_SPATIAL


@pytest.mark.parametrize("spatial", SHAPES, ids=str)
def test_values_and_gradients_are_torch_cross_entropys(spatial):
    rng = np.random.default_rng(len(spatial) * 10 + sum(spatial))
    fn_t, fn_j = SPEC.compile("torch"), SPEC.compile("jax")
    x, t, w = nd_case(rng, spatial)
    for weighted, eps, red in itertools.product(
        (False, True), (0.0, 0.3, 1.0), ("none", "sum", "mean")
    ):
        xt = torch.tensor(x, requires_grad=True)
        tt, wt = torch.tensor(t), torch.tensor(w)
        kw = {"label_smoothing": eps, "reduction": red}
        want = F.cross_entropy(xt, tt, weight=wt if weighted else None, **kw)
        args = (xt, tt, wt) if weighted else (xt, tt)
        got = fn_t(*args, **kw)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        (gw,) = torch.autograd.grad(want.sum(), xt)
        (gg,) = torch.autograd.grad(fn_t(*args, **kw).sum(), xt)
        torch.testing.assert_close(gg, gw, rtol=1e-10, atol=1e-12)
        jargs = [jax.numpy.asarray(a) for a in ((x, t, w) if weighted else (x, t))]
        np.testing.assert_allclose(np.asarray(fn_j(*jargs, **kw)), want.detach().numpy(),
                                   rtol=1e-12, atol=1e-12)  # fmt: skip


def test_it_is_cross_entropy_on_the_rows_torch_users_reshape_to():
    """The spec docstring's claim: cross_entropy on logits.movedim(1, -1).reshape(-1, C)."""
    rng = np.random.default_rng(7)
    x, t, w = nd_case(rng, (3, 2))
    rows = np.moveaxis(x, 1, -1).reshape(-1, 4)
    flat = lossdsl.load("cross_entropy").compile("numpy")(
        rows, t.reshape(-1), w, label_smoothing=0.2
    )
    nd = SPEC.compile("numpy")(x, t, w, label_smoothing=0.2)
    np.testing.assert_allclose(nd, flat, rtol=1e-13)


def test_keep_masks_positions_as_ignore_index_does():
    rng = np.random.default_rng(3)
    x, t, w = nd_case(rng, (4,), ignore=False)
    keep = rng.random(t.shape) > 0.4
    fn = SPEC.compile("torch")
    got = fn(torch.tensor(x), torch.tensor(t), torch.tensor(w), torch.tensor(keep))
    want = F.cross_entropy(torch.tensor(x), torch.tensor(np.where(keep, t, -100)), torch.tensor(w))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_an_all_ignored_batch_is_zero_where_torch_gives_nan():
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    t = torch.full((2, 4), -100)
    assert torch.isnan(F.cross_entropy(x, t))  # torch 2.13: 0 / 0
    got = SPEC.compile("torch")(x, t)
    (g,) = torch.autograd.grad(got, x)
    assert float(got.detach()) == 0.0 and not g.any()
