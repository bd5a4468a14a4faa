"""focal_nd against the installed kornia 0.9.0 (kornia.losses.focal_loss) and MONAI 1.6.1
(monai.losses.FocalLoss(use_softmax=True, to_onehot_y=True)) in their [N, C, d1, ...] layout:
a generator over the number of spatial dims (0 to 3, sizes of 1), every reduction, alpha
absent / 0 / 0.25 / 1, class weights absent or present, ignore_index hits, and gamma in
{0, 0.5, 2}. The expected values are the peers' own: kornia in float64 (values and gradients,
rtol 1e-10), MONAI in float32 (it casts its input with .float(); rtol 1e-5). The spec's
relation to the focal spec (its per-position value) is checked on torch, jax and numpy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from helpers import ND_SPATIAL, nd_case
from kornia.losses import focal_loss
from monai.losses import FocalLoss

import lossdsl

SPEC = lossdsl.load("focal_nd")


@pytest.mark.parametrize("spatial", ND_SPATIAL, ids=str)
def test_values_and_gradients_are_kornias(spatial):
    rng = np.random.default_rng(len(spatial) * 10 + sum(spatial))
    fn = SPEC.compile("torch")
    x, t, w = nd_case(rng, spatial, scale=2.0)
    for alpha, gamma, weighted, red in itertools.product(
        (None, 0.0, 0.25, 1.0), (0.0, 0.5, 2.0), (False, True), ("none", "sum", "mean")
    ):
        xt = torch.tensor(x, requires_grad=True)
        tt, wt = torch.tensor(t), torch.tensor(w) if weighted else None
        want = focal_loss(xt, tt, alpha=alpha, gamma=gamma, reduction=red, weight=wt)
        args = (xt, tt, wt) if weighted else (xt, tt)
        kw = {"alpha": -1.0 if alpha is None else alpha, "gamma": gamma, "reduction": red}
        got = fn(*args, **kw)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
        (gw,) = torch.autograd.grad(want.sum(), xt)
        (gg,) = torch.autograd.grad(got.sum(), xt)
        torch.testing.assert_close(gg, gw, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("spatial", [s for s in ND_SPATIAL if s], ids=str)
def test_values_are_monais_use_softmax_focal(spatial):
    """MONAI's "none" and "mean" are the spec's; its "sum" averages over the spatial dims
    first (monai/losses/focal_loss.py, average_spatial_dims): the spec's sum / prod(*S)."""
    rng = np.random.default_rng(100 + len(spatial))
    fn = SPEC.compile("torch")
    x, t, w = nd_case(rng, spatial, ignore=False, scale=2.0)
    tt = torch.tensor(t)
    size = int(np.prod(spatial))
    for alpha, weighted, red in itertools.product(
        (None, 0.25), (False, True), ("none", "sum", "mean")
    ):
        m = FocalLoss(
            use_softmax=True,
            to_onehot_y=True,
            gamma=2.0,
            alpha=alpha,
            weight=torch.tensor(w) if weighted else None,
            reduction=red,
        )
        want = m(torch.tensor(x), tt[:, None])
        args = (torch.tensor(x), tt, torch.tensor(w)) if weighted else (torch.tensor(x), tt)
        got = fn(*args, alpha=-1.0 if alpha is None else alpha, reduction=red)
        if red == "sum":
            got = got / size
        assert got.shape == want.shape
        torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-5, atol=1e-7)


def test_monai_ignore_index_none_is_the_spec_and_its_mean_is_focal():
    """MONAI with ignore_index: its "none" map is the spec's; its mean divides by the kept
    positions, the focal spec's row mean on the flattened positions (the header says so)."""
    rng = np.random.default_rng(5)
    x, t, _ = nd_case(rng, (3, 2), ignore=False, scale=2.0)
    t.reshape(-1)[:4] = 1
    xt, tt = torch.tensor(x), torch.tensor(t)
    none = FocalLoss(use_softmax=True, to_onehot_y=True, ignore_index=1, reduction="none")
    got = SPEC.compile("torch")(xt, tt, ignore_index=1, reduction="none")
    torch.testing.assert_close(got, none(xt, tt[:, None]).to(got.dtype), rtol=1e-5, atol=1e-7)
    mean = FocalLoss(use_softmax=True, to_onehot_y=True, ignore_index=1, reduction="mean")
    rows = xt.movedim(1, -1).reshape(-1, 4)
    flat = lossdsl.load("focal").compile("torch")(rows, tt.reshape(-1), ignore_index=1)
    torch.testing.assert_close(flat, mean(xt, tt[:, None]).to(flat.dtype), rtol=1e-5, atol=1e-7)


def test_its_sum_over_classes_is_focal_on_the_rows(_x64):
    """The header's relation, on torch, jax and the numpy reference: the sum over C of the
    spec's "none" map is the focal spec's per-row value on logits.movedim(1, -1)."""
    rng = np.random.default_rng(9)
    x, t, w = nd_case(rng, (2, 3), scale=2.0)
    rows = np.moveaxis(x, 1, -1).reshape(-1, 4)
    kw = {"alpha": 0.25, "gamma": 0.5, "reduction": "none"}
    want = lossdsl.load("focal").compile("numpy")(rows, t.reshape(-1), w, **kw)
    for backend in ("numpy", "torch", "jax"):
        fn = SPEC.compile(backend)
        got = np.asarray(
            fn(*(torch.tensor(a) if backend == "torch" else a for a in (x, t, w)), **kw)
        )
        np.testing.assert_allclose(np.moveaxis(got, 1, -1).sum(-1).reshape(-1), want, rtol=1e-12,
                                   atol=1e-15, err_msg=backend)  # fmt: skip


def test_gamma_below_one_at_a_saturated_class_has_finite_gradients():
    """A class with p = 1 and gamma = 0.5: (1 - p)^gamma has an infinite derivative there;
    the zeros off the target class must not turn it into NaN (kornia guards the same)."""
    x = torch.tensor([[[60.0, 0.0], [0.0, 0.0], [0.0, 60.0]]], dtype=torch.float64)  # [1, 3, 2]
    x.requires_grad_(True)
    t = torch.tensor([[0, 1]])
    got = SPEC.compile("torch")(x, t, gamma=0.5, reduction="sum")
    (g,) = torch.autograd.grad(got, x)
    want = focal_loss(x, t, alpha=None, gamma=0.5, reduction="sum")
    (gw,) = torch.autograd.grad(want, x)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g, gw, rtol=1e-10, atol=1e-12)


# ---- sigmoid_focal_nd: MONAI's FocalLoss(use_softmax=False), alpha vectors and class weights ----
SIGMOID_ND = lossdsl.load("sigmoid_focal_nd")
RECIPES = {"none": "none", "mean": "mean", "sum": "mean(S) sum(B, C)"}


@pytest.mark.parametrize("spatial", ND_SPATIAL, ids=str)
def test_sigmoid_nd_is_monais_sigmoid_focal(spatial):
    """Every alpha form (None, scalars 0 / 0.25 / 1, a per-class vector), class weights or none,
    gamma 0 / 0.5 / 2, every reduction (MONAI's "sum" as the recipe "mean(S) sum(B, C)"). MONAI
    casts to float32: rtol 1e-5 on values and gradients."""
    rng = np.random.default_rng(7 + len(spatial) * 10 + sum(spatial))
    c = 4
    x = rng.standard_normal((3, c, *spatial)) * 2.0
    t = (rng.random((3, c, *spatial)) < 0.4).astype(np.float64)
    cw = np.array([0.5, 1.0, 2.0, 0.0])
    av = np.array([0.1, 0.9, 0.25, 0.6])
    fn = SIGMOID_ND.compile("torch")
    for alpha, gamma, weighted, red in itertools.product(
        (None, 0.0, 0.25, 1.0, "vector"), (0.0, 0.5, 2.0), (False, True), RECIPES
    ):
        vec = isinstance(alpha, str)
        mon = FocalLoss(
            use_softmax=False,
            gamma=gamma,
            alpha=av.tolist() if vec else alpha,
            weight=cw.tolist() if weighted else None,
            reduction=red,
        )
        xm = torch.tensor(x, dtype=torch.float32, requires_grad=True)
        want = mon(xm, torch.tensor(t, dtype=torch.float32))
        (gw,) = torch.autograd.grad(want.sum(), xm)
        xt = torch.tensor(x, requires_grad=True)
        kw = {"gamma": gamma, "alpha": -1.0 if alpha is None or vec else alpha}
        got = fn(
            xt,
            torch.tensor(t),
            torch.tensor(av) if vec else None,
            torch.tensor(cw) if weighted else None,
            **kw,
            # no spatial dims: MONAI's "sum" takes loss.mean(dim=[]), which torch reads as the
            # mean over every dim, so it is the mean
            reduction="mean" if red == "sum" and not spatial else RECIPES[red],
        )
        (gg,) = torch.autograd.grad(got.sum(), xt)
        what = (alpha, gamma, weighted, red)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5,
                                   atol=1e-7, err_msg=str(what))  # fmt: skip
        np.testing.assert_allclose(gg.numpy(), gw.numpy(), rtol=1e-5, atol=1e-7, err_msg=str(what))


def test_sigmoid_nd_without_class_inputs_is_sigmoid_focal_on_every_backend():
    """Without class inputs it is sigmoid_focal itself (torch, jax, numpy): the class-indexed
    factors are the only difference."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4)) * 3
    t = (rng.random((2, 3, 4)) < 0.5).astype(np.float64)
    for backend in ("numpy", "torch", "jax"):
        a = SIGMOID_ND.compile(backend)
        b = lossdsl.load("sigmoid_focal").compile(backend)
        args = (x, t) if backend != "torch" else (torch.tensor(x), torch.tensor(t))
        got = np.asarray(a(*args, alpha=0.25, reduction="none"))
        want = np.asarray(b(*args, alpha=0.25, reduction="none"))
        np.testing.assert_allclose(got, want, rtol=1e-14, err_msg=backend)
